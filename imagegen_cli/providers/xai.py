"""The xAI dialect (type "xai"): Grok Imagine over xAI's OpenAI-shaped Images API.

`POST {base}/images/generations` and `POST {base}/images/edits` with a Bearer key,
as OpenAI's, with the documented differences (docs/providers/xai.md has every
source and the day it was read):
- no `size`, `quality` or `style`: `aspect_ratio` (named ratios, `--aspect` goes to
  the nearest) and `resolution` (`1k`, `2k`) instead;
- `n` 1-10 a request; answers are URLs by default, downloaded at once (the engine
  fetches them with no key);
- edits are JSON only (xAI refuses OpenAI's multipart edit): one input goes as
  `image: {url}`, two or three as `images: [{url}, ...]`, each a public URL or a
  data URL; no mask.

`XAIProvider` reuses the OpenAI dialect's key header, base URL notes, answer
reading, key check and model listing; what differs is declared here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from imagegen_cli import clock
from imagegen_cli import providers as api
from imagegen_cli.providers.openai import OpenAIProvider
from imagegen_cli.providers.openai_answers import parse_images
from imagegen_cli.providers.openai_edits import data_url

# docs.x.ai, Image generation and the REST reference's aspect_ratio enum ("auto" is
# also taken: it is what xAI does when none is sent).
ASPECT_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9", "2:3", "3:2", "9:19.5", "19.5:9",
                 "9:20", "20:9", "1:2", "2:1")
RESOLUTIONS = ("1k", "2k")
MAX_N = 10  # "Maximum images per request: 10" (docs.x.ai, Image overview)
MAX_EDIT_IMAGES = 3  # "up to 3 reference images per request" (same page)

GROK_IMAGINE = api.Capabilities(
    options=api.opt("--resolution", "--user"),
    values={"--resolution": RESOLUTIONS},
    max_n=MAX_N, max_count=MAX_N, edit=True, multi_image=True,
    max_images=MAX_EDIT_IMAGES, image_urls=True, aspect_ratios=ASPECT_RATIOS,
    notes=("sized by --aspect (a named ratio) and --resolution 1k|2k, not WxH",
           "answers are URLs, downloaded at once"),
)


# model -> (deprecated on, replacement). docs.x.ai, Image generation (read 2026-12-05):
# "grok-imagine-image-pro will be deprecated as of May 15, 2026. Use
# grok-imagine-image-quality". No shutdown date is published for it.
LIFECYCLE: dict[str, tuple[date | None, str | None]] = {
    "grok-imagine-image": (None, None),
    "grok-imagine-image-quality": (None, None),
    "grok-imagine-image-pro": (date(2026, 5, 15), "grok-imagine-image-quality"),
}
DEFAULT_MODEL = "grok-imagine-image"  # the docs' examples; the one with a published price
LIFECYCLE_SOURCE = "https://docs.x.ai/developers/model-capabilities/images/generation"
LIFECYCLE_READ = "2026-12-05"


class XAIProvider(OpenAIProvider):
    type_name = "xai"

    def capabilities(self, model: str | None) -> api.Capabilities:
        return GROK_IMAGINE

    def default_model(self) -> str | None:
        # A provider added with `--type xai` and no --model still has xAI's own default.
        return self.cfg.model or DEFAULT_MODEL

    def known_models(self) -> list[str]:
        return list(LIFECYCLE)

    def model_status(self, model: str) -> str | None:
        if model not in LIFECYCLE:
            return None
        since, instead = LIFECYCLE[model]
        if since is None or clock.today() < since:
            return "active"
        return f"deprecated since {since.isoformat()}, use {instead}"

    def model_lifecycle(self, model: str) -> dict[str, Any] | None:
        if model not in LIFECYCLE:
            return None
        since, instead = LIFECYCLE[model]
        deprecated = since is not None and clock.today() >= since
        return {"model": model, "status": "deprecated" if deprecated else "active",
                "shutdown": None, "replacement": instead, "source": LIFECYCLE_SOURCE,
                "read": LIFECYCLE_READ}

    def model_table_read(self) -> str | None:
        return LIFECYCLE_READ

    def base(self) -> str:
        return api.check_base_url(self.cfg.base_url or "https://api.x.ai/v1", self.name)

    def validate(self, req: api.ImageRequest, *, inpaint: bool = False) -> api.ImageRequest:
        if "stream" in req.params:
            raise api.UsageError("--param stream=... is not allowed: xAI does not stream images")
        req = api.Provider.validate(self, req, inpaint=inpaint)
        where = f"provider {self.name} (model {req.model})"
        if req.size is not None:
            raise api.UsageError(
                f"{req.named('--size', req.size)} is not taken by {where}: xAI sizes images "
                f"by --aspect W:H (sent as the nearest of {', '.join(ASPECT_RATIOS)}) and "
                "--resolution 1k|2k")
        status = self.model_status(req.model or "")
        if status and status != "active":
            req = req.with_(warnings=[*req.warnings, f"model {req.model} is {status}"])
        if len(req.images) == 1 and req.aspect_ratio:
            # docs.x.ai: with one source image the output keeps that image's ratio.
            req = req.with_(aspect_ratio=None, notices=[
                *req.notices, "--aspect is not sent on an edit of one image: xAI keeps "
                "the input's aspect ratio"])
        notices, warnings = self.base_notes()
        return req.with_(notices=[*req.notices, *notices],
                         warnings=[*req.warnings, *warnings])

    def body(self, req: api.ImageRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": req.model, "prompt": req.prompt, "n": req.n}
        for field in ("aspect_ratio", "resolution", "user"):
            value = getattr(req, field)
            if value is not None:
                body[field] = value
        return api.param_merge(body, req.params)

    def prepare(self, req: api.ImageRequest, key: str | None) -> list[api.HttpCall]:
        body = self.body(req)
        if not req.images:
            return [api.HttpCall("POST", f"{self.base()}/images/generations",
                                 self.headers(key), json=body)]
        refs = [{"url": im.url or data_url(im.data), "type": "image_url"} for im in req.images]
        if len(refs) == 1:
            body["image"] = refs[0]
        else:
            body["images"] = refs
        return [api.HttpCall("POST", f"{self.base()}/images/edits", self.headers(key),
                             json=body)]

    def send(
        self, call: api.HttpCall, req: api.ImageRequest, transport: api.Transport,
        reporter: api.Reporter,
    ) -> Iterator[tuple[api.GeneratedImage, api.CallInfo]]:
        reporter.status(f"waiting for {self.name}")
        payload, resp = transport.json_spooled(call)
        info = api.CallInfo(request_id=api.request_id_of(resp))
        if isinstance(payload, dict) and payload.get("block_reason") \
                and not payload.get("data"):
            raise api.RefusedError(f"{self.name} blocked the request: "
                                   f"{payload['block_reason']}",
                                   code=str(payload["block_reason"]),
                                   request_id=info.request_id)
        yield from parse_images(payload, info, self.name)
