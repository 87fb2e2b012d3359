"""Distribute: an OpenAI-like sync API and an async job API (seed 000).

Sync:  POST {base}/v1/images/generations, Bearer key; the answer is a bare JSON array.
Async: POST {base}/async/images/create (raw key in `authorization`), then
       POST {base}/async/images/result {"id"} until COMPLETED or ERROR, through the
       shared job mechanism (api.JobProvider: submitted once, polled with backoff,
       `imagegen job get distribute ID`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from imagegen_cli import providers as api
from imagegen_cli.providers.openai_answers import parse_images

SIZE_RE = re.compile(r"^([1-9]\d{0,2}|1024)x([1-9]\d{0,2}|1024)$")
ASYNC_ONLY = ("--seed", "--steps", "--guidance")

_SIZES = api.SizeRule(min_side=1, max_side=1024)
SYNC = api.Capabilities(
    options=api.opt("--style"), sizes=_SIZES, max_n=1, max_count=10, prompt_max=1000,
    notes=("sync API; --seed/--steps/--guidance need the async API",),
)
ASYNC = api.Capabilities(
    options=api.opt("--style", "--seed", "--steps", "--guidance"),
    ranges={"--steps": (1, 50), "--guidance": (1, 10)},
    sizes=_SIZES, max_n=1, max_count=10, prompt_max=1000, async_jobs=True,
    notes=("async jobs are used when --seed, --steps or --guidance is given "
           "(or mode = \"async\")",),
)


def parse_time(value: Any) -> float | None:
    """Epoch seconds from an ISO string or an epoch number (s or ms)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) / (1000 if value > 1e11 else 1)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            try:
                return parse_time(float(value))
            except ValueError:
                return None
    return None


class DistributeProvider(api.JobProvider):
    type_name = "distribute"
    first_status = "CREATED"

    def capabilities(self, model: str | None) -> api.Capabilities:
        return SYNC if self.cfg.mode == "sync" else ASYNC

    def known_models(self) -> list[str]:
        return ["Flux.1 [dev]", "Flux.1 [schnell]"]

    def base(self) -> str:
        return api.check_base_url(self.cfg.base_url or "https://api.distribute.ai", self.name)

    def use_async(self, req: api.ImageRequest) -> bool:
        if self.cfg.mode == "sync":
            return False
        if self.cfg.mode == "async":
            return True
        return req.seed is not None or req.steps is not None or req.guidance is not None

    def validate(self, req: api.ImageRequest, *, inpaint: bool = False) -> api.ImageRequest:
        if self.cfg.mode == "sync":
            used = [f for f in ASYNC_ONLY if f in req.options_set()]
            if used:
                raise api.UsageError(
                    f"{used[0]} needs Distribute's async API, but providers.{self.name}.mode "
                    "is \"sync\": drop the option or set mode = \"async\"")
        req = super().validate(req, inpaint=inpaint)
        if req.size and not SIZE_RE.match(req.size):
            raise api.UsageError(f"--size {req.size} is not accepted by provider {self.name}: "
                             "sides must be 1..1024 (WIDTHxHEIGHT)")
        if req.guidance is not None and req.guidance != int(req.guidance):
            raise api.UsageError(f"--guidance {req.guidance:g} is not accepted by provider "
                             f"{self.name}: a whole number 1..10")
        return req

    def body(self, req: api.ImageRequest, *, asynchronous: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": req.prompt, "model": req.model, "n": req.n,
                                "response_format": "b64_json"}
        if req.size:
            body["size"] = req.size
        if req.style:
            body["style"] = req.style
        if asynchronous:
            if req.seed is not None:
                body["seed"] = req.seed
            if req.guidance is not None:
                body["guidance_scale"] = int(req.guidance)
            if req.steps is not None:
                body["num_inference_steps"] = req.steps
        return api.param_merge(body, req.params)

    def prepare(self, req: api.ImageRequest, key: str | None) -> list[api.HttpCall]:
        if self.use_async(req):
            return [api.HttpCall("POST", f"{self.base()}/async/images/create",
                             self._headers(key, bearer=False),
                             json=self.body(req, asynchronous=True))]
        return [api.HttpCall("POST", f"{self.base()}/v1/images/generations",
                         self._headers(key, bearer=True),
                         json=self.body(req, asynchronous=False))]

    def _headers(self, key: str | None, *, bearer: bool) -> dict[str, str]:
        h = {"content-type": "application/json", "accept": "application/json"}
        if key:
            h["authorization"] = f"Bearer {key}" if bearer else key
        return h

    def run(
        self, req: api.ImageRequest, key: str | None, transport: api.Transport,
        reporter: api.Reporter,
    ) -> Iterator[tuple[api.GeneratedImage, api.CallInfo]]:
        (call,) = self.prepare(req, key)
        if not self.use_async(req):
            reporter.status(f"waiting for {self.name}")
            payload, resp = transport.json_spooled(call)
            yield from parse_images(payload, api.CallInfo(request_id=api.request_id_of(resp)),
                                    self.name)
            return
        yield from self.submit_job(call, req, key, transport, reporter)

    # -- the async job API, on the shared job mechanism (providers/jobs.py) --
    def poll_call(self, job_id: str, where: str | None, key: str | None) -> api.HttpCall:
        return api.HttpCall("POST", f"{self.base()}/async/images/result",
                            self._headers(key, bearer=False), json={"id": job_id})

    def read_job(self, job_id: str, answer: Any) -> api.JobState:
        if not isinstance(answer, dict):
            raise api.UnavailableError(f"{self.name} sent a malformed job status for {job_id}")
        status = str(answer.get("status") or "").upper()
        if status == "ERROR":
            msg = (answer.get("error") or answer.get("message") or answer.get("detail")
                   or "no reason given")
            if isinstance(msg, dict):
                msg = msg.get("message") or str(msg)
            raise api.RefusedError(f"{self.name} job {job_id} failed: {msg}")
        return api.JobState(status, done=status == "COMPLETED")

    def job_images(
        self, job_id: str, answer: Any, info: api.CallInfo, transport: api.Transport,
        reporter: api.Reporter,
    ) -> Iterator[tuple[api.GeneratedImage, api.CallInfo]]:
        t0, t1 = parse_time(answer.get("created")), parse_time(answer.get("finished"))
        timings = {"job_s": round(t1 - t0, 3)} if t0 is not None and t1 else {}
        if timings:
            info.extra["job_s"] = timings["job_s"]
        for img, i in parse_images(answer, info, self.name, items_key="results"):
            img.timings.update(timings)
            yield img, i

    def check(self, key: str | None, transport: api.Transport) -> str:
        # No listing endpoint is documented: ask for a job that cannot exist. A 404
        # proves the key was accepted; 401/403 raise AuthError.
        call = api.HttpCall("POST", f"{self.base()}/async/images/result",
                        self._headers(key, bearer=False),
                        json={"id": "00000000-0000-4000-8000-000000000000"})
        try:
            transport.json(call)
        except api.RefusedError as exc:
            if exc.status in (400, 404):
                return "key accepted"
            raise
        return "key accepted"
