"""The OpenAI Images dialect: OpenAI itself and the gateways that speak it
(TrueFoundry, YEScale, ...)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from imagegen_cli import b64
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
# Where each limit comes from: openai-python's types (image_generate_params.py,
# image_edit_params.py, images_response.py; read 2026-11-23 at commit e43b422) for
# gpt-image-1/1.5/mini and gpt-image-2; OpenAI's model pages for the 2.5 and 2.6
# families (released 2026-09-08 and 2026-11-04, after that SDK snapshot), as
# summarised in PROVIDERS.md.
_GPT_BASE_OPTIONS = ("--quality", "--background", "--moderation", "--stream",
                     "--partial-images", "--output-compression", "--user")
_GPT_VALUES = {
    "--quality": ("low", "medium", "high", "auto"),
    "--background": ("transparent", "opaque", "auto"),
    "--moderation": ("low", "auto"),
    "--input-fidelity": ("high", "low"),  # edits only (image_edit_params.py)
}
# partial_images 0-3 and output_compression 0-100: image_generate_params.py.
_GPT_RANGES = {"--partial-images": (0.0, 3.0), "--output-compression": (0.0, 100.0)}
# image_edit_params.py: "You can provide up to 16 images", each "less than 50MB".
MAX_EDIT_IMAGES = 16
MAX_EDIT_IMAGE_BYTES = 50 * 1024 * 1024
STILL_FORMATS = ("png", "jpeg", "webp")  # image_generate_params.py output_format
# gpt-image-2 and later: "Width and height must both be divisible by 16 and the requested
# aspect ratio must be between 1:3 and 3:1 ... the maximum supported resolution is
# 3840x2160" (image_generate_params.py, size).
FREE_SIZES = SizeRule(min_side=16, max_side=3840, multiple=16, max_ratio=3.0,
                      max_pixels=3840 * 2160, allow_auto=True)


def _gpt_image(
    sizes: SizeRule, *, quality: tuple[str, ...] = (), complexity: bool = False,
    fidelity: bool = True, formats: tuple[str, ...] = STILL_FORMATS,
    notes: tuple[str, ...] = (),
) -> Capabilities:
    values = dict(_GPT_VALUES)
    values["--quality"] = ("low", "medium", "high") + quality + ("auto",)
    options = list(_GPT_BASE_OPTIONS)
    if fidelity:
        options.append("--input-fidelity")
    if complexity:
        options.append("--complexity")
        values["--complexity"] = ("low", "medium", "high")
    return Capabilities(
        options=opt(*options), values=values, ranges=_GPT_RANGES, sizes=sizes,
        max_n=10, max_count=10, prompt_max=32000, formats=formats,
        inpaint=True, multi_image=True, edit=True, max_images=MAX_EDIT_IMAGES,
        image_urls=True, stream=True, notes=notes)


_FIXED_SIZES = SizeRule(sizes=("1024x1024", "1536x1024", "1024x1536"), allow_auto=True)
# gpt-image-1, gpt-image-1.5, chatgpt-image-latest.
GPT_IMAGE = _gpt_image(_FIXED_SIZES)
# input_fidelity: "unsupported for gpt-image-1-mini" (image_edit_params.py).
GPT_IMAGE_MINI = _gpt_image(_FIXED_SIZES, fidelity=False)
GPT_IMAGE_2 = _gpt_image(FREE_SIZES)
# 2.5 adds quality xhigh and max; 2.6 keeps them, adds complexity and, for
# generations only, SVG and animated GIF output.
GPT_IMAGE_2_5 = _gpt_image(FREE_SIZES, quality=("xhigh", "max"))
GPT_IMAGE_2_6 = _gpt_image(FREE_SIZES, quality=("xhigh", "max"), complexity=True,
                           formats=STILL_FORMATS + ("gif", "svg"),
                           notes=("gif and svg output on generations only",))
NEWEST = "gpt-image-2.6"
GPT_IMAGE_NEXT = dataclasses.replace(
    GPT_IMAGE_2_6, notes=(f"model not in imagegen's table: checked by {NEWEST}'s rules",))
GENERATION_ONLY_FORMATS = ("gif", "svg")
YESCALE_FLUX = Capabilities(
    sizes=SizeRule(sizes=YESCALE_SIZES), max_n=1, max_count=10,
    notes=("YEScale answers with image URLs",),
)
# A model this dialect does not know (a gateway's own): pass the OpenAI fields
# through and let the gateway judge; we cannot know its limits.
UNKNOWN = Capabilities(
    options=opt("--quality", "--style", "--background", "--moderation", "--user"),
    max_n=10, max_count=10,
    notes=("model limits unknown: options are passed through",),
)


def family(model: str | None) -> str:
    """'dall-e-2' | 'dall-e-3' | 'gpt-image' | 'gpt-image-mini' | 'gpt-image-2' |
    'gpt-image-2.5' | 'gpt-image-2.6' | 'gpt-image-next' | 'other'.

    Gateways prefix ids with an account ('openai-main/gpt-image-1'): judge the last part.
    An unknown gpt-image-* id ('gpt-image-3') is 'gpt-image-next': the newest rules.
    """
    name = (model or "").rsplit("/", 1)[-1].lower()
    if name.startswith("dall-e-2"):
        return "dall-e-2"
    if name.startswith("dall-e-3"):
        return "dall-e-3"
    if name.startswith("gpt-image-2.6"):
        return "gpt-image-2.6"
    if name.startswith("gpt-image-2.5"):
        return "gpt-image-2.5"
    if re.fullmatch(r"gpt-image-2(-\d{4}-\d{2}-\d{2})?", name):
        return "gpt-image-2"
    if name.startswith("gpt-image-1-mini"):
        return "gpt-image-mini"
    if re.fullmatch(r"gpt-image-1(\.5)?(-\d{4}-\d{2}-\d{2})?", name) or \
            name.startswith("chatgpt-image"):
        return "gpt-image"
    if name.startswith("gpt-image"):
        return "gpt-image-next"
    return "other"


def is_gpt_image(fam: str) -> bool:
    return fam.startswith("gpt-image")


FAMILY_CAPS = {
    "dall-e-2": DALLE2, "dall-e-3": DALLE3, "gpt-image": GPT_IMAGE,
    "gpt-image-mini": GPT_IMAGE_MINI, "gpt-image-2": GPT_IMAGE_2,
    "gpt-image-2.5": GPT_IMAGE_2_5, "gpt-image-2.6": GPT_IMAGE_2_6,
    "gpt-image-next": GPT_IMAGE_NEXT,
}


class OpenAIProvider(Provider):
    type_name = "openai"
    lists_models_live = True

    def _is_yescale(self) -> bool:
        return self.cfg.name == "yescale" or "yescale" in (self.cfg.base_url or "")

    def capabilities(self, model: str | None) -> Capabilities:
        caps = FAMILY_CAPS.get(family(model))
        if caps is not None:
            return caps
        if self._is_yescale():
            return YESCALE_FLUX
        return UNKNOWN

    def known_models(self) -> list[str]:
        if self._is_yescale():
            return ["flux-pro", "dall-e-3"]
        if self.cfg.name == "truefoundry":
            return [self.cfg.model] if self.cfg.model else []
        from imagegen_cli import lifecycle

        # What one can still call: shut-down models are left out.
        return lifecycle.current()

    def model_status(self, model: str) -> str | None:
        from imagegen_cli import lifecycle

        entry = lifecycle.lookup(model)
        return entry.describe() if entry else None

    def model_lifecycle(self, model: str) -> dict[str, Any] | None:
        from imagegen_cli import lifecycle

        entry = lifecycle.lookup(model)
        return entry.as_json() if entry else None

    def base(self) -> str:
        return check_base_url(self.cfg.base_url or "https://api.openai.com/v1", self.name)

    def headers(self, key: str | None, *, stream: bool = False) -> dict[str, str]:
        # A server that negotiates on Accept answers a stream request with JSON unless
        # the client says it reads events.
        h = {"content-type": "application/json",
             "accept": "text/event-stream" if stream else "application/json"}
        if key:
            h["authorization"] = f"Bearer {key}"
        return h

    def body(self, req: ImageRequest) -> dict[str, Any]:
        fam = family(req.model)
        body: dict[str, Any] = {"model": req.model, "prompt": req.prompt, "n": req.n}
        for field in ("size", "quality", "style", "background", "moderation", "user",
                      "output_compression", "complexity"):
            value = getattr(req, field)
            if value is not None:
                body[field] = value
        if req.input_fidelity is not None and req.images:
            body["input_fidelity"] = req.input_fidelity
        if is_gpt_image(fam):
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
        from imagegen_cli import lifecycle
        from imagegen_cli.errors import UsageError

        if "stream" in req.params:
            # The answer would be events parsed as JSON: --stream reads them.
            raise UsageError("--param stream=... is not allowed: pass --stream instead")
        req = self.resolve_model(req, inpaint=inpaint)
        # exit 2 if shut down on OpenAI
        warning = lifecycle.check(req.model, self.base(), provider=self.name)
        if warning and warning not in req.warnings:
            req = req.with_(warnings=[*req.warnings, warning])
        fam = family(req.model)
        if fam == "gpt-image-next":
            req = req.with_(notices=[*req.notices, (
                f"{req.model} is not in imagegen's model table: using {NEWEST}'s rules "
                "(the API has the last word)")])
        req = super().validate(req, inpaint=inpaint)
        fmt = req.output_format or "png"
        where = f"{req.model}"
        edits = bool(req.images)
        if req.background == "transparent" and fmt == "jpeg":
            raise UsageError("--background transparent needs an output format with alpha: "
                             "pass -f png or -f webp (jpeg has none)")
        if req.output_compression is not None and fmt not in ("jpeg", "webp"):
            raise UsageError("--output-compression applies to jpeg and webp output only: "
                             "add -f jpeg or -f webp (or drop it)")
        if not edits and (req.input_fidelity is not None or "input_fidelity" in req.params):
            raise UsageError("--input-fidelity applies to edits of input images only: drop "
                             "it, or use `imagegen edit PROMPT -i IMAGE`")
        if edits and fmt in GENERATION_ONLY_FORMATS:
            raise UsageError(f"-f {fmt} is produced by {where} for generations only, not "
                             "edits: pass -f png, jpeg or webp")
        if is_gpt_image(fam):
            for im in req.images:
                if len(im.data) >= MAX_EDIT_IMAGE_BYTES:
                    raise UsageError(f"{im.path} is {len(im.data) // (1024 * 1024)} MB; "
                                     f"{where} takes input images under 50 MB: shrink it")
        if inpaint and fam == "dall-e-2":
            req = _dalle2_edit_inputs(req)
        if any(im.url for im in req.images) and not self.capabilities(req.model).image_urls:
            raise UsageError(f"{where} cannot take image URLs: download the image first")
        return req

    def prepare(self, req: ImageRequest, key: str | None) -> list[HttpCall]:
        if req.images and any(im.url for im in req.images):
            return [self._edit_json_call(req, key)]
        if req.images:
            return [self._edit_call(req, key)]
        return [HttpCall("POST", f"{self.base()}/images/generations",
                         self.headers(key, stream=req.stream), json=self.body(req))]

    def _edit_call(self, req: ImageRequest, key: str | None) -> HttpCall:
        """POST /images/edits as multipart: image(s), an RGBA mask (alpha 0 = repaint)
        and the other fields as text parts."""
        from imagegen_cli.images import sniff
        from imagegen_cli.masks import openai_mask

        headers = self.headers(key, stream=req.stream)
        del headers["content-type"]  # httpx sets multipart/form-data with its boundary
        name = "image[]" if len(req.images) > 1 else "image"
        files: list[tuple[str, tuple[str, bytes, str]]] = []
        for im in req.images:
            fmt = sniff(im.data) or "png"
            ext = "jpg" if fmt == "jpeg" else fmt
            files.append((name, (f"{im.path.stem}.{ext}", im.data, f"image/{fmt}")))
        if req.mask is not None:
            files.append(("mask", ("mask.png", openai_mask(req.mask), "image/png")))
        fields = {k: _form_value(v) for k, v in self.body(req).items() if v is not None}
        return HttpCall("POST", f"{self.base()}/images/edits", headers, data=fields,
                        files=files)

    def _edit_json_call(self, req: ImageRequest, key: str | None) -> HttpCall:
        """POST /images/edits as JSON (the spec's EditImageBodyJsonParam): `images` is a
        list of {"image_url": ...}, URLs as given and local files as data URLs. Used when
        any input is a URL; GPT image models only (dall-e-2 edits stay multipart)."""
        from imagegen_cli.masks import openai_mask

        body = self.body(req)
        body["images"] = [{"image_url": im.url or _data_url(im.data)} for im in req.images]
        if req.mask is not None:
            body["mask"] = {"image_url": _data_url(openai_mask(req.mask))}
        return HttpCall("POST", f"{self.base()}/images/edits",
                        self.headers(key, stream=req.stream), json=body)

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
                                     partial=k, resolved=resolved_fields(frame)), info
            elif kind.endswith(".completed"):
                if isinstance(frame.get("usage"), dict):
                    # One completed event per image: n>1 sums, never overwrites.
                    info.usage = add_usage(info.usage, frame["usage"])
                yield GeneratedImage(index=done, data=_b64(frame.get("b64_json"), self.name),
                                     resolved=resolved_fields(frame)), info
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


def _data_url(data: bytes) -> str:
    from imagegen_cli.images import sniff

    return f"data:image/{sniff(data) or 'png'};base64," + b64.encode(data)


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
        return b64.decode(value)
    except (b64.Error, ValueError):
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
        resolved = resolved_fields(payload)
    else:
        items = payload
        resolved = {}
    if not isinstance(items, list) or not items:
        raise UnavailableError(f"{who} answered without any image", request_id=info.request_id)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise UnavailableError(f"{who} answered with a malformed image entry",
                                   request_id=info.request_id)
        revised = item.get("revised_prompt") or None
        b64 = item.get("b64_json")
        url = item.get("url")
        got = dict(resolved, **resolved_fields(item))
        if isinstance(b64, Spool):
            yield GeneratedImage(index=i, loader=b64.read, revised_prompt=revised,
                                 resolved=got), info
        elif b64:
            yield GeneratedImage(index=i, data=_b64(b64, who), revised_prompt=revised,
                                 resolved=got), info
        elif url:
            yield GeneratedImage(index=i, url=str(url), revised_prompt=revised,
                                 resolved=got), info
        else:
            raise UnavailableError(f"{who} answered with an image entry that has neither "
                                   "b64_json nor url", request_id=info.request_id)


# What the provider says it chose: ImagesResponse's background/output_format/quality/
# size/created (images_response.py), the stream events' created_at (image_gen_completed_
# event.py), and the 2.6 family's generation_id and svg_usage.
RESOLVED_KEYS = ("quality", "background", "size", "output_format", "created", "created_at",
                 "generation_id", "svg_usage")


def resolved_fields(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        return {}
    out = {k: obj[k] for k in RESOLVED_KEYS if obj.get(k) not in (None, "")}
    if "created_at" in out:
        out.setdefault("created", out.pop("created_at"))
    return out


def add_usage(total: dict[str, Any] | None, more: dict[str, Any]) -> dict[str, Any]:
    """TOTAL + MORE, numbers summed at every level (usage nests token details)."""
    out = dict(total or {})
    for k, v in more.items():
        if isinstance(v, bool):
            out[k] = v
        elif isinstance(v, (int, float)):
            prev = out.get(k)
            out[k] = (prev if isinstance(prev, (int, float)) else 0) + v
        elif isinstance(v, dict):
            prev = out.get(k)
            out[k] = add_usage(prev if isinstance(prev, dict) else None, v)
        else:
            out[k] = v
    return out
