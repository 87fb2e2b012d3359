"""A strict fake of Black Forest Labs' API, written from docs.bfl.ai and the OpenAPI
document at api.bfl.ai/openapi.json (read 2026-12-05).

Three servers on 127.0.0.1, as the real API spreads over three hosts:
- `api` (the base URL): POST /v1/{model} (key in `x-key`), GET /v1/credits, and
  GET /v1/get_result?id= (the documented endpoint, for an id asked about by hand);
- `region`: where each answered polling_url points (a "regional" endpoint on another
  port). It wants the key, as BFL's own examples send it; asked under the host name
  `localhost` (`foreign_poll`: a polling_url on another host than the base URL's) it
  refuses any key, as a host that must never receive one;
- `delivery`: the signed `result.sample` URLs. Any `x-key` or `Authorization` header
  fails the download (and is counted in `leaks`); a URL expires `sample_ttl` seconds
  after its job is Ready (BFL: about 10 minutes).

Knobs: `pending` (Pending answers per job before its outcome), `outcome` ("Ready",
"Request Moderated", "Content Moderated", "Error", "Task not found"), `details`,
`poll_failures` (polls answered 503), `lose_answers` (submits accepted whose answer
never comes within `lose_delay` s). `submits` counts the tasks created.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeServer, Request, Response, color_for, png, reencode

IMAGE_FIELDS = ["input_image"] + [f"input_image_{i}" for i in range(2, 9)]
COMMON = {"prompt", "seed", "safety_tolerance", "output_format", "webhook_url",
          "webhook_secret"}
FLUX2 = COMMON | {"width", "height"}
# The request fields of each model (API reference pages, OpenAPI): anything else is
# "Extra inputs are not permitted".
FIELDS: dict[str, set[str]] = {
    "flux-2-pro": FLUX2 | set(IMAGE_FIELDS),
    "flux-2-pro-preview": FLUX2 | set(IMAGE_FIELDS),
    "flux-2-max": FLUX2 | set(IMAGE_FIELDS),
    "flux-2-flex": FLUX2 | set(IMAGE_FIELDS) | {"prompt_upsampling", "guidance", "steps",
                                                "input_image_blob_path"},
    "flux-2-klein-4b": FLUX2 | set(IMAGE_FIELDS[:4]),
    "flux-2-klein-9b": FLUX2 | set(IMAGE_FIELDS[:4]),
    "flux-2-klein-9b-preview": FLUX2 | set(IMAGE_FIELDS[:4]),
    "flux-kontext-pro": COMMON | set(IMAGE_FIELDS[:4]) | {"aspect_ratio", "prompt_upsampling"},
    "flux-kontext-max": COMMON | set(IMAGE_FIELDS[:4]) | {"aspect_ratio", "prompt_upsampling"},
    "flux-pro-1.1-ultra": COMMON | {"aspect_ratio", "prompt_upsampling", "raw", "image_prompt",
                                    "image_prompt_strength"},
}
# Credits: first megapixel, each further one (and each input one); flat per image.
CREDITS = {"flux-2-pro": (3, 1.5), "flux-2-pro-preview": (3, 1.5), "flux-2-max": (7, 3),
           "flux-2-flex": (5, 5), "flux-2-klein-4b": (1.4, 0.1), "flux-2-klein-9b": (1.5, 0.2),
           "flux-2-klein-9b-preview": (1.5, 0.2), "flux-kontext-pro": (4, 0),
           "flux-kontext-max": (8, 0), "flux-pro-1.1-ultra": (6, 0)}
MP = 1024 * 1024
RATIO = re.compile(r"^(\d+):(\d+)$")


def invalid(field: str, msg: str, kind: str = "value_error") -> Response:
    return Response.json({"detail": [{"loc": ["body", field], "msg": msg, "type": kind}]}, 422)


class BFLFake:
    def __init__(self, key: str = "bfl-key-7f3a9c") -> None:
        self.key = key
        self.api = FakeServer(self.handle_api)
        self.region = FakeServer(self.handle_poll)
        self.delivery = FakeServer(self.handle_sample)
        self.tasks: dict[str, dict[str, Any]] = {}
        self.submits = 0
        self.leaks = 0
        self.pending = 0
        self.outcome = "Ready"
        self.details: dict[str, Any] | None = None
        self.poll_failures = 0
        self.lose_answers = 0
        self.lose_delay = 2.5
        self.sample_ttl = 600.0
        self.foreign_poll = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.api.url

    def start(self) -> BFLFake:
        for s in (self.api, self.region, self.delivery):
            s.start()
        return self

    def stop(self) -> None:
        for s in (self.api, self.region, self.delivery):
            s.stop()

    # -- the base URL ------------------------------------------------------
    def _auth(self, req: Request) -> Response | None:
        key = req.headers.get("x-key")
        if key is None:
            # Bearer is not BFL's scheme: without x-key the request is not authenticated.
            return Response.json({"detail": "Not authenticated"}, 401)
        if key != self.key:
            return Response.json({"detail": "Not authenticated - Invalid Authentication"}, 403)
        return None

    def handle_api(self, req: Request) -> Response:
        path = req.path.split("?")[0]
        denied = self._auth(req)
        if denied:
            return denied
        if req.method == "GET" and path == "/v1/credits":
            return Response.json({"credits": 123.5})
        if req.method == "GET" and path == "/v1/get_result":
            return self.result(req)
        model = path.removeprefix("/v1/")
        if req.method != "POST" or model not in FIELDS:
            return Response.json({"detail": "Not Found"}, 404)
        try:
            body = req.json()
        except ValueError:
            return invalid("body", "JSON decode error", "json_invalid")
        return self.submit(model, body)

    def submit(self, model: str, body: Any) -> Response:
        if not isinstance(body, dict):
            return invalid("body", "Input should be a valid dictionary", "model_type")
        for k in body:
            if k not in FIELDS[model]:
                return invalid(k, "Extra inputs are not permitted", "extra_forbidden")
        if not isinstance(body.get("prompt"), str):
            return invalid("prompt", "Field required", "missing")
        for side in ("width", "height"):
            v = body.get(side)
            if v is None:
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 64:
                return invalid(side, "Input should be greater than or equal to 64")
            if v % 16:
                return invalid(side, "Value must be a multiple of 16")
        if body.get("width", 1024) * body.get("height", 1024) > 4 * MP:
            return invalid("width", "Total pixels must be at most 4MP")
        if "steps" in body and not (isinstance(body["steps"], int) and 1 <= body["steps"] <= 50):
            return invalid("steps", "Input should be between 1 and 50")
        if "guidance" in body and not (isinstance(body["guidance"], (int, float))
                                       and 1.5 <= body["guidance"] <= 10):
            return invalid("guidance", "Input should be between 1.5 and 10")
        tol = body.get("safety_tolerance", 2)
        if not isinstance(tol, int) or not 0 <= tol <= (6 if "aspect_ratio" in FIELDS[model]
                                                         else 5):
            return invalid("safety_tolerance", "Input should be between 0 and 5")
        if body.get("output_format", "jpeg") not in ("jpeg", "png"):
            return invalid("output_format", "Input should be 'jpeg' or 'png'", "enum")
        if "aspect_ratio" in body:
            m = RATIO.match(str(body["aspect_ratio"]))
            if not m or not 9 / 21 <= int(m.group(1)) / max(int(m.group(2)), 1) <= 21 / 9:
                return invalid("aspect_ratio", "Aspect ratio must be between 21:9 and 9:21")
        inputs = 0.0
        for name in IMAGE_FIELDS:
            value = body.get(name)
            if value is None:
                continue
            if not isinstance(value, str) or not value:
                return invalid(name, "Input should be a valid string")
            if not value.startswith(("http://", "https://")):
                try:
                    raw = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    return invalid(name, "Invalid base64 image")
                if raw[:8] != b"\x89PNG\r\n\x1a\n" and raw[:2] != b"\xff\xd8":
                    return invalid(name, "Input image is not an image")
            inputs += 1.0  # the fake counts each input as 1 MP
        w, h = body.get("width", 1024), body.get("height", 1024)
        out_mp = w * h / MP
        first, more = CREDITS[model]
        cost = first + math.ceil(max(0.0, out_mp - 1) - 1e-9) * more + inputs * more
        task_id = str(uuid.uuid4())
        with self._lock:
            self.submits += 1
            self.tasks[task_id] = {"model": model, "body": body, "polls": 0, "ready_at": None}
            lose = self.lose_answers > 0
            if lose:
                self.lose_answers -= 1
        host = "localhost" if self.foreign_poll else "127.0.0.1"
        answer = Response.json({
            "id": task_id,
            "polling_url": f"http://{host}:{self.region.port}/v1/get_result?id={task_id}",
            "cost": round(cost, 3), "input_mp": inputs, "output_mp": round(out_mp, 2)})
        if lose:
            answer.delay = self.lose_delay  # accepted, but the answer never arrives in time
        return answer

    # -- polling -----------------------------------------------------------
    def handle_poll(self, req: Request) -> Response:
        host = req.headers.get("host", "").split(":")[0]
        if host == "localhost":  # not the base URL's host: it must never see the key
            if "x-key" in req.headers or "authorization" in req.headers:
                self.leaks += 1
                return Response.json({"detail": "a key was sent to another host"}, 400)
        else:
            denied = self._auth(req)
            if denied:
                return denied
        if req.method != "GET" or req.path.split("?")[0] != "/v1/get_result":
            return Response.json({"detail": "Not Found"}, 404)
        with self._lock:
            if self.poll_failures > 0:
                self.poll_failures -= 1
                return Response.json({"detail": "Service Unavailable"}, 503)
        return self.result(req)

    def result(self, req: Request) -> Response:
        ids = parse_qs(urlsplit(req.path).query).get("id")
        if not ids:
            return invalid("id", "Field required", "missing")
        task_id = ids[0]
        task = self.tasks.get(task_id)
        if task is None:
            return Response.json({"id": task_id, "status": "Task not found", "result": None})
        task["polls"] += 1
        if task["polls"] <= self.pending:
            return Response.json({"id": task_id, "status": "Pending", "result": None,
                                  "progress": round(task["polls"] / (self.pending + 1), 2)})
        out: dict[str, Any] = {"id": task_id, "status": self.outcome, "result": None,
                               "progress": None, "details": self.details, "preview": None}
        if self.outcome == "Ready":
            if task["ready_at"] is None:
                task["ready_at"] = time.monotonic()
            ext = "png" if task["body"].get("output_format") == "png" else "jpeg"
            out["result"] = {"sample": f"{self.delivery.url}/results/{task_id}/sample.{ext}"
                                       f"?se=2026-12-05T10%3A10%3A00Z&sig=c2lnbmVk",
                             "prompt": task["body"]["prompt"],
                             "seed": task["body"].get("seed", 1234)}
        return Response.json(out)

    # -- delivery ----------------------------------------------------------
    def handle_sample(self, req: Request) -> Response:
        if "x-key" in req.headers or "authorization" in req.headers:
            self.leaks += 1
            return Response.json({"detail": "credentials sent to the delivery host"}, 400)
        parts = urlsplit(req.path).path.split("/")
        task = self.tasks.get(parts[2]) if len(parts) > 3 else None
        if task is None or task["ready_at"] is None:
            return Response(404, b"BlobNotFound")
        if time.monotonic() - task["ready_at"] > self.sample_ttl:
            return Response(403, b"<Error><Code>AuthenticationFailed</Code><Message>Signed "
                                 b"expiry time has passed</Message></Error>",
                            {"content-type": "application/xml"})
        body = task["body"]
        size = (body.get("width", 64), body.get("height", 64)) if "width" in body else (64, 64)
        data = png(*size, color=color_for(body["prompt"], task["polls"]))
        if parts[-1].endswith(".jpeg"):
            return Response(200, reencode(data, "jpeg"), {"content-type": "image/jpeg"})
        return Response(200, data, {"content-type": "image/png"})
