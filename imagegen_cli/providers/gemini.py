"""Google's Gemini API, native image models: POST {base}/v1beta/models/{model}:generateContent.

The key goes in `x-goog-api-key` (never a Bearer header). The body is
`contents[{role: user, parts: [{text}, {inlineData: {mimeType, data}}...]}]` with
`generationConfig.responseModalities` ["TEXT", "IMAGE"] and `imageConfig`
(`aspectRatio`, `imageSize`). One image comes back per call, as an `inlineData` part of
the first candidate; text parts may come beside it (kept in the image's metadata as
`resolved.text`) and thought parts (`thought: true`) are never a final image. A blocked
prompt (`promptFeedback.blockReason`) or a candidate that ends without an image
(`finishReason` IMAGE_SAFETY, NO_IMAGE, ...) is a refusal, exit 5, naming the reason.

Sources (read 2026-12-05): ai.google.dev/gemini-api/docs/image-generation and
/api/generate-content; googleapis/python-genai types.py (at 6680718) for field names,
FinishReason and BlockedReason; docs/providers/gemini.md gathers them. Models and their
lifecycle: gemini_models.py.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from imagegen_cli import providers as api
from imagegen_cli.providers import gemini_models as models

BASE = "https://generativelanguage.googleapis.com"
# types.py FinishReason: what ends a candidate normally; anything else without an image
# is named in the refusal.
NORMAL_FINISH = ("STOP", "FINISH_REASON_UNSPECIFIED", "")
# Raw generationConfig fields that change what is billed or what the writer expects:
# each has its option (param_merge refuses the top-level ones the same way).
BILLED_CONFIG = {"candidateCount": "-n", "imageConfig": "--aspect / --resolution / -s",
                 "responseModalities": "(the dialect sets it: images and text)"}
# Google's error statuses (google.rpc.Code, as the Gemini API's troubleshooting page
# lists them) that mean the key, whatever the HTTP status says: an invalid key comes
# back as 400 INVALID_ARGUMENT with reason API_KEY_INVALID.
KEY_REASONS = ("API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED")


class GeminiProvider(api.Provider):
    type_name = "gemini"
    lists_models_live = True

    # -- declared once ---------------------------------------------------
    def capabilities(self, model: str | None) -> api.Capabilities:
        return models.model(model).caps

    def default_model(self) -> str | None:
        return self.cfg.model or models.DEFAULT_MODEL

    def known_models(self) -> list[str]:
        return models.current()

    def model_status(self, model: str) -> str | None:
        entry = models.lookup(model)
        return entry.describe() if entry else None

    def model_lifecycle(self, model: str) -> dict[str, Any] | None:
        entry = models.lookup(model)
        return entry.as_json() if entry else None

    def model_table_read(self) -> str | None:
        return models.read_on()

    def base(self) -> str:
        return api.check_base_url(self.cfg.base_url or BASE, self.name).rstrip("/")

    def headers(self, key: str | None) -> dict[str, str]:
        h = {"content-type": "application/json", "accept": "application/json"}
        if key:
            h["x-goog-api-key"] = key
        return h

    # -- validation ------------------------------------------------------
    def validate(self, req: api.ImageRequest, *, inpaint: bool = False) -> api.ImageRequest:
        req = self.resolve_model(req, inpaint=inpaint)
        if inpaint or req.mask is not None:
            raise api.UsageError(f"{self.name} takes no mask: describe the change and use "
                                 f"`imagegen edit -p {self.name} -i IMAGE PROMPT`")
        warning = models.check(req.model, urlsplit(self.base()).hostname or "", self.name)
        if warning and warning not in req.warnings:
            req = req.with_(warnings=[*req.warnings, warning])
        m = models.model(req.model)
        if req.size and m.caps.sizes is None:
            raise api.UsageError(
                f"{req.named('--size', req.size)}: {self.name} (model {req.model}) is sized by "
                "ratio and tier, and its outputs are not in imagegen's table: pass --aspect "
                "W:H and --resolution " + "|".join(m.tiers))
        req = super().validate(req, inpaint=inpaint)
        if req.size:
            ratio, tier = m.outputs[req.size]
            if req.resolution and req.resolution != tier:
                raise api.UsageError(
                    f"{req.named('--size', req.size)} is {req.model}'s {ratio} output at "
                    f"{tier}, but {req.named('--resolution', req.resolution)} asks for "
                    "another: pass one of them")
            req = req.with_(aspect_ratio=ratio, resolution=tier)
        self._check_params(req)
        return req

    def _check_params(self, req: api.ImageRequest) -> None:
        config = req.params.get("generationConfig")
        if config is not None and not isinstance(config, dict):
            raise api.UsageError("--param generationConfig=... must be a JSON object")
        for key, flag in BILLED_CONFIG.items():
            if isinstance(config, dict) and key in config:
                raise api.UsageError(f"--param generationConfig.{key} is set by imagegen: "
                                     f"use {flag}")

    # -- the request -----------------------------------------------------
    def body(self, req: api.ImageRequest) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [{"text": req.prompt}]
        for im in req.images:
            if not im.data and im.url:  # --dry-run does not download: say what would go
                parts.append({"inlineData": {"mimeType": "(of the download)",
                                             "data": f"<the bytes of {im.url}>"}})
                continue
            parts.append({"inlineData": {"mimeType": mime_of(im.data),
                                         "data": base64.b64encode(im.data).decode("ascii")}})
        config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
        image: dict[str, str] = {}
        if req.aspect_ratio:
            image["aspectRatio"] = req.aspect_ratio
        if req.resolution:
            image["imageSize"] = req.resolution
        if image:
            config["imageConfig"] = image
        if req.seed is not None:
            # GenerationConfig.seed (types.py): "the model makes a best effort to provide
            # the same response for repeated requests".
            config["seed"] = req.seed
        params = dict(req.params)
        extra = params.pop("generationConfig", None)
        if isinstance(extra, dict):
            config.update(extra)
        body = {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}
        return api.param_merge(body, params)

    def prepare(self, req: api.ImageRequest, key: str | None) -> list[api.HttpCall]:
        url = f"{self.base()}/v1beta/models/{quote(str(req.model), safe='.-_')}:generateContent"
        return [api.HttpCall("POST", url, self.headers(key), json=self.body(req))]

    def run(
        self, req: api.ImageRequest, key: str | None, transport: api.Transport,
        reporter: api.Reporter,
    ) -> Iterator[tuple[api.GeneratedImage, api.CallInfo]]:
        (call,) = self.prepare(req, key)
        reporter.status(f"waiting for {self.name}")
        with key_errors():
            payload, resp = transport.json_spooled(call, spool_key="data")
        info = api.CallInfo(request_id=api.request_id_of(resp))
        yield from parse(payload, info, self.name)

    # -- the key and the model list --------------------------------------
    def check(self, key: str | None, transport: api.Transport) -> str:
        model = str(self.default_model())
        call = api.HttpCall("GET", f"{self.base()}/v1beta/models/{quote(model, safe='.-_')}",
                            self.headers(key))
        with key_errors():
            payload, _ = transport.json(call)
        name = payload.get("name") if isinstance(payload, dict) else None
        return f"key accepted, model {str(name or model).removeprefix('models/')} is served"

    def list_models(self, key: str | None, transport: api.Transport) -> list[str]:
        names: list[str] = []
        token = ""
        for _ in range(20):  # pages of 1000: far more than the API lists
            url = f"{self.base()}/v1beta/models?pageSize=1000" + (
                f"&pageToken={quote(token)}" if token else "")
            with key_errors():
                payload, _ = transport.json(api.HttpCall("GET", url, self.headers(key)))
            items = payload.get("models") if isinstance(payload, dict) else None
            if not isinstance(items, list):
                raise api.UnavailableError(f"{self.name} answered GET /v1beta/models without "
                                           "a model list")
            for m in items:
                if isinstance(m, dict) and _draws_images(m):
                    names.append(str(m.get("name", "")).removeprefix("models/"))
            token = str(payload.get("nextPageToken") or "")
            if not token:
                break
        return sorted(set(names))


def _draws_images(m: dict[str, Any]) -> bool:
    """An image model served by generateContent: the API's model list says which
    methods a model takes, not what it outputs, so the name and our table decide."""
    name = str(m.get("name", "")).removeprefix("models/")
    methods = m.get("supportedGenerationMethods") or []
    return "generateContent" in methods and (
        name in models.MODELS or "image" in name or "nano-banana" in name)


# ------------------------------------------------------------------ answers

def parse(payload: Any, info: api.CallInfo, who: str
          ) -> Iterator[tuple[api.GeneratedImage, api.CallInfo]]:
    """The images of a generateContent answer, or the refusal it stands for."""
    if not isinstance(payload, dict):
        raise api.UnavailableError(f"{who} answered with a malformed body",
                                   request_id=info.request_id)
    usage = payload.get("usageMetadata")
    if isinstance(usage, dict):
        info.usage = usage_of(usage)
    feedback = payload.get("promptFeedback")
    blocked = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if blocked:
        why = feedback.get("blockReasonMessage") if isinstance(feedback, dict) else None
        raise api.RefusedError(f"{who} blocked the prompt: {blocked}"
                               + (f" ({why})" if why else ""),
                               code=str(blocked), request_id=info.request_id)
    candidates = payload.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise api.UnavailableError(f"{who} answered without any candidate or block reason",
                                   request_id=info.request_id)
    images: list[tuple[Any, str]] = []
    texts: list[str] = []
    finish = ""
    message = ""
    for cand in candidates:
        if not isinstance(cand, dict):
            continue
        finish = finish or str(cand.get("finishReason") or "")
        message = message or str(cand.get("finishMessage") or "")
        content = cand.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict) or part.get("thought"):
                continue  # thoughts (text, or interim images) are never the answer
            inline = part.get("inlineData")
            if isinstance(inline, dict):
                mime = str(inline.get("mimeType") or "")
                if mime.startswith("image/"):
                    images.append((inline.get("data"), mime))
            elif isinstance(part.get("text"), str) and part["text"].strip():
                texts.append(part["text"].strip())
    text = "\n".join(texts)
    if not images:
        reason = finish if finish not in NORMAL_FINISH else "NO_IMAGE"
        said = message or (f"it answered with text only: {text[:300]}" if text else "")
        raise api.RefusedError(f"{who} made no image: {reason}" + (f" ({said})" if said else ""),
                               code=reason, request_id=info.request_id)
    for i, (data, mime) in enumerate(images):
        resolved: dict[str, Any] = {"mime_type": mime}
        if text:
            resolved["text"] = text
        if finish and finish not in NORMAL_FINISH:
            resolved["finish_reason"] = finish
        img = api.GeneratedImage(index=i, resolved=resolved)
        img.loader = _loader(data, who, info.request_id)
        yield img, info


def _loader(data: Any, who: str, request_id: str | None) -> Callable[[], bytes]:
    def load() -> bytes:
        try:
            if isinstance(data, str) and data:
                return base64.b64decode(data, validate=True)
            if hasattr(data, "read"):  # spooled to disk as it arrived (transport)
                raw: bytes = data.read()
                return raw
        except (ValueError, binascii.Error) as exc:
            raise api.UnavailableError(f"{who} sent image data that is not valid base64 "
                                       f"({exc})", request_id=request_id) from None
        raise api.UnavailableError(f"{who} sent an image part without data",
                                   request_id=request_id)

    return load


def usage_of(meta: dict[str, Any]) -> dict[str, Any]:
    """usageMetadata in the shape the price table reads (input/output tokens and their
    text/image split), with Google's own fields kept under `gemini`. Thinking tokens are
    billed as text output (ai.google.dev pricing: output price "including thinking")."""

    def by_modality(key: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in meta.get(key) or []:
            if isinstance(d, dict) and isinstance(d.get("tokenCount"), int):
                kind = str(d.get("modality") or "TEXT").lower()
                out[f"{kind}_tokens"] = out.get(f"{kind}_tokens", 0) + d["tokenCount"]
        return out

    prompt = meta.get("promptTokenCount")
    cand = meta.get("candidatesTokenCount") or 0
    thoughts = meta.get("thoughtsTokenCount") or 0
    out: dict[str, Any] = {"gemini": meta}
    if isinstance(prompt, int) and isinstance(cand, int) and isinstance(thoughts, int):
        out["input_tokens"] = prompt
        out["output_tokens"] = cand + thoughts
        inp = by_modality("promptTokensDetails")
        if inp:
            out["input_tokens_details"] = {"text_tokens": inp.get("text_tokens", 0),
                                           "image_tokens": inp.get("image_tokens", 0)}
        outp = by_modality("candidatesTokensDetails")
        if outp:
            out["output_tokens_details"] = {
                "image_tokens": outp.get("image_tokens", 0),
                "text_tokens": outp.get("text_tokens", 0) + thoughts}
    return out


class key_errors:  # noqa: N801 - used as `with key_errors():`
    """Google answers a key it does not know with 400 INVALID_ARGUMENT and reason
    API_KEY_INVALID (not 401): that is the key (exit 4), not the request."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if isinstance(exc, api.RefusedError) and exc.status == 400 and (
                any(r in exc.message for r in KEY_REASONS) or "API key not valid" in exc.message):
            raise api.AuthError(exc.message.replace("refused the request",
                                                    "refused the credentials"),
                                status=exc.status, code=exc.code,
                                request_id=exc.request_id) from None


def mime_of(data: bytes) -> str:
    """The MIME type of an input image, from its first bytes (inlineData.mimeType; the
    image-generation guide takes PNG, JPEG, WebP, HEIC and HEIF)."""
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:12] in (b"ftypheic", b"ftypheix"):
        return "image/heic"
    if data[4:8] == b"ftyp":
        return "image/heif"
    return "image/png"
