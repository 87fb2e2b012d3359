"""The one HTTP client: timeouts, retries, Retry-After, error mapping, redaction.

Owns the `Transport`: one httpx client shared by every worker, each call sent with
its deadline, logged for --debug, and retried (backoff with jitter, Retry-After,
429 pauses under a shared gate); and reading small JSON answers. Its parts live
beside it: httpcall.py (the request as data, and how it is shown), httperrors.py
(what a failure means, whether to retry), downloads.py (image URLs) and sse.py
(event streams); their public names are re-exported here. httpx is imported when
a Transport is built, never on the `--help` path.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from imagegen_cli import __version__
from imagegen_cli.errors import ProviderError, UnavailableError
from imagegen_cli.secrets import redact, redact_headers
from imagegen_cli.transport import jsonstream
from imagegen_cli.transport.call import HttpCall, body_summary, short_value, summarise
from imagegen_cli.transport.classify import (
    body_errors,
    classify,
    host_of,
    reason,
    request_id_of,
    retry_after,
    secs,
    should_retry,
)
from imagegen_cli.transport.downloads import download_spooled

# `NAME`: re-exported, callers have always found these here.

if TYPE_CHECKING:
    import httpx

    from imagegen_cli.transport.jsonstream import Spool
    from imagegen_cli.transport.limits import Gate

MAX_RETRY_AFTER = 120.0
# Under a shared gate (batch), a 429 pauses every worker and is retried without
# using up --retries, up to this many times per call.
MAX_THROTTLED = 50
JSON_CAP = 16 * 1024 * 1024  # a status or listing answer; images are spooled, not held


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

        # deadline.py subclasses httpcore's streams: imported where a request is made,
        # as httpx is, never by `import imagegen_cli.providers` (a `providers list`).
        from imagegen_cli.transport import deadline

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

    def pause(self, seconds: float) -> None:
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

    def backoff(self, attempt: int) -> float:
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
                sent_at = self.gate.before_send(self.pause)
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
            from imagegen_cli.transport import deadline

            deadline.start(self.timeout)
            try:
                resp = self.client.send(request, stream=stream)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if not call.resend_when_lost and not isinstance(
                        exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
                    raise UnavailableError(
                        f"{self.who} did not answer {call.method} {host_of(call.url)} "
                        f"({reason(exc)}); it may have been accepted, so it is not sent "
                        "again (that could pay twice)") from None
                if isinstance(exc, httpx.TimeoutException):
                    err: ProviderError = UnavailableError(
                        f"{self.who} did not answer within {self.timeout:g} s "
                        "(raise --timeout for slow models)"
                    )
                else:
                    err = UnavailableError(f"Cannot reach {host_of(call.url)}: {reason(exc)}")
                wait = self.backoff(attempt)
            else:
                if self.log:
                    self.log(f"< {resp.status_code} {request_id_of(resp) or ''}".rstrip())
                if self.gate is not None:
                    self.gate.observe(resp.headers)  # x-ratelimit-*: the provider's limit
                if resp.status_code < 400:
                    if self.log and not stream:
                        self.log(f"< body {body_summary(resp)}")
                    if self.gate is not None:
                        self.gate.succeeded()
                    return resp
                if stream:
                    resp.read()
                    resp.close()
                if self.log:
                    self.log(f"< body {body_summary(resp)}")
                err = classify(resp, self.who)
                if not should_retry(resp, err):
                    raise err
                after = retry_after(resp)
                if after is not None and after > MAX_RETRY_AFTER:
                    err.message += f"; it asks to wait {after:.0f} s, try again later"
                    raise err
                wait = after if after is not None else self.backoff(attempt)
                if self.gate is not None and resp.status_code == 429 \
                        and throttled < MAX_THROTTLED:
                    throttled += 1
                    self.gate.throttled(wait, sent_at)  # the next before_send waits
                    if self.log:
                        self.log(f"rate limited: every call to {self.who} waits {wait:.1f} s")
                    if self.on_retry:
                        self.on_retry(f"429 from {self.who}, retrying in {secs(wait)} s (rate "
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
                self.on_retry(f"{what}, retrying in {secs(wait)} s "
                              f"(attempt {attempt + 1} of {self.retries + 1})")
            self.pause(wait)

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
                self.log("< body " + redact(json.dumps(summarise(payload),
                                                       ensure_ascii=False, default=short_value)))
            return payload, resp
        except (ValueError, RecursionError):
            raise UnavailableError(
                f"{self.who} answered with something that is not JSON",
                status=resp.status_code,
                request_id=request_id_of(resp),
            ) from None

    def json_spooled(self, call: HttpCall, *, spool_key: str = "b64_json"
                     ) -> tuple[Any, httpx.Response]:
        """Like `json`, but the strings under SPOOL_KEY (base64 images: b64_json, or
        Gemini's "data") arrive as jsonstream.Spool objects on disk."""

        resp = self.send(call, stream=True)
        try:
            with body_errors(self.who, request_id_of(resp), self.timeout):
                payload = jsonstream.load(resp.iter_bytes(), spool_key)
                if self.log:
                    shown = json.dumps(summarise(payload), ensure_ascii=False,
                                       default=short_value)
                    self.log("< body " + redact(shown))
                return payload, resp
        except ValueError as exc:
            raise UnavailableError(
                f"{self.who} answered with a malformed body ({exc})",
                status=resp.status_code, request_id=request_id_of(resp)) from None
        finally:
            resp.close()

    def download_spooled(self, url: str, *, cap: int | None = None,
                         on_bytes: Callable[[int, int], None] | None = None) -> Spool:
        """Fetch an image URL into a temporary file (read it once with .read()): see
        downloads.py."""

        return download_spooled(self, url, cap=cap, on_bytes=on_bytes)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _user_agent() -> str:

    return f"imagegen-cli/{__version__}"
