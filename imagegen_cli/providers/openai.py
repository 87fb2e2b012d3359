"""The OpenAI Images dialect: OpenAI itself and the gateways that speak it
(TrueFoundry, YEScale, ...)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from imagegen_cli.errors import RefusedError, UnavailableError
from imagegen_cli.http import HttpCall, body_errors, check_base_url, iter_sse, request_id_of
from imagegen_cli.providers.base import Capabilities, Provider, SizeRule, opt, param_merge
from imagegen_cli.requests import CallInfo, GeneratedImage, ImageRequest, Reporter

if TYPE_CHECKING:
    from imagegen_cli.http import Transport

YESCALE_SIZES = (
    "1024x1024", "1024x576", "1024x768", "1024x512", "512x1024", "512x768", "1280x960",
    "960x1280", "768x1366", "768x512", "1366x768", "1344x576",
)

DALLE2 = Capabilities(
    options=opt("--quality"),
    values={"--quality": ("standard",)},
    sizes=SizeRule(sizes=("256x256", "512x512", "1024x1024")),
    max_n=10, max_count=10, prompt_max=1000, inpaint=True,
)
DALLE3 = Capabilities(
    options=opt("--quality", "--style"),
    values={"--quality": ("standard", "hd"), "--style": ("vivid", "natural")},
    sizes=SizeRule(sizes=("1024x1024", "1792x1024", "1024x1792")),
    max_n=1, max_count=10, prompt_max=4000,
)
_GPT_IMAGE_OPTIONS = opt("--quality", "--background", "--moderation", "--stream",
                         "--partial-images")
_GPT_IMAGE_VALUES = {
    "--quality": ("low", "medium", "high", "auto"),
    "--background": ("transparent", "opaque", "auto"),
    "--moderation": ("low", "auto"),
}
GPT_IMAGE = Capabilities(
    options=_GPT_IMAGE_OPTIONS, values=_GPT_IMAGE_VALUES,
    ranges={"--partial-images": (0, 3)},
    sizes=SizeRule(sizes=("1024x1024", "1536x1024", "1024x1536"), allow_auto=True),
    max_n=10, max_count=10, prompt_max=32000, formats=("png", "jpeg", "webp"),
    inpaint=True, multi_image=True, stream=True,
)
GPT_IMAGE_2 = Capabilities(
    options=_GPT_IMAGE_OPTIONS, values=_GPT_IMAGE_VALUES,
    ranges={"--partial-images": (0, 3)},
    sizes=SizeRule(min_side=16, max_side=3840, multiple=16, max_ratio=3.0,
                   max_pixels=3840 * 2160, allow_auto=True),
    max_n=10, max_count=10, prompt_max=32000, formats=("png", "jpeg", "webp"),
    inpaint=True, multi_image=True, stream=True,
)
YESCALE_FLUX = Capabilities(
    sizes=SizeRule(sizes=YESCALE_SIZES), max_n=1, max_count=10,
    notes=("YEScale answers with image URLs",),
)
# A model this dialect does not know (a gateway's own): pass the OpenAI fields
# through and let the gateway judge; we cannot know its limits.
UNKNOWN = Capabilities(
    options=opt("--quality", "--style", "--background", "--moderation"),
    max_n=10, max_count=10,
    notes=("model limits unknown: options are passed through",),
)


def family(model: str | None) -> str:
    """'dall-e-2' | 'dall-e-3' | 'gpt-image' | 'gpt-image-2' | 'other'.

    Gateways prefix ids with an account ('openai-main/gpt-image-1'): judge the last part.
    """
    name = (model or "").rsplit("/", 1)[-1].lower()
    if name.startswith("dall-e-2"):
        return "dall-e-2"
    if name.startswith("dall-e-3"):
        return "dall-e-3"
    if name.startswith("gpt-image-2"):
        return "gpt-image-2"
    if name.startswith(("gpt-image", "chatgpt-image")):
        return "gpt-image"
    return "other"


class OpenAIProvider(Provider):
    type_name = "openai"
    lists_models_live = True

    def _is_yescale(self) -> bool:
        return self.cfg.name == "yescale" or "yescale" in (self.cfg.base_url or "")

    def capabilities(self, model: str | None) -> Capabilities:
        fam = family(model)
        if fam == "dall-e-2":
            return DALLE2
        if fam == "dall-e-3":
            return DALLE3
        if fam == "gpt-image":
            return GPT_IMAGE
        if fam == "gpt-image-2":
            return GPT_IMAGE_2
        if self._is_yescale():
            return YESCALE_FLUX
        return UNKNOWN

    def known_models(self) -> list[str]:
        if self._is_yescale():
            return ["flux-pro", "dall-e-3"]
        if self.cfg.name == "truefoundry":
            return [self.cfg.model] if self.cfg.model else []
        return ["gpt-image-1", "gpt-image-1-mini", "dall-e-3", "dall-e-2"]

    def base(self) -> str:
        return check_base_url(self.cfg.base_url or "https://api.openai.com/v1", self.name)

    def headers(self, key: str | None) -> dict[str, str]:
        h = {"content-type": "application/json", "accept": "application/json"}
        if key:
            h["authorization"] = f"Bearer {key}"
        return h

    def body(self, req: ImageRequest) -> dict[str, Any]:
        fam = family(req.model)
        body: dict[str, Any] = {"model": req.model, "prompt": req.prompt, "n": req.n}
        for field in ("size", "quality", "style", "background", "moderation"):
            value = getattr(req, field)
            if value is not None:
                body[field] = value
        if fam in ("gpt-image", "gpt-image-2"):
            if req.output_format:
                body["output_format"] = req.output_format
            if req.stream:
                body["stream"] = True
                if req.partial_images is not None:
                    body["partial_images"] = req.partial_images
        elif fam in ("dall-e-2", "dall-e-3"):
            # dall-e URLs expire within the hour: ask for the bytes themselves.
            body["response_format"] = "b64_json"
        return param_merge(body, req.params)

    def validate(self, req: ImageRequest, *, inpaint: bool = False) -> ImageRequest:
        req = super().validate(req, inpaint=inpaint)
        if inpaint and family(req.model) == "dall-e-2":
            req = _dalle2_edit_inputs(req)
        return req

    def prepare(self, req: ImageRequest, key: str | None) -> list[HttpCall]:
        if req.images:
            return [self._edit_call(req, key)]
        return [HttpCall("POST", f"{self.base()}/images/generations", self.headers(key),
                         json=self.body(req))]

    def _edit_call(self, req: ImageRequest, key: str | None) -> HttpCall:
        """POST /images/edits as multipart: image(s), an RGBA mask (alpha 0 = repaint)
        and the other fields as text parts."""
        from imagegen_cli.masks import openai_mask

        headers = self.headers(key)
        del headers["content-type"]  # httpx sets multipart/form-data with its boundary
        name = "image[]" if len(req.images) > 1 else "image"
        files: list[tuple[str, tuple[str, bytes, str]]] = [
            (name, (f"{im.path.stem}.png", im.data, "image/png")) for im in req.images]
        if req.mask is not None:
            files.append(("mask", ("mask.png", openai_mask(req.mask), "image/png")))
        fields = {k: _form_value(v) for k, v in self.body(req).items() if v is not None}
        return HttpCall("POST", f"{self.base()}/images/edits", headers, data=fields,
                        files=files)

    def run(
        self, req: ImageRequest, key: str | None, transport: Transport, reporter: Reporter
    ) -> Iterator[tuple[GeneratedImage, CallInfo]]:
        (call,) = self.prepare(req, key)
        yield from self.send(call, req, transport, reporter)

    def send(
        self, call: HttpCall, req: ImageRequest, transport: Transport, reporter: Reporter
    ) -> Iterator[tuple[GeneratedImage, CallInfo]]:
        if req.stream:
            yield from self._stream(call, transport, reporter)
            return
        reporter.status(f"waiting for {self.name}")
        payload, resp = transport.json_spooled(call)
        info = CallInfo(request_id=request_id_of(resp))
        tfy = resp.headers.get("x-tfy-resolved-model")
        if tfy:
            info.extra["resolved_model"] = tfy
        yield from parse_images(payload, info, self.name)

    def _stream(
        self, call: HttpCall, transport: Transport, reporter: Reporter
    ) -> Iterator[tuple[GeneratedImage, CallInfo]]:
        reporter.status(f"waiting for {self.name} (streaming)")
        resp = transport.send(call, stream=True)
        info = CallInfo(request_id=request_id_of(resp))
        done = 0
        try:
            with body_errors(self.name, info.request_id):
                for item in self._events(resp, info, reporter):
                    done += item[0].partial is None
                    yield item
        finally:
            resp.close()
        if not done:
            raise UnavailableError(f"{self.name}'s stream ended before the image was complete",
                                   request_id=info.request_id)

    def _events(
        self, resp: Any, info: CallInfo, reporter: Reporter
    ) -> Iterator[tuple[GeneratedImage, CallInfo]]:
        done = 0
        ctype = resp.headers.get("content-type", "")
        if "event-stream" not in ctype:
            # Some gateways ignore `stream` and answer in one piece.
            resp.read()
            try:
                payload = json.loads(resp.content)
            except ValueError:
                raise UnavailableError(f"{self.name} answered a stream request with "
                                       "neither events nor JSON") from None
            yield from parse_images(payload, info, self.name)
            return
        for event, data in iter_sse(resp):
            if data.strip() == "[DONE]":
                break
            try:
                frame = json.loads(data)
            except (ValueError, RecursionError):
                frame = None
            if not isinstance(frame, dict):
                raise UnavailableError(
                    f"{self.name} sent a malformed stream event",
                    request_id=info.request_id) from None
            if "error" in frame and frame["error"]:
                err = frame["error"] if isinstance(frame["error"], dict) else {}
                raise RefusedError(
                    f"{self.name} stopped the stream: "
                    f"{err.get('message') or frame['error']}",
                    code=err.get("code"), request_id=info.request_id)
            kind = str(frame.get("type") or event)
            if kind.endswith(".partial_image"):
                pk = frame.get("partial_image_index")
                k = (pk if isinstance(pk, int) and not isinstance(pk, bool) else 0) + 1
                reporter.status(f"partial image {k} received")
                yield GeneratedImage(index=done, data=_b64(frame.get("b64_json"), self.name),
                                     partial=k), info
            elif kind.endswith(".completed"):
                if isinstance(frame.get("usage"), dict):
                    info.usage = frame["usage"]
                yield GeneratedImage(index=done, data=_b64(frame.get("b64_json"),
                                                           self.name)), info
                done += 1

    def check(self, key: str | None, transport: Transport) -> str:
        call = HttpCall("GET", f"{self.base()}/models", self.headers(key))
        try:
            payload, _ = transport.json(call)
        except RefusedError as exc:
            if exc.status not in (404, 405):
                raise
            # A gateway without a model list: ask for an image with no prompt. It is
            # refused before any work (nothing billed); 401/403 would mean the key.
            probe = HttpCall("POST", f"{self.base()}/images/generations", self.headers(key),
                             json={})
            try:
                transport.json(probe)
            except RefusedError as refused:
                if refused.status in (400, 422):
                    return ("key accepted (no model list at GET /models; an empty "
                            "POST /images/generations was refused as expected)")
                raise
            return "key accepted"
        n = len(payload.get("data") or []) if isinstance(payload, dict) else 0
        return f"key accepted, {n} models listed"

    def list_models(self, key: str | None, transport: Transport) -> list[str]:
        call = HttpCall("GET", f"{self.base()}/models", self.headers(key))
        payload, _ = transport.json(call)
        items = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            raise UnavailableError(f"{self.name} answered GET /models without a model list")
        ids = [str(m.get("id")) for m in items if isinstance(m, dict) and m.get("id")]
        image = [i for i in ids if family(i) != "other" or "image" in i or "flux" in i]
        return sorted(image or ids)


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


DALLE2_EDIT_MAX = 4 * 1024 * 1024


def _dalle2_edit_inputs(req: ImageRequest) -> ImageRequest:
    """dall-e-2 edits take one square PNG under 4 MB: shrink when that is enough."""
    import io

    from PIL import Image

    from imagegen_cli.errors import UsageError
    from imagegen_cli.requests import InputImage

    im = req.images[0]
    if im.width != im.height:
        raise UsageError(f"{im.path} is {im.width}x{im.height}; dall-e-2 edits need a square "
                         "image: crop it, or use a gpt-image model")
    if len(im.data) < DALLE2_EDIT_MAX:
        return req
    side = min(im.width, 1024)
    while True:
        with Image.open(io.BytesIO(im.data)) as pil:
            buf = io.BytesIO()
            pil.resize((side, side), Image.Resampling.LANCZOS).save(buf, format="PNG",
                                                                   optimize=True)
        if buf.tell() < DALLE2_EDIT_MAX:
            break
        if side <= 256:
            raise UsageError(f"{im.path} stays over dall-e-2's 4 MB limit even at 256x256")
        side //= 2
    assert req.mask is not None
    from imagegen_cli.masks import load_area

    area = load_area(req.mask).resize((side, side), Image.Resampling.NEAREST)
    mbuf = io.BytesIO()
    area.save(mbuf, format="PNG")
    req.notices.append(f"{im.path} is over dall-e-2's 4 MB limit: sent at {side}x{side}")
    return req.with_(
        images=[InputImage(im.path, buf.getvalue(), side, side)],
        mask=InputImage(req.mask.path, mbuf.getvalue(), side, side))


def _b64(value: Any, who: str) -> bytes:
    from imagegen_cli.jsonstream import Spool

    if isinstance(value, Spool):
        return value.read()
    if not isinstance(value, str) or not value:
        raise UnavailableError(f"{who} sent an image frame without data")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UnavailableError(f"{who} sent image data that is not valid base64") from None


def parse_images(
    payload: Any, info: CallInfo, who: str, *, items_key: str = "data"
) -> Iterator[tuple[GeneratedImage, CallInfo]]:
    """Images from an OpenAI-shaped answer (or a bare list): b64_json or url items,
    with explicit nulls or empty strings standing for absent fields."""
    from imagegen_cli.jsonstream import Spool

    if isinstance(payload, dict):
        if payload.get("error"):
            err = payload["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            raise RefusedError(f"{who} refused the request: {msg}", request_id=info.request_id)
        if isinstance(payload.get("usage"), dict):
            info.usage = payload["usage"]
        items = payload.get(items_key)
    else:
        items = payload
    if not isinstance(items, list) or not items:
        raise UnavailableError(f"{who} answered without any image", request_id=info.request_id)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise UnavailableError(f"{who} answered with a malformed image entry",
                                   request_id=info.request_id)
        revised = item.get("revised_prompt") or None
        b64 = item.get("b64_json")
        url = item.get("url")
        if isinstance(b64, Spool):
            yield GeneratedImage(index=i, loader=b64.read, revised_prompt=revised), info
        elif b64:
            yield GeneratedImage(index=i, data=_b64(b64, who), revised_prompt=revised), info
        elif url:
            yield GeneratedImage(index=i, url=str(url), revised_prompt=revised), info
        else:
            raise UnavailableError(f"{who} answered with an image entry that has neither "
                                   "b64_json nor url", request_id=info.request_id)
