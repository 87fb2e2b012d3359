"""A strict fake of Distribute's sync and async image APIs (seed 000).

Async jobs move CREATED -> QUEUED -> PROCESSING -> COMPLETED, one step per poll;
a prompt containing "fail" ends in ERROR; "forever" never finishes.
"""

from __future__ import annotations

import base64
import itertools
import re
import uuid
from typing import Any

from tests.fakes.server import Dialect, Request, Response, color_for, png

SIZE_RE = re.compile(r"^([1-9]\d{0,2}|1024)x([1-9]\d{0,2}|1024)$")
MODELS = {"Flux.1 [dev]", "Flux.1 [schnell]"}
SYNC_FIELDS = {"prompt", "model", "n", "response_format", "size", "style"}
ASYNC_FIELDS = SYNC_FIELDS | {"seed", "guidance_scale", "num_inference_steps"}
STEPS = ["CREATED", "QUEUED", "PROCESSING", "COMPLETED"]


def bad(message: str, status: int = 400) -> Response:
    return Response.json({"statusCode": status, "error": "Bad Request", "message": message},
                         status)


class DistributeFake(Dialect):
    def __init__(self, key: str = "dist-key-42") -> None:
        self.key = key
        self.jobs: dict[str, dict[str, Any]] = {}
        super().__init__()
        self.ids = itertools.count(1)


    def handle(self, req: Request) -> Response:
        path = req.path.split("?")[0]
        if path.startswith("/files/"):
            return Response(200, png(8, 8), {"content-type": "image/png"})
        auth = req.headers.get("authorization", "")
        if req.method != "POST":
            return bad("Not Found", 404)
        if path == "/v1/images/generations":
            if auth != f"Bearer {self.key}":
                return Response.json({"message": "Unauthorized"}, 401)
            return self.sync(req)
        if path in ("/async/images/create", "/async/images/result"):
            if auth != self.key:  # the raw key, no Bearer
                return Response.json({"message": "Unauthorized"}, 401)
            try:
                body = req.json()
            except ValueError:
                return bad("body must be JSON")
            if path.endswith("create"):
                return self.create(body)
            return self.result(body)
        return bad("Not Found", 404)

    def check(self, body: Any, fields: set[str]) -> Response | None:
        if not isinstance(body, dict):
            return bad("body must be an object")
        for k in body:
            if k not in fields:
                return bad(f"body must NOT have additional properties ({k})")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return bad("body must have required property 'prompt'")
        if len(prompt) > 1000:
            return bad("body/prompt must NOT have more than 1000 characters")
        if body.get("model") not in MODELS:
            return bad("body/model must be equal to one of the allowed values")
        if body.get("n", 1) != 1:
            return bad("body/n must be equal to one of the allowed values")
        if body.get("response_format", "url") not in ("url", "b64_json"):
            return bad("body/response_format must be equal to one of the allowed values")
        if "size" in body and not SIZE_RE.match(str(body["size"])):
            return bad(f'body/size must match pattern "{SIZE_RE.pattern}"')
        g = body.get("guidance_scale", 5)
        if not isinstance(g, int) or isinstance(g, bool) or not 1 <= g <= 10:
            return bad("body/guidance_scale must be an integer 1..10")
        s = body.get("num_inference_steps", 10)
        if not isinstance(s, int) or not 1 <= s <= 50:
            return bad("body/num_inference_steps must be 1..50")
        return None

    def _item(self, body: dict[str, Any]) -> dict[str, str]:
        w, h = (int(x) for x in body.get("size", "768x768").split("x"))
        data = png(w, h, color_for(body["prompt"], next(self.ids)))
        if body.get("response_format", "url") == "b64_json":
            return {"b64_json": base64.b64encode(data).decode(), "url": "",
                    "revised_prompt": ""}
        return {"b64_json": "", "url": f"{self.url}/files/x.png", "revised_prompt": ""}

    def sync(self, req: Request) -> Response:
        try:
            body = req.json()
        except ValueError:
            return bad("body must be JSON")
        return self.check(body, SYNC_FIELDS) or Response.json([self._item(body)])

    def create(self, body: Any) -> Response:
        err = self.check(body, ASYNC_FIELDS)
        if err:
            return err
        job_id = str(uuid.uuid4())
        self.jobs[job_id] = {"body": body, "polls": 0}
        return Response.json({"id": job_id})

    def result(self, body: Any) -> Response:
        if not isinstance(body, dict) or set(body) != {"id"}:
            return bad("body must have exactly the property 'id'")
        job = self.jobs.get(body["id"])
        if job is None:
            return Response.json({"message": "Job not found"}, 404)
        job["polls"] += 1
        prompt = job["body"]["prompt"]
        step = min(job["polls"] - 1, len(STEPS) - 1)
        status = "QUEUED" if "forever" in prompt else STEPS[step]
        out: dict[str, Any] = {"id": body["id"], "status": status,
                               "created": "2026-11-22T10:00:00.000Z", "finished": None,
                               "model": job["body"]["model"], "results": []}
        if status == "COMPLETED" and "fail" in prompt:
            out.update(status="ERROR", error="GPU worker crashed")
        elif status == "COMPLETED":
            out["finished"] = 1795341612500  # epoch milliseconds: 12.5 s after created
            out["results"] = [self._item(job["body"])]
        return Response.json(out)
