"""Reading an OpenAI-shaped answer: images, what the provider chose, usage.

Owns `parse_images` (b64_json or url items, spooled base64, explicit nulls,
an error object inside a 200), decoding one base64 frame (`decode_b64`), the fields
a provider reports it chose (`resolved_fields`), and summing usage across
stream events (`add_usage`). The Distribute and Nebula dialects read their
OpenAI-shaped answers with these too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from imagegen_cli.providers import CallInfo, GeneratedImage, RefusedError, UnavailableError
from imagegen_cli.transport import b64
from imagegen_cli.transport.jsonstream import Malformed, Spool


def spool_loader(spool: Spool, who: str) -> Callable[[], bytes]:
    """Reads SPOOL's image when it is saved; base64 that does not decode is then an
    unavailable answer (exit 6), like any malformed body."""

    def load() -> bytes:

        try:
            return spool.read()
        except Malformed as exc:
            raise UnavailableError(f"{who} answered with a malformed body ({exc})") from None

    return load


def decode_b64(value: Any, who: str) -> bytes:

    if isinstance(value, Spool):
        return spool_loader(value, who)()
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
            yield GeneratedImage(index=i, loader=spool_loader(b64, who), revised_prompt=revised,
                                 resolved=got), info
        elif b64:
            yield GeneratedImage(index=i, data=decode_b64(b64, who), revised_prompt=revised,
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
