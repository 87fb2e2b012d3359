"""The one HTTP client: timeouts, retries, Retry-After, error mapping, redaction.

httpx is imported when a Transport is built, never on the `--help` path.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from imagegen_cli.errors import (
    AuthError,
    ConfigError,
    ProviderError,
    RefusedError,
    UnavailableError,
)

if TYPE_CHECKING:
    import httpx

    from imagegen_cli.jsonstream import Spool
    from imagegen_cli.limits import Gate

RETRY_STATUSES = {408, 409, 429}
MAX_RETRY_AFTER = 120.0
# Under a shared gate (batch), a 429 pauses every worker and is retried without
# using up --retries, up to this many times per call.
MAX_THROTTLED = 50
DOWNLOAD_CAP = 64 * 1024 * 1024
SENSITIVE_HEADERS = {"authorization", "proxy-authorization", "x-key", "api-key", "x-api-key"}

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Every output path runs through `redact`; register keys as soon as they are read."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        text = text.replace(s, "***")
    return text


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    out = {}
    for k, v in headers.items():
        if k.lower() in SENSITIVE_HEADERS:
            scheme = v.split(" ", 1)[0] if " " in v else ""
            out[k] = f"{scheme} ***".strip()
        else:
            out[k] = redact(v)
    return out


@dataclass
class HttpCall:
    """One request, ready to send, and printable for --dry-run."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: dict[str, str] | None = None  # multipart text fields
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None  # multipart files

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "url": self.url,
            "headers": redact_headers(self.headers),
        }
        if self.json is not None:
            out["body"] = _summarise(self.json)
        if self.files is not None or self.data is not None:
            out["multipart"] = {
                "fields": dict(self.data or {}),
                "files": [
                    {"name": name, "filename": f[0], "content_type": f[2], "bytes": len(f[1])}
                    for name, f in (self.files or [])
                ],
            }
        redacted: dict[str, Any] = json.loads(redact(json.dumps(out, default=_short)))
        return redacted


def _summarise(value: Any) -> Any:
    """The body as sent, but with long strings (base64 images) shown by size."""
    if isinstance(value, str) and len(value) > 512:
        return f"<{len(value)} characters>"
    if type(value).__name__ == "Spool":  # base64 decoded to disk as it arrived
        return f"<{getattr(value, 'size', 0)} bytes decoded from base64>"
    if isinstance(value, dict):
        return {k: _summarise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_summarise(v) for v in value]
    return value


def _secs(wait: float) -> str:
    return f"{wait:.0f}" if wait >= 1 else f"{wait:.1f}"


def _body_summary(resp: httpx.Response) -> str:
    """A response body for --debug: JSON with long strings (base64) shown by size,
    anything else cut short; secrets redacted."""
    try:
        text = json.dumps(_summarise(resp.json()), ensure_ascii=False)
    except ValueError:
        text = resp.text[:1000] if resp.content else "(empty)"
    return redact(text)


def _short(value: Any) -> str:
    return f"<{type(value).__name__}>"


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
    ms = resp.headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    import email.utils

    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed is None:
        return None
    return max(0.0, float(parsed.timestamp()) - time.time())


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


def _should_retry(resp: httpx.Response, err: ProviderError) -> bool:
    explicit = resp.headers.get("x-should-retry")
    if explicit == "true":
        return True
    if explicit == "false":
        return False
    return isinstance(err, UnavailableError)


class Transport:
    def __init__(
        self,
        *,
        timeout: float = 300.0,
        retries: int = 2,
        who: str = "The provider",
        log: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] | None = None,
        on_retry: Callable[[str], None] | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.gate = gate
        self.last_url: str | None = None
        self.retries = retries
        # Told each retry in words ("429 from openai, retrying in 58 s (attempt 2 of 3)").
        self.on_retry = on_retry
        self.who = who
        self.log = log
        self._sleep_fn = sleep
        self.timeout = timeout
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        """Built on first use: a run that makes no request never imports httpx."""
        if self._client is None:
            import httpx

            self._client = httpx.Client(
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                follow_redirects=False,
                headers={"user-agent": _user_agent()},
                trust_env=True,
            )
        return self._client

    def _pause(self, seconds: float) -> None:
        (self._sleep_fn or _sleep)(seconds)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self, call: HttpCall) -> httpx.Request:
        kwargs: dict[str, Any] = {"headers": call.headers}
        if call.json is not None:
            kwargs["json"] = call.json
        if call.files is not None:
            kwargs["files"] = call.files
            kwargs["data"] = call.data or {}
        elif call.data is not None:
            kwargs["data"] = call.data
        return self.client.build_request(call.method, call.url, **kwargs)

    def _backoff(self, attempt: int) -> float:
        return float(min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random()))

    def send(self, call: HttpCall, *, stream: bool = False) -> httpx.Response:
        """Send with retries; a 2xx response or a ProviderError. Streams are never retried
        once their body has started: the caller owns a streamed response."""
        import httpx

        attempt = throttled = 0
        sent_at = None
        self.last_url = call.url  # for messages that must name what failed
        while True:
            if self.gate is not None:
                sent_at = self.gate.before_send(self._pause)
            request = self._build(call)
            if self.log:
                self.log(f"> {call.method} {call.url} {redact_headers(dict(request.headers))}")
                described = call.describe()
                for part in ("body", "multipart"):
                    if part in described:
                        self.log(f"> {part} {json.dumps(described[part], ensure_ascii=False)}")
            try:
                resp = self.client.send(request, stream=stream)
            except httpx.TimeoutException:
                err: ProviderError = UnavailableError(
                    f"{self.who} did not answer within {self.timeout:g} s "
                    "(raise --timeout for slow models)"
                )
                wait = self._backoff(attempt)
            except httpx.TransportError as exc:
                err = UnavailableError(f"Cannot reach {_host(call.url)}: {_reason(exc)}")
                wait = self._backoff(attempt)
            else:
                if self.log:
                    self.log(f"< {resp.status_code} {request_id_of(resp) or ''}".rstrip())
                if resp.status_code < 400:
                    if self.log and not stream:
                        self.log(f"< body {_body_summary(resp)}")
                    if self.gate is not None:
                        self.gate.succeeded()
                    return resp
                if stream:
                    resp.read()
                    resp.close()
                if self.log:
                    self.log(f"< body {_body_summary(resp)}")
                err = classify(resp, self.who)
                if not _should_retry(resp, err):
                    raise err
                after = retry_after(resp)
                if after is not None and after > MAX_RETRY_AFTER:
                    err.message += f"; it asks to wait {after:.0f} s, try again later"
                    raise err
                wait = after if after is not None else self._backoff(attempt)
                if self.gate is not None and resp.status_code == 429 \
                        and throttled < MAX_THROTTLED:
                    throttled += 1
                    self.gate.throttled(wait, sent_at)  # the next before_send waits
                    if self.log:
                        self.log(f"rate limited: every call to {self.who} waits {wait:.1f} s")
                    if self.on_retry:
                        self.on_retry(f"429 from {self.who}, retrying in {_secs(wait)} s (rate "
                                      f"limited: this wait does not use up --retries)")
                    continue
            if attempt >= self.retries:
                if attempt:
                    err.message += f" (after {attempt + 1} attempts)"
                raise err
            attempt += 1
            if self.log:
                self.log(f"retrying in {wait:.1f} s ({err})")
            if self.on_retry:
                what = (f"{err.status} from {self.who}" if err.status
                        else f"no answer from {self.who}" if "did not answer" in err.message
                        else f"cannot reach {self.who}")
                self.on_retry(f"{what}, retrying in {_secs(wait)} s "
                              f"(attempt {attempt + 1} of {self.retries + 1})")
            self._pause(wait)

    def json(self, call: HttpCall) -> tuple[Any, httpx.Response]:
        resp = self.send(call)
        try:
            return resp.json(), resp
        except ValueError:
            raise UnavailableError(
                f"{self.who} answered with something that is not JSON",
                status=resp.status_code,
                request_id=request_id_of(resp),
            ) from None

    def json_spooled(self, call: HttpCall) -> tuple[Any, httpx.Response]:
        """Like `json`, but b64_json strings arrive as jsonstream.Spool objects on disk."""
        from imagegen_cli import jsonstream

        resp = self.send(call, stream=True)
        try:
            with body_errors(self.who, request_id_of(resp)):
                payload = jsonstream.load(resp.iter_bytes())
                if self.log:
                    self.log("< body " + redact(json.dumps(_summarise(payload),
                                                           ensure_ascii=False, default=_short)))
                return payload, resp
        except ValueError as exc:
            raise UnavailableError(
                f"{self.who} answered with a malformed body ({exc})",
                status=resp.status_code, request_id=request_id_of(resp)) from None
        finally:
            resp.close()

    def download_spooled(self, url: str, *, cap: int | None = None,
                         on_bytes: Callable[[int, int], None] | None = None) -> Spool:
        """Fetch an image URL into a temporary file (read it once with .read()): http(s)
        only, size-capped, never with the provider's key."""
        from imagegen_cli.jsonstream import Spool

        cap = cap or DOWNLOAD_CAP

        import httpx

        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise UnavailableError(f"{self.who} returned an image URL with scheme '{scheme}'"
                                   "; only http and https are fetched")
        attempt = 0
        while True:
            try:
                with self.client.stream("GET", url, follow_redirects=True) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        err = classify(resp, f"The image host {_host(url)}")
                        if not isinstance(err, UnavailableError) or attempt >= self.retries:
                            raise err
                    else:
                        total = int(resp.headers.get("content-length") or 0)
                        if total > cap:
                            raise UnavailableError(
                                f"Image at {_host(url)} is {total} bytes, over the "
                                f"{cap} byte limit")
                        spool = Spool()
                        got = 0
                        for chunk in resp.iter_bytes():
                            got += len(chunk)
                            if got > cap:
                                spool.file.close()
                                raise UnavailableError(
                                    f"Image at {_host(url)} is over the {cap} byte limit")
                            spool.file.write(chunk)
                            if on_bytes:
                                on_bytes(got, total)
                        spool.size = got
                        return spool
            except httpx.TimeoutException:
                if attempt >= self.retries:
                    raise UnavailableError(f"Timed out downloading from {_host(url)}") from None
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise UnavailableError(
                        f"Cannot download from {_host(url)}: {_reason(exc)}") from None
            wait = self._backoff(attempt)
            if self.on_retry:
                self.on_retry(f"download from {_host(url)} failed, retrying in {_secs(wait)} s "
                              f"(attempt {attempt + 2} of {self.retries + 1})")
            self._pause(wait)
            attempt += 1


@contextlib.contextmanager
def body_errors(who: str, request_id: str | None = None) -> Iterator[None]:
    """While reading a response body: a broken or stalled connection is the
    provider being unavailable (exit 6), never an internal error."""
    import httpx

    try:
        yield
    except httpx.TimeoutException:
        raise UnavailableError(f"{who} stopped sending mid-answer (timed out)",
                               request_id=request_id) from None
    except httpx.TransportError as exc:
        raise UnavailableError(f"{who}'s answer broke off: {_reason(exc)}",
                               request_id=request_id) from None


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def iter_sse(resp: httpx.Response) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream body."""
    event = "message"
    data: list[str] = []
    for line in resp.iter_lines():
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)


def check_base_url(url: str, provider: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"Bad base_url '{url}' for provider {provider}: expected http(s)://HOST/..."
        )
    return url.rstrip("/")


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return redact(text.split("\n")[0])


def _user_agent() -> str:
    from imagegen_cli import __version__

    return f"imagegen-cli/{__version__}"
