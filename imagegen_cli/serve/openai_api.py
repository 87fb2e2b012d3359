"""OpenAI's Images API, as the server reads and answers it: request bodies made into
the engine's typed options, images into `ImagesResponse` and stream events, and every
error into OpenAI's error shape with its HTTP status.

Fields beyond OpenAI's (seed, steps, guidance, negative_prompt, strength, resolution)
are accepted as extra body fields (`extra_body` in the SDK) and typed by the option
table's own check (settings/options.py `typed`); whether the provider takes them is
settling's check, as for the flags. A field the server does not know is a 400, never
dropped.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from imagegen_cli.engine.options import ImageOptions
from imagegen_cli.engine.save import SavedImage
from imagegen_cli.errors import (
    AuthError,
    ConfigError,
    ImagegenError,
    OutputError,
    ProviderError,
    RefusedError,
    UnavailableError,
    UsageError,
)
from imagegen_cli.secrets import redact
from imagegen_cli.serve.bridge import OverCap
from imagegen_cli.settings import options as table

# OpenAI's own fields (openai-python image_generate_params.py, image_edit_params.py),
# by the option each becomes (None: the server's own concern).
OPENAI_FIELDS: dict[str, str | None] = {
    "prompt": None, "model": None, "n": "count", "size": "size", "quality": "quality",
    "style": "style", "background": "background", "moderation": "moderation",
    "output_format": "format", "output_compression": "output_compression",
    "user": "user", "safety_identifier": "user", "partial_images": "partial_images",
    "stream": None, "response_format": None,
}
EDIT_ONLY: dict[str, str | None] = {"input_fidelity": "input_fidelity", "image": None,
                                    "image[]": None, "mask": None, "images": None}
# What providers take beyond OpenAI's fields, as extra body fields.
EXTRA_FIELDS: dict[str, str | None] = {"seed": "seed", "steps": "steps", "guidance": "guidance",
                "negative_prompt": "negative_prompt", "resolution": "resolution"}
EDIT_EXTRA: dict[str, str | None] = {"strength": "strength"}
RESPONSE_FORMATS = ("b64_json", "url")
STREAM_FORMATS = ("png", "webp", "jpeg")
# ImagesResponse's enums (openai-python images_response.py)
BACKGROUNDS = ("transparent", "opaque")
QUALITIES = ("low", "medium", "high", "xhigh", "max")


class ApiError(Exception):
    """An answer in OpenAI's error shape: {"error": {message, type, param, code}}."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = redact(message)  # an upstream key never reaches a client
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


def bad_request(message: str, param: str | None = None,
                code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


@dataclass
class ImagesCall:
    """One request to /v1/images/*: the options for the engine and what the server
    itself reads (response format, streaming)."""

    options: ImageOptions
    response_format: str = "b64_json"
    stream: bool = False
    partial_images: int = 0
    edit: bool = False
    given: set[str] = field(default_factory=set)


def parse(body: dict[str, Any], *, edit: bool, route: Any, form: bool = False,
          images: tuple[Any, ...] = (), mask: Any = None) -> ImagesCall:
    """BODY (JSON, or a multipart form's fields when FORM: text to be typed) as an
    ImagesCall. ROUTE maps OpenAI's `model` to (provider, model)."""
    known = {**OPENAI_FIELDS, **EXTRA_FIELDS, **(EDIT_ONLY | EDIT_EXTRA if edit else {})}
    for key in body:
        if key not in known:
            raise bad_request(f"Unrecognized request argument supplied: {key}", key,
                              "unknown_parameter")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad_request("Missing required parameter: 'prompt'.", "prompt",
                          "missing_required_parameter")
    given: dict[str, Any] = {"prompt": prompt.strip()}
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad_request("'model' must be a string", "model")
    given["provider"], given["model"] = route(model)
    for key, name in known.items():
        if name is None or key not in body or body[key] is None:
            continue
        row = table.option(name)
        value = _from_form(row, key, body[key]) if form else body[key]
        try:
            given[name] = table.typed(row, value)
        except table.Wrong as exc:
            raise bad_request(f"Invalid type for '{key}': expected {exc.want}", key,
                              "invalid_type") from None
    response_format = body.get("response_format") or "b64_json"
    if response_format not in RESPONSE_FORMATS:
        raise bad_request(f"Invalid value: '{response_format}'. Supported values are: "
                          "'b64_json' and 'url'.", "response_format")
    stream = body.get("stream", False)
    if form and isinstance(stream, str):
        stream = {"true": True, "false": False}.get(stream.lower(), stream)
    if not isinstance(stream, bool):
        raise bad_request("Invalid type for 'stream': expected a boolean", "stream",
                          "invalid_type")
    partials = given.get("partial_images") or 0
    if partials and not stream:
        raise bad_request("'partial_images' needs 'stream': true", "partial_images")
    if not 0 <= partials <= 3:
        raise bad_request("'partial_images' must be 0 to 3", "partial_images")
    if stream and given.get("format", "png") not in STREAM_FORMATS:
        raise bad_request(f"'output_format' {given['format']} cannot be streamed",
                          "output_format")
    given.pop("partial_images", None)  # the server asks for frames only where it streams
    if edit:
        given["image"] = images
        given["mask"] = mask
    return ImagesCall(ImageOptions(**given), response_format, stream, partials, edit,
                      set(body))


def _from_form(row: table.Option, key: str, text: Any) -> Any:
    """A multipart field's text as ROW's value type ("3" -> 3, "true" -> True)."""
    if not isinstance(text, str):
        raise bad_request(f"Invalid value for '{key}'", key)
    try:
        if row.value is int:
            return int(text.strip())
        if row.value is float:
            return float(text.strip())
    except ValueError:
        return text  # typed() says what it must be
    if row.value is bool:
        return {"true": True, "false": False}.get(text.strip().lower(), text)
    return text


def with_streaming(call: ImagesCall, streams: bool) -> ImageOptions:
    """The options to run: the provider's own stream (partial frames kept as files, so
    the server can send them on) when the client wants frames and the provider can."""
    if call.stream and call.partial_images and streams:
        return call.options.with_(stream=True, partial_images=call.partial_images,
                                  keep_partials=True)
    return call.options


# ---------------------------------------------------------------- errors

_FLAG = re.compile(r"(--[a-z][a-z-]+|-[nmsf]\b)")


def error_of(exc: BaseException, *, retry_after: float | None = None) -> ApiError:
    """EXC as OpenAI would say it: 400 what the request got wrong, 402 over a cost cap,
    429 (+ Retry-After) the upstream rate limits us, 502 the upstream failed or refused
    our key, 503 it cannot be reached."""
    if isinstance(exc, ApiError):
        return exc
    text = str(exc)
    if isinstance(exc, OverCap):
        return ApiError(402, text, type="insufficient_quota", code="max_cost_exceeded")
    if isinstance(exc, UsageError):
        return ApiError(400, _as_fields(text), param=_param_of(text), code="invalid_value")
    if isinstance(exc, ConfigError):
        return ApiError(400, text, code="provider_not_configured")
    if isinstance(exc, AuthError):
        # The upstream refused the server's key: nothing the client can fix or see.
        return ApiError(502, f"upstream provider refused the server's credentials: {text}",
                        type="server_error", code="upstream_auth")
    if isinstance(exc, ProviderError) and exc.status == 429:
        wait = max(1, round(retry_after or 10))
        return ApiError(429, text, type="rate_limit_exceeded", code="rate_limit_exceeded",
                        headers={"retry-after": str(wait)})
    if isinstance(exc, RefusedError):
        return ApiError(400, text, code=exc.code or "upstream_refused")
    if isinstance(exc, UnavailableError):
        status = 502 if exc.status else 503
        return ApiError(status, text, type="server_error", code="upstream_unavailable")
    if isinstance(exc, (OutputError, ImagegenError)):
        return ApiError(500, text, type="server_error", code="server_error")
    return ApiError(500, "internal error", type="server_error", code="server_error")


def _as_fields(text: str) -> str:
    """A message naming flags (--seed) names the body fields (seed) instead."""
    names = {f"--{k.replace('_', '-')}": k for k in (*EXTRA_FIELDS, *EDIT_EXTRA)}
    names.update({"-n": "n", "-s": "size", "-m": "model", "-f": "output_format",
                  "--format": "output_format", "--quality": "quality", "--style": "style",
                  "--background": "background", "--moderation": "moderation",
                  "--output-compression": "output_compression", "--user": "user",
                  "--input-fidelity": "input_fidelity", "--stream": "stream",
                  "--partial-images": "partial_images", "--size": "size"})
    return _FLAG.sub(lambda m: f"'{names[m.group(1)]}'" if m.group(1) in names
                     else m.group(1), text)


def _param_of(text: str) -> str | None:
    m = re.search(r"'([a-z_]+)'", _as_fields(text))
    return m.group(1) if m else None


# ---------------------------------------------------------------- answers

def image_item(img: SavedImage, data: str | None, url: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"b64_json": data} if data is not None else {"url": url}
    if img.revised_prompt:
        item["revised_prompt"] = img.revised_prompt
    return item


def images_response(images: list[SavedImage], items: list[dict[str, Any]],
                    usage: dict[str, Any] | None) -> dict[str, Any]:
    """ImagesResponse: created, data, and what the images are where OpenAI's enums can
    say it."""
    out: dict[str, Any] = {"created": int(time.time()), "data": items}
    if images:
        first = images[0]
        bg = first.resolved.get("background")
        if bg in BACKGROUNDS:
            out["background"] = bg
        if first.format in ("png", "webp", "jpeg", "gif", "svg"):
            out["output_format"] = first.format
        quality = first.resolved.get("quality")
        if quality in QUALITIES:
            out["quality"] = quality
        if first.width and first.height:
            out["size"] = f"{first.width}x{first.height}"
    shaped = usage_of(usage)
    if shaped is not None:
        out["usage"] = shaped
    return out


def usage_of(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenAI's token usage when the upstream reported it whole, else None."""
    if not usage:
        return None
    try:
        details = usage.get("input_tokens_details") or {}
        return {"input_tokens": int(usage["input_tokens"]),
                "output_tokens": int(usage["output_tokens"]),
                "total_tokens": int(usage["total_tokens"]),
                "input_tokens_details": {"text_tokens": int(details.get("text_tokens", 0)),
                                         "image_tokens": int(details.get("image_tokens", 0))}}
    except (KeyError, TypeError, ValueError):
        return None


def stream_event(kind: str, img: SavedImage, data: str, *, partial: int | None = None,
                 usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """An `image_generation.*` / `image_edit.*` event (partial_image or completed)."""
    bg = img.resolved.get("background")
    quality = img.resolved.get("quality")
    ev: dict[str, Any] = {
        "type": f"{kind}.{'partial_image' if partial is not None else 'completed'}",
        "b64_json": data,
        "background": bg if bg in (*BACKGROUNDS, "auto") else "auto",
        "created_at": int(time.time()),
        "output_format": img.format if img.format in STREAM_FORMATS else "png",
        "quality": quality if quality in (*QUALITIES, "auto") else "auto",
        "size": f"{img.width}x{img.height}" if img.width and img.height else "auto",
    }
    if partial is not None:
        ev["partial_image_index"] = partial
    else:
        ev["usage"] = usage_of(usage) or {
            "input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
            "input_tokens_details": {"text_tokens": 0, "image_tokens": 0}}
    return ev
