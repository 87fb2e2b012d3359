"""What an HTTP answer or failure means: the error, its message, and whether to retry.

Owns reading an error body (JSON, HTML or text) into a message and code, the
request id, Retry-After, mapping a status to the exception tree (`classify`:
401/403 auth, 408/409/429/5xx unavailable, else refused), the retry decision
(`should_retry`, x-should-retry), turning a broken or stalled body read into
an UnavailableError (`body_errors`), and the short, secret-free words used in
these messages (`host_of`, `reason`, `secs`). httpx is imported only where a
body is being read.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from imagegen_cli.errors import AuthError, ProviderError, RefusedError, UnavailableError
from imagegen_cli.secrets import redact

if TYPE_CHECKING:
    import httpx

RETRY_STATUSES = {408, 409, 429}


def secs(wait: float) -> str:
    return f"{wait:.0f}" if wait >= 1 else f"{wait:.1f}"


def error_message(resp: httpx.Response) -> tuple[str, str | None]:
    """A readable message and error code from any error body: JSON, HTML or text."""
    text = resp.text if resp.content else ""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            msg = err.get("message") or err.get("type") or json.dumps(err)
            code = err.get("code")  # `type` is a category, not a code: never shown as one
            if isinstance(err.get("status"), str) and not isinstance(code, str):
                # Google's shape {"code": 400, "message", "status": "INVALID_ARGUMENT"}:
                # the number repeats the HTTP status, the name says what went wrong.
                code = err["status"]
            return str(msg), str(code) if code else None
        for key in ("message", "detail", "error", "msg"):
            if body.get(key):
                val = body[key]
                return (val if isinstance(val, str) else json.dumps(val)), (
                    str(body["code"]) if body.get("code") else None
                )
        return json.dumps(body)[:300], None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("msg") or body[0].get("message") or body[0])[:300], None
    if "<" in text and ">" in text:
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        text = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())
    return (text[:300] or resp.reason_phrase or f"HTTP {resp.status_code}"), None


def request_id_of(resp: httpx.Response) -> str | None:
    for h in ("x-request-id", "request-id", "x-amzn-requestid", "cf-ray"):
        if resp.headers.get(h):
            return str(resp.headers[h])
    return None


def retry_after(resp: httpx.Response) -> float | None:
    """Seconds the server asks to wait (Retry-After-Ms, Retry-After in seconds or as an
    HTTP date), never negative; None when absent or unreadable (NaN, garbage)."""
    ms = resp.headers.get("retry-after-ms")
    if ms:
        with contextlib.suppress(ValueError):
            return _sane_wait(float(ms) / 1000)
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return _sane_wait(float(value))
    except ValueError:
        pass
    import email.utils

    try:
        parsed = email.utils.parsedate_to_datetime(value)
        return _sane_wait(float(parsed.timestamp()) - time.time())
    except (TypeError, ValueError, IndexError, OverflowError, AttributeError):
        return None


def _sane_wait(seconds: float) -> float | None:
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)  # +inf stays: "asks to wait inf s, try again later"


def classify(resp: httpx.Response, who: str) -> ProviderError:
    msg, code = error_message(resp)
    msg = redact(msg)
    rid = request_id_of(resp)
    status = resp.status_code
    kw: dict[str, Any] = {"status": status, "code": code, "request_id": rid}
    if status in (401, 403):
        return AuthError(f"{who} refused the credentials: {msg}", **kw)
    if code == "insufficient_quota":
        return RefusedError(f"{who} refused the request: {msg}", **kw)
    if status in RETRY_STATUSES or status >= 500:
        return UnavailableError(f"{who} is unavailable: {msg}", **kw)
    return RefusedError(f"{who} refused the request: {msg}", **kw)


def should_retry(resp: httpx.Response, err: ProviderError) -> bool:
    explicit = resp.headers.get("x-should-retry")
    if explicit == "true":
        return True
    if explicit == "false":
        return False
    return isinstance(err, UnavailableError)


@contextlib.contextmanager
def body_errors(who: str, request_id: str | None = None,
                timeout: float | None = None) -> Iterator[None]:
    """While reading a response body: a broken or stalled connection is the
    provider being unavailable (exit 6), never an internal error."""
    import httpx

    try:
        yield
    except httpx.TimeoutException:
        limit = f" within {timeout:g} s (raise --timeout)" if timeout else " (timed out)"
        raise UnavailableError(f"{who} did not finish its answer{limit}",
                               request_id=request_id) from None
    except httpx.TransportError as exc:
        raise UnavailableError(f"{who}'s answer broke off: {reason(exc)}",
                               request_id=request_id) from None


def host_of(url: str) -> str:
    """HOST[:PORT] of URL: never its userinfo or query, which may hold a key."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return redact(url)
    if not host:
        return redact(url)
    return f"{host}:{port}" if port else host


def reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return redact(text.split("\n")[0])
