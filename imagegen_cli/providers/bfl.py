"""Black Forest Labs (FLUX): POST {base}/v1/{model}, then poll the polling_url it answers.

Asynchronous, on the shared job mechanism (api.JobProvider): the submit (key in
`x-key`) answers `{id, polling_url, cost, input_mp, output_mp}`; the polling_url
is polled as given (regional: never rebuilt) until `status` is `Ready`, and
`result.sample`, a signed URL that expires about 10 minutes later, is fetched at
once with no key. The key goes to the polling_url only on the provider's own site
(the base URL's host, or under its domain: api.eu2.bfl.ai for api.bfl.ai).
docs/providers/bfl.md has the sources; each rule below names its own.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from imagegen_cli import providers as api

# Every source below was read on this day.
READ = "2026-12-05"
DOCS = "https://docs.bfl.ai"
# API reference pages (docs.bfl.ai/api-reference/models/...), OpenAPI at
# https://api.bfl.ai/openapi.json as embedded in them; BFL's own API guide
# github.com/black-forest-labs/skills skills/bfl-api (SKILL.md, references/endpoints.md,
# commit 937fe03, 2026-01-28) for reference counts and resolution limits.
PRO_REF = f"{DOCS}/api-reference/models/generate-or-edit-an-image-with-flux2-[pro]"
FLEX_REF = f"{DOCS}/api-reference/models/generate-or-edit-an-image-with-flux2-[flex]"
KLEIN_REF = f"{DOCS}/api-reference/models/generate-or-edit-an-image-with-flux2-[klein]-9b-preview"
KONTEXT_REF = (f"{DOCS}/api-reference/models/create-an-image-with-flux1-kontext-[pro]-legacy"
               "-use-flux2-[pro]-for-editing")
ENDPOINTS = f"{DOCS}/quick_start/generating_images"
SKILLS = "https://github.com/black-forest-labs/skills/blob/main/skills/bfl-api/SKILL.md"

# FLUX.2: width/height >= 64 (API reference, all FLUX.2 pages), multiples of 16 and at
# most 4 MP in all (SKILLS, references/endpoints.md "Resolution Constraints"). Whether
# "4MP" is 4,000,000 or 4 x 1024 x 1024 pixels is not said: the larger is taken, so
# 2048x2048 is sent (BFL answers a too-large size itself).
FLUX2_SIZES = api.SizeRule(min_side=64, multiple=16, max_pixels=4 * 1024 * 1024)
# Kontext and 1.1 [pro] Ultra take a ratio "between 21:9 and 9:21" (KONTEXT_REF; the
# Ultra page says the same); any W:H in that range is accepted, these are the named
# ones --aspect is mapped to.
RATIOS = ("21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "9:21")
FORMATS = ("jpeg", "png")  # output_format on every page read (klein-9b-preview adds webp)


def _flux2(refs: int, note: str, *, flex: bool = False) -> api.Capabilities:
    return api.Capabilities(
        options=api.opt("--seed", *(("--steps", "--guidance") if flex else ())),
        # [flex]: steps 1..50 (default 50), guidance 1.5..10 (default 4.5): FLEX_REF, SKILLS
        ranges={"--steps": (1, 50), "--guidance": (1.5, 10)} if flex else {},
        sizes=FLUX2_SIZES, max_n=1, max_count=10, formats=FORMATS, edit=True,
        multi_image=True, max_images=refs, image_urls=True, async_jobs=True,
        notes=(note,),
    )


# Reference images: [pro]/[max]/[flex] input_image..input_image_8, [klein]
# input_image..input_image_4 (API reference pages; SKILLS "Multi-Reference I2I").
MODELS: dict[str, api.Capabilities] = {
    "flux-2-pro": _flux2(8, "FLUX.2 [pro]: BFL's recommended default for generation and "
                         f"editing ({PRO_REF}, read {READ})"),
    "flux-2-pro-preview": _flux2(8, "FLUX.2 [pro], latest: changes without notice; "
                                 f"flux-2-pro is the pinned snapshot ({ENDPOINTS}, read {READ})"),
    "flux-2-max": _flux2(8, f"FLUX.2 [max]: highest quality ({DOCS}/api-reference/models/"
                         f"generate-or-edit-an-image-with-flux2-[max]-highest-quality, read "
                         f"{READ})"),
    "flux-2-flex": _flux2(8, f"FLUX.2 [flex]: --steps 1..50, --guidance 1.5..10 ({FLEX_REF}, "
                          f"read {READ})", flex=True),
    "flux-2-klein-4b": _flux2(4, f"FLUX.2 [klein] 4B: fastest ({ENDPOINTS}, read {READ})"),
    "flux-2-klein-9b": _flux2(4, f"FLUX.2 [klein] 9B: pinned snapshot ({ENDPOINTS}, read "
                              f"{READ})"),
    "flux-2-klein-9b-preview": _flux2(4, "FLUX.2 [klein] 9B, latest: changes without notice "
                                      f"({KLEIN_REF}, read {READ})"),
    # Kontext: input_image plus the "experimental multiref" input_image_2..4, aspect_ratio,
    # no width/height (KONTEXT_REF, read READ).
    "flux-kontext-pro": api.Capabilities(
        options=api.opt("--seed"), aspect_ratios=RATIOS, max_n=1, max_count=10,
        formats=FORMATS, edit=True, multi_image=True, max_images=4, image_urls=True,
        async_jobs=True, notes=("FLUX.1 Kontext [pro]: legacy, BFL points editing to "
                                f"flux-2-pro; --aspect, not --size ({KONTEXT_REF}, read "
                                f"{READ})",)),
    "flux-kontext-max": api.Capabilities(
        options=api.opt("--seed"), aspect_ratios=RATIOS, max_n=1, max_count=10,
        formats=FORMATS, edit=True, multi_image=True, max_images=4, image_urls=True,
        async_jobs=True, notes=("FLUX.1 Kontext [max]: legacy; --aspect, not --size "
                                f"({DOCS}/api-reference/models, read {READ})",)),
    # 1.1 [pro] Ultra: aspect_ratio (default 16:9), no reference images here (its
    # image_prompt is a different thing: --param image_prompt=...).
    "flux-pro-1.1-ultra": api.Capabilities(
        options=api.opt("--seed"), aspect_ratios=RATIOS, max_n=1, max_count=10,
        formats=FORMATS, async_jobs=True,
        notes=("FLUX1.1 [pro] Ultra: --aspect, not --size; --param raw=true for its raw "
               f"mode ({ENDPOINTS}, read {READ})",)),
}
UNKNOWN = api.Capabilities(
    options=api.opt("--seed", "--steps", "--guidance"),
    sizes=api.SizeRule(min_side=64, multiple=16), max_n=1, max_count=10, formats=FORMATS,
    edit=True, multi_image=True, max_images=8, image_urls=True, async_jobs=True,
    notes=("model not in imagegen's table: checked as FLUX.2, options passed through",),
)
DEFAULT_MODEL = "flux-2-pro"  # "the recommended default model" (PRO_REF, read READ)
MODERATED = ("Request Moderated", "Content Moderated")  # StatusResponse (OpenAPI)
# What BFL bills by the megapixel: sent raw they would bypass the estimate and --max-cost.
BILLED = {"width": "--size", "height": "--size"}


def _details(answer: dict[str, Any]) -> str:
    """The reasons a failed or moderated poll gives (`details`, `error`), in a few words."""
    parts: list[str] = []
    details = answer.get("details")
    if isinstance(details, dict):
        for k, v in details.items():
            shown = ", ".join(map(str, v)) if isinstance(v, list) else str(v)
            parts.append(f"{k}: {shown}")
    elif details:
        parts.append(str(details) if isinstance(details, str) else json.dumps(details))
    for k in ("error", "message"):
        if isinstance(answer.get(k), str) and answer[k]:
            parts.append(answer[k])
    return f" ({'; '.join(parts)[:300]})" if parts else ""


class BFLProvider(api.JobProvider):
    type_name = "bfl"
    first_status = "Pending"

    def capabilities(self, model: str | None) -> api.Capabilities:
        return MODELS.get(model or "", UNKNOWN)

    def default_model(self) -> str | None:
        return self.cfg.model or DEFAULT_MODEL

    def known_models(self) -> list[str]:
        return list(MODELS)

    def model_status(self, model: str) -> str | None:
        if model not in MODELS:
            return None
        if model.endswith("-preview"):
            return "active (preview: changes without notice)"
        if model.startswith("flux-kontext"):
            return "active (legacy: BFL recommends flux-2-pro for editing)"
        return "active"

    def model_lifecycle(self, model: str) -> dict[str, Any] | None:
        status = self.model_status(model)
        return None if status is None else {
            "status": status, "shutdown": None, "replacement": None,
            "source": ENDPOINTS, "read": READ}

    def model_table_read(self) -> str | None:
        return READ

    def base(self) -> str:
        return api.check_base_url(self.cfg.base_url or "https://api.bfl.ai", self.name)

    def headers(self, key: str | None) -> dict[str, str]:
        h = {"content-type": "application/json", "accept": "application/json"}
        if key:
            h["x-key"] = key
        return h

    def key_goes_to(self, url: str) -> bool:
        """Whether the key may be sent to URL (a polling_url the API answered with): only
        on the base URL's own host, or a host under its domain (api.eu2.bfl.ai for
        api.bfl.ai), and never over http when the base is https."""
        base, there = urlsplit(self.base()), urlsplit(url)
        if there.scheme not in ("http", "https") or (base.scheme == "https"
                                                     and there.scheme != "https"):
            return False
        host, mine = (there.hostname or "").lower(), (base.hostname or "").lower()
        if host == mine:
            return True
        labels = mine.split(".")
        if len(labels) < 2 or labels[-1].isdigit() or ":" in mine:  # an IP address
            return False
        site = ".".join(labels[-2:])
        return host.endswith("." + site) or host == site

    # -- the request ------------------------------------------------------
    def validate(self, req: api.ImageRequest, *, inpaint: bool = False) -> api.ImageRequest:
        req = super().validate(req, inpaint=inpaint)
        caps = self.capabilities(req.model)
        where = f"provider {self.name} (model {req.model})"
        if req.size and caps.sizes is None:
            raise api.UsageError(
                f"{req.named('--size', req.size)} is not accepted by {where}: it takes an "
                f"aspect ratio, not a size: pass --aspect W:H (one of {', '.join(RATIOS)})")
        for field, flag in BILLED.items():
            if field in req.params:
                raise api.UsageError(
                    f"--param {field} changes what is billed and is not sent raw: pass "
                    f"{flag} WIDTHxHEIGHT instead")
        return req

    def body(self, req: api.ImageRequest) -> dict[str, Any]:
        caps = self.capabilities(req.model)
        body: dict[str, Any] = {"prompt": req.prompt}
        for i, image in enumerate(req.images):
            name = "input_image" if i == 0 else f"input_image_{i + 1}"
            # A URL or base64 (API reference: "Base64 encoded image or URL").
            body[name] = image.url or base64.b64encode(image.data).decode("ascii")
        if req.size and req.size != "auto" and caps.sizes is not None:
            w, h = (int(x) for x in req.size.split("x"))
            body["width"], body["height"] = w, h
        if req.aspect_ratio and caps.aspect_ratios:
            body["aspect_ratio"] = req.aspect_ratio
        if req.seed is not None:
            body["seed"] = req.seed
        if req.steps is not None:
            body["steps"] = req.steps
        if req.guidance is not None:
            body["guidance"] = req.guidance
        if req.output_format:
            body["output_format"] = req.output_format
        return api.param_merge(body, req.params)

    def prepare(self, req: api.ImageRequest, key: str | None) -> list[api.HttpCall]:
        return [api.HttpCall("POST", f"{self.base()}/v1/{quote(str(req.model), safe='.-_')}",
                             self.headers(key), json=self.body(req))]

    def run(
        self, req: api.ImageRequest, key: str | None, transport: api.Transport,
        reporter: api.Reporter,
    ) -> Iterator[tuple[api.GeneratedImage, api.CallInfo]]:
        (call,) = self.prepare(req, key)
        yield from self.submit_job(call, req, key, transport, reporter)

    # -- the job ------------------------------------------------------------
    def job_of(self, answer: Any, info: api.CallInfo) -> api.Submitted:
        sub = super().job_of(answer, info)
        where = answer.get("polling_url")
        if isinstance(where, str) and urlsplit(where).scheme in ("http", "https"):
            sub.where = where
        # What the submit says it costs (credits: 1 credit = $0.01, docs.bfl.ai/
        # quick_start/pricing): the cost a run records, beside the megapixels billed.
        usage: dict[str, Any] = {}
        cost = answer.get("cost")
        if isinstance(cost, (int, float)) and not isinstance(cost, bool) and cost >= 0:
            usage["cost_credits"] = cost
            usage["cost_usd"] = round(cost / 100, 6)
        for k in ("input_mp", "output_mp"):
            if isinstance(answer.get(k), (int, float)) and not isinstance(answer[k], bool):
                usage[k] = answer[k]
        info.usage = usage or None
        return sub

    def poll_call(self, job_id: str, where: str | None, key: str | None) -> api.HttpCall:
        # A bare id (`imagegen job get bfl ID` without the submitting run's note) is asked
        # at the configured endpoint's GET /v1/get_result?id= (OpenAPI: "Get Result").
        url = where or f"{self.base()}/v1/get_result?id={quote(job_id, safe='')}"
        headers = {"accept": "application/json"}
        if key and self.key_goes_to(url):
            headers["x-key"] = key
        return api.HttpCall("GET", url, headers)

    def read_job(self, job_id: str, answer: Any) -> api.JobState:
        if not isinstance(answer, dict):
            raise api.UnavailableError(f"{self.name} sent a malformed job status for {job_id}")
        status = str(answer.get("status") or "")
        if status in MODERATED:
            raise api.RefusedError(f"{self.name} refused job {job_id}: {status}"
                                   f"{_details(answer)}", code=status)
        if status == "Task not found":
            raise self.unknown_job(job_id)
        if status == "Error":
            raise api.RefusedError(f"{self.name} job {job_id} failed: Error{_details(answer)}",
                                   code=status)
        return api.JobState(status or "Pending", done=status == "Ready")

    def unknown_job(self, job_id: str, request_id: str | None = None) -> api.ProviderError:
        return api.UnavailableError(f"{self.name} does not know job {job_id} (Task not found)",
                                    status=404, request_id=request_id)

    def job_images(
        self, job_id: str, answer: Any, info: api.CallInfo, transport: api.Transport,
        reporter: api.Reporter,
    ) -> Iterator[tuple[api.GeneratedImage, api.CallInfo]]:
        result = answer.get("result")
        sample = result.get("sample") if isinstance(result, dict) else None
        if not isinstance(sample, str) or not sample:
            raise api.UnavailableError(f"{self.name} job {job_id} is Ready without "
                                       "result.sample")
        reporter.status(f"downloading the image of job {job_id[:8]}")
        try:
            # Now: the signed URL expires about 10 minutes after the job is Ready. No
            # header of ours goes with it (Transport.download_spooled): never the key.
            spool = transport.download_spooled(sample, on_bytes=reporter.download)
        except api.ProviderError as exc:
            if exc.status in (401, 403, 404, 410):
                raise api.RefusedError(
                    f"{self.name} job {job_id}: its image can no longer be downloaded (result "
                    "URLs expire about 10 minutes after the job is Ready): generate it "
                    "again", status=exc.status) from None
            raise
        assert isinstance(result, dict)
        seed = result.get("seed")
        img = api.GeneratedImage(index=0, loader=spool.read,
                                 seed=seed if isinstance(seed, int)
                                 and not isinstance(seed, bool) else None)
        yield img, info

    # -- providers check / models --------------------------------------------
    def check(self, key: str | None, transport: api.Transport) -> str:
        # GET /v1/credits (OpenAPI "Get the user's credits", x-key): free, authenticated.
        answer, _ = transport.json(api.HttpCall("GET", f"{self.base()}/v1/credits",
                                                self.headers(key)))
        credits = answer.get("credits") if isinstance(answer, dict) else None
        if isinstance(credits, (int, float)) and not isinstance(credits, bool):
            return f"key accepted, {credits:g} credits (${credits / 100:.2f})"
        return "key accepted"
