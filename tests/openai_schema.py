"""OpenAI's response schemas for the Images API, checked strictly: the server's answers
must hold every required field with its type and enum, and nothing else.

From the OpenAPI spec's ImagesResponse, ImageGenPartialImageEvent,
ImageGenCompletedEvent, ImageEdit*Event and Error (as generated into openai-python's
types/images_response.py, image_gen_*_event.py, image_edit_*_event.py)."""

from __future__ import annotations

import base64
from typing import Any

USAGE_DETAILS = {"image_tokens": int, "text_tokens": int}
USAGE_REQUIRED = {"input_tokens": int, "input_tokens_details": dict, "output_tokens": int,
                  "total_tokens": int}
STREAM_BG = ("transparent", "opaque", "auto")
STREAM_FMT = ("png", "webp", "jpeg")
STREAM_QUALITY = ("low", "medium", "high", "xhigh", "max", "auto")


def _exact(obj: Any, required: dict[str, Any], optional: dict[str, Any], what: str) -> None:
    assert isinstance(obj, dict), f"{what}: not an object"
    missing = set(required) - set(obj)
    assert not missing, f"{what}: missing {missing}"
    extra = set(obj) - set(required) - set(optional)
    assert not extra, f"{what}: fields not in the schema: {extra}"
    for key, want in {**required, **optional}.items():
        if key not in obj or (key in optional and obj[key] is None):
            continue
        value = obj[key]
        if isinstance(want, tuple) and want and isinstance(want[0], str):
            assert value in want, f"{what}.{key}: {value!r} not in {want}"
        elif want is int:
            assert isinstance(value, int) and not isinstance(value, bool), f"{what}.{key}"
        else:
            assert isinstance(value, want), f"{what}.{key}: {type(value).__name__}"


def check_usage(usage: Any, what: str) -> None:
    _exact(usage, USAGE_REQUIRED, {"output_tokens_details": dict}, what)
    _exact(usage["input_tokens_details"], USAGE_DETAILS, {}, what + ".input_tokens_details")


def check_images_response(body: Any) -> None:
    _exact(body, {"created": int}, {
        "data": list, "background": ("transparent", "opaque"),
        "output_format": ("png", "webp", "jpeg", "gif", "svg"),
        "quality": ("low", "medium", "high", "xhigh", "max"), "size": str, "usage": dict,
        "safety_identifier": str, "svg_usage": dict}, "ImagesResponse")
    for item in body.get("data") or []:
        _exact(item, {}, {"b64_json": str, "url": str, "revised_prompt": str}, "Image")
        assert ("b64_json" in item) != ("url" in item), "Image: one of b64_json or url"
        if "b64_json" in item:
            base64.b64decode(item["b64_json"], validate=True)
    if "usage" in body:
        check_usage(body["usage"], "ImagesResponse.usage")


def check_stream_event(ev: Any, kind: str = "image_generation") -> None:
    common = {"b64_json": str, "background": STREAM_BG, "created_at": int,
              "output_format": STREAM_FMT, "quality": STREAM_QUALITY, "size": str,
              "type": str}
    if ev.get("type") == f"{kind}.partial_image":
        _exact(ev, {**common, "partial_image_index": int}, {"safety_identifier": str},
               "PartialImageEvent")
    else:
        assert ev.get("type") == f"{kind}.completed", ev.get("type")
        _exact(ev, {**common, "usage": dict}, {"safety_identifier": str}, "CompletedEvent")
        check_usage(ev["usage"], "CompletedEvent.usage")
    base64.b64decode(ev["b64_json"], validate=True)


def check_error(body: Any) -> dict[str, Any]:
    _exact(body, {"error": dict}, {}, "ErrorResponse")
    err = body["error"]
    _exact(err, {"message": str, "type": str, "param": object, "code": object}, {}, "Error")
    return err
