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
from collections.abc import Callable, Iterable, Iterator
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

# Re-exported: callers have always found these here.
from imagegen_cli.secrets import SENSITIVE_HEADERS as SENSITIVE_HEADERS
from imagegen_cli.secrets import redact as redact
from imagegen_cli.secrets import redact_data as redact_data
from imagegen_cli.secrets import redact_headers as redact_headers
from imagegen_cli.secrets import register_secret as register_secret

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
JSON_CAP = 16 * 1024 * 1024  # a status or listing answer; images are spooled, not held
SSE_LINE_CAP = 64 * 1024 * 1024  # one event line (a base64 partial image)
MAX_REDIRECTS = 5


@dataclass
class HttpCall:
    """One request, ready to send, and printable for --dry-run."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: dict[str, str] | None = None  # multipart text fields
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None  # multipart files

    def __post_init__(self) -> None:
        # Calls are built as BASE + "/path"; a base_url with a query (a gateway's
        # `?api-version=...`) keeps its query at the end of every call's URL.
        head, sep, rest = self.url.partition("?")
        if sep and "/" in rest:
            query, _, tail = rest.partition("/")
            self.url = f"{head}/{tail}?{query}"

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "url": self.url,
            "headers": redact_headers(self.headers),
        }
        if self.json is not None:
            out["body"] = _summarise(redact_data(self.json))
        if self.files is not None or self.data is not None:
            out["multipart"] = {
                "fields": redact_data(dict(self.data or {})),
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
        self._client_lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        """Built on first use: a run that makes no request never imports httpx. One
        client for every worker thread (its pool is shared; building it loads the CA
        bundle, tens of milliseconds)."""
        if self._client is not None:
            return self._client
        with self._client_lock:
            return self._client or self._build_client()

    def _build_client(self) -> httpx.Client:
        import httpx

        from imagegen_cli import deadline

        client = httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            follow_redirects=False,
            headers={"user-agent": _user_agent()},
            trust_env=True,
        )
        # --timeout bounds each call as a whole, not each socket read.
        deadline.install(client)
        self._client = client
        return client

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

        from imagegen_cli import deadline

        attempt = throttled = 0
        sent_at = None
        self.last_url = call.url  # for messages that must name what failed
        while True:
            if self.gate is not None:
                sent_at = self.gate.before_send(self._pause)
            request = self._build(call)
            if self.log:
                self.log(f"> {call.method} {redact(call.url)} "
                         f"{redact_headers(dict(request.headers))}")
                described = call.describe()
                for part in ("body", "multipart"):
                    if part in described:
                        self.log(f"> {part} {json.dumps(described[part], ensure_ascii=False)}")
            # From connecting to the last byte of the body (read by the caller on this
            # thread): one deadline per attempt.
            deadline.start(self.timeout)
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
                if self.gate is not None:
                    self.gate.observe(resp.headers)  # x-ratelimit-*: the provider's limit
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
        """A small JSON answer (job status, model list), read whole up to JSON_CAP."""
        resp = self.send(call, stream=True)
        try:
            with body_errors(self.who, request_id_of(resp), self.timeout):
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > JSON_CAP:
                        raise UnavailableError(
                            f"{self.who} answered with more than {JSON_CAP} bytes where a "
                            "short JSON answer was expected", request_id=request_id_of(resp))
        finally:
            resp.close()
        try:
            payload = json.loads(bytes(body))
            if self.log:
                self.log("< body " + redact(json.dumps(_summarise(payload),
                                                       ensure_ascii=False, default=_short)))
            return payload, resp
        except (ValueError, RecursionError):
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
            with body_errors(self.who, request_id_of(resp), self.timeout):
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
        only (redirects too), size-capped, never with the provider's key, each attempt
        within --timeout."""
        import httpx

        from imagegen_cli import deadline

        cap = cap or DOWNLOAD_CAP
        _check_scheme(url, f"{self.who} returned an image URL")
        attempt = 0
        while True:
            deadline.start(self.timeout)
            try:
                return self._download_once(url, cap, on_bytes)
            except httpx.TimeoutException:
                err = UnavailableError(f"Downloading the image from {_host(url)} took longer "
                                       f"than {self.timeout:g} s (raise --timeout)")
            except httpx.TransportError as exc:
                err = UnavailableError(f"Cannot download from {_host(url)}: {_reason(exc)}")
            except UnavailableError as exc:
                if exc.status is None:  # over the cap, bad redirect: retrying cannot help
                    raise
                err = exc
            if attempt >= self.retries:
                raise err from None
            wait = self._backoff(attempt)
            if self.on_retry:
                self.on_retry(f"download from {_host(url)} failed, retrying in {_secs(wait)} s "
                              f"(attempt {attempt + 2} of {self.retries + 1})")
            self._pause(wait)
            attempt += 1

    def _download_once(self, url: str, cap: int,
                       on_bytes: Callable[[int, int], None] | None) -> Spool:
        from imagegen_cli.jsonstream import Spool

        # Redirects are followed by hand: each hop must be http(s), and no header of
        # ours (there is no key on a download) is ever added.
        for _hop in range(MAX_REDIRECTS + 1):
            with self.client.stream("GET", url) as resp:
                if resp.is_redirect:
                    target = str(resp.url.join(resp.headers.get("location", "")))
                    _check_scheme(target, f"The image URL at {_host(url)} redirects")
                    url = target
                    continue
                if resp.status_code >= 400:
                    with body_errors(f"The image host {_host(url)}"):
                        resp.read()
                    raise classify(resp, f"The image host {_host(url)}")
                try:
                    total = int(resp.headers.get("content-length") or 0)
                except ValueError:
                    total = 0
                if total > cap:
                    raise UnavailableError(f"Image at {_host(url)} is {total} bytes, over the "
                                           f"{cap} byte limit")
                spool = Spool()
                got = 0
                try:
                    for chunk in resp.iter_bytes():
                        got += len(chunk)
                        if got > cap:
                            raise UnavailableError(
                                f"Image at {_host(url)} is over the {cap} byte limit")
                        spool.file.write(chunk)
                        if on_bytes:
                            on_bytes(got, total)
                except BaseException:
                    spool.file.close()
                    raise
                spool.size = got
                return spool
        raise UnavailableError(f"The image URL at {_host(url)} redirects more than "
                               f"{MAX_REDIRECTS} times")


def _check_scheme(url: str, what: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise UnavailableError(f"{what} with scheme '{scheme or 'none'}'; only http and "
                               "https are fetched")


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
        raise UnavailableError(f"{who}'s answer broke off: {_reason(exc)}",
                               request_id=request_id) from None


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def iter_sse(resp: httpx.Response) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream body."""
    return parse_sse(resp.iter_bytes())


def sse_lines(chunks: Iterable[bytes], cap: int = SSE_LINE_CAP) -> Iterator[str]:
    """Lines of an event stream (CRLF, LF or CR endings, split anywhere across
    chunks); a line longer than CAP bytes is a malformed stream."""
    buf = bytearray()
    cr_pending = False  # the last chunk ended in CR: an LF opening the next one is its pair
    for chunk in chunks:
        if cr_pending and chunk[:1] == b"\n":
            chunk = chunk[1:]
        cr_pending = False
        start = 0
        for m in _EOL.finditer(chunk):
            buf += chunk[start:m.start()]
            yield buf.decode("utf-8", "replace")
            buf.clear()
            start = m.end()
        buf += chunk[start:]
        if chunk.endswith(b"\r"):
            cr_pending = True
        if len(buf) > cap:
            raise UnavailableError(f"An event stream line is over {cap} bytes")
    if buf:
        yield buf.decode("utf-8", "replace")


_EOL = re.compile(rb"\r\n|\r|\n")


def parse_sse(chunks: Iterable[bytes]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of an event stream given as byte chunks (the WHATWG rules:
    comments skipped, `data:` lines joined with LF, an event is dispatched at a blank
    line; a final event without its blank line is still delivered)."""
    event = "message"
    data: list[str] = []
    first = True
    for line in sse_lines(chunks):
        if first:
            line = line.removeprefix("\ufeff")
            first = False
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
    """HOST[:PORT] of URL: never its userinfo or query, which may hold a key."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return redact(url)
    if not host:
        return redact(url)
    return f"{host}:{port}" if port else host


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return redact(text.split("\n")[0])


def _user_agent() -> str:
    from imagegen_cli import __version__

    return f"imagegen-cli/{__version__}"
