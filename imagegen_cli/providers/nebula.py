"""Nebula Block serverless images (seed 001): POST {base}/images/generation.

One image per call; width/height instead of size; num_steps and guidance_scale;
negative_prompt for SDXL, seed for FLUX.1-schnell; inpainting through
FLUX.1-Fill-dev with base64 `image` and `mask` (white = repaint).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from imagegen_cli import providers as api
from imagegen_cli.files.images import resize
from imagegen_cli.files.masks import white_mask
from imagegen_cli.providers.openai_answers import decode_b64, spool_loader
from imagegen_cli.transport import b64
from imagegen_cli.transport.jsonstream import Spool

SDXL = "stabilityai/stable-diffusion-xl-base-1.0"
SCHNELL = "black-forest-labs/FLUX.1-schnell"
FILL = "black-forest-labs/FLUX.1-Fill-dev"

# FLUX wants multiples of 16; the API refuses sides outside 64..2048 (422 "width/height
# out of range"), so both are checked before sending.
_FLUX_SIZES = api.SizeRule(min_side=64, max_side=2048, multiple=16)
MODELS: dict[str, api.Capabilities] = {
    SDXL: api.Capabilities(
        options=api.opt("--steps", "--guidance", "--negative-prompt"),
        sizes=api.SizeRule(min_side=64, max_side=2048, multiple=8), max_n=1, max_count=10,
    ),
    SCHNELL: api.Capabilities(
        options=api.opt("--steps", "--guidance", "--seed"), sizes=_FLUX_SIZES, max_n=1,
        max_count=10,
    ),
    FILL: api.Capabilities(
        options=api.opt("--steps", "--guidance"), sizes=_FLUX_SIZES, max_n=1, max_count=10,
        inpaint=True, notes=("inpainting only: use `imagegen inpaint`",),
    ),
}
# Documented example values, sent when the user gives none (the API's own defaults
# are not documented).
DEFAULTS = {SDXL: (25, 7.0), SCHNELL: (4, 0.0), FILL: (40, 4.5)}
UNKNOWN = api.Capabilities(
    options=api.opt("--steps", "--guidance", "--seed", "--negative-prompt"), max_n=1,
    sizes=api.SizeRule(min_side=64, max_side=2048),
    max_count=10, inpaint=True, notes=("model limits unknown: options are passed through",),
)


class NebulaProvider(api.Provider):
    type_name = "nebula"
    lists_models_live = True

    def capabilities(self, model: str | None) -> api.Capabilities:
        return MODELS.get(model or "", UNKNOWN)

    def known_models(self) -> list[str]:
        return list(MODELS)

    def inpaint_model(self) -> str | None:
        model = self.default_model()
        return model if model and self.capabilities(model).inpaint else FILL

    def base(self) -> str:
        return api.check_base_url(self.cfg.base_url or "https://api.nebulablock.com/api/v1",
                              self.name)

    def headers(self, key: str | None) -> dict[str, str]:
        h = {"content-type": "application/json", "accept": "application/json"}
        if key:
            h["authorization"] = f"Bearer {key}"
        return h

    def validate(self, req: api.ImageRequest, *, inpaint: bool = False) -> api.ImageRequest:
        req = self.resolve_model(req, inpaint=inpaint)
        if req.model == FILL and not inpaint:

            raise api.UsageError(f"{FILL} only repaints: use `imagegen inpaint` with it")
        if inpaint and req.images and not req.size:
            # The model wants sides in multiples of 16: send the input resized to the
            # nearest such size, and give the result back at the input's size.
            im = req.images[0]
            w, h = (max(16, round(v / 16) * 16) for v in (im.width, im.height))
            req = req.with_(size=f"{w}x{h}")
            if (w, h) != (im.width, im.height):
                req.notices.append(
                    f"{im.path} is {im.width}x{im.height}; {self.name} needs multiples of 16, "
                    f"so it is sent as {w}x{h} and the result resized back")
        return super().validate(req, inpaint=inpaint)

    def body(self, req: api.ImageRequest) -> dict[str, Any]:
        w, h = (1024, 1024)
        if req.size and req.size != "auto":
            w, h = (int(x) for x in req.size.split("x"))
        steps, guidance = DEFAULTS.get(str(req.model), (None, None))
        body: dict[str, Any] = {"model": req.model, "prompt": req.prompt, "width": w,
                                "height": h}
        if req.steps is not None or steps is not None:
            body["num_steps"] = req.steps if req.steps is not None else steps
        if req.guidance is not None or guidance is not None:
            body["guidance_scale"] = req.guidance if req.guidance is not None else guidance
        if req.negative_prompt is not None:
            body["negative_prompt"] = req.negative_prompt
        if req.seed is not None:
            body["seed"] = req.seed
        if req.images and req.mask:
            body.update(self._inpaint_fields(req, w, h))
        return api.param_merge(body, req.params)

    def _inpaint_fields(self, req: api.ImageRequest, w: int, h: int) -> dict[str, str]:

        image = req.images[0]
        return {"image": b64.encode(resize(image.data, (w, h))),
                "mask": b64.encode(white_mask(req.mask, (w, h)))}  # type: ignore[arg-type]

    def prepare(self, req: api.ImageRequest, key: str | None) -> list[api.HttpCall]:
        return [api.HttpCall("POST", f"{self.base()}/images/generation", self.headers(key),
                         json=self.body(req))]

    def run(
        self, req: api.ImageRequest, key: str | None, transport: api.Transport,
        reporter: api.Reporter,
    ) -> Iterator[tuple[api.GeneratedImage, api.CallInfo]]:
        (call,) = self.prepare(req, key)
        reporter.status(f"waiting for {self.name}")
        payload, resp = transport.json_spooled(call)
        info = api.CallInfo(request_id=api.request_id_of(resp))
        if not isinstance(payload, dict):
            raise api.UnavailableError(f"{self.name} answered with a malformed body",
                                   request_id=info.request_id)
        status = str(payload.get("status") or "")
        if status != "success":
            raise api.RefusedError(
                f"{self.name} refused the request: "
                f"{payload.get('message') or status or 'no message'}",
                code=status or None, request_id=info.request_id)
        items = payload.get("data")
        if not isinstance(items, list) or not items:
            raise api.UnavailableError(f"{self.name} answered without any image",
                                   request_id=info.request_id)
        for i, item in enumerate(items):
            b64 = item.get("b64_json") if isinstance(item, dict) else None
            if not isinstance(b64, (Spool, str)) or not b64:
                raise api.UnavailableError(f"{self.name} answered with an image entry without "
                                       "b64_json", request_id=info.request_id)
            timings: dict[str, float] = {}
            raw = item.get("timings")
            if isinstance(raw, dict) and isinstance(raw.get("inference"), (int, float)):
                timings["inference_s"] = round(float(raw["inference"]), 3)
            img = api.GeneratedImage(index=i, timings=timings)

            if isinstance(b64, Spool):
                img.loader = spool_loader(b64, self.name)
            else:
                img.data = decode_b64(b64, self.name)
            if req.images and req.mask:
                img = _restore_size(img, req.images[0].width, req.images[0].height)
            yield img, info

    def check(self, key: str | None, transport: api.Transport) -> str:
        try:
            models = self.list_models(key, transport)
        except api.RefusedError as exc:
            if exc.status not in (404, 405):
                raise
            # No model list here (a proxy, an API change): ask for an image with no
            # prompt instead, refused before any work (nothing billed); 401/403 would
            # mean the key, as for any call.
            probe = api.HttpCall("POST", f"{self.base()}/images/generation",
                                 self.headers(key), json={"model": self.default_model()})
            try:
                transport.json(probe)
            except api.RefusedError as refused:
                if refused.status in (400, 422):
                    return ("key accepted (no model list at GET /serverless/models; a "
                            "POST /images/generation without a prompt was refused as "
                            "expected)")
                if refused.status in (404, 405):
                    return ("reachable; key not verified (no model list at GET "
                            "/serverless/models, and no answer to judge the key by)")
                raise
            return "key accepted"
        return f"key accepted, {len(models)} models listed"

    def list_models(self, key: str | None, transport: api.Transport) -> list[str]:
        call = api.HttpCall("GET", f"{self.base()}/serverless/models", self.headers(key))
        payload, _ = transport.json(call)
        data = payload.get("data") if isinstance(payload, dict) else None
        models = data.get("models") if isinstance(data, dict) else data
        if not isinstance(models, list):
            raise api.UnavailableError(f"{self.name} answered /serverless/models without a list")
        out = []
        for m in models:
            if not isinstance(m, dict):
                continue
            kind = str(m.get("model_type") or "").lower()
            if kind and "image" not in kind:
                continue
            out.append(str(m.get("model_name") or m.get("model_alias")))
        return sorted(out)



def _restore_size(img: api.GeneratedImage, width: int, height: int) -> api.GeneratedImage:
    """Give an inpainted result back at the input's size (it was sent at multiples of 16)."""
    loader, data = img.loader, img.data

    def load() -> bytes:
        raw = loader() if loader else data
        assert raw is not None
        return resize(raw, (width, height))

    return api.GeneratedImage(index=img.index, revised_prompt=img.revised_prompt,
                          timings=img.timings, loader=load)
