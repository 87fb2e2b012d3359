"""A request-rate limit in front of a fake's app, as OpenAI applies one: a token bucket
of RPM requests a minute holding BURST of them; past it, 429 `rate_limit_exceeded`
with Retry-After in whole seconds (rounded up). With `headers=True` every answer also
carries OpenAI's x-ratelimit-limit-requests / x-ratelimit-remaining-requests /
x-ratelimit-reset-requests (the time until a minute's requests are back, as
"1m0s", "1.5s" or "20ms").

    limiter = RateLimit(fake.server, rpm=120, burst=2, headers=True)
    ... limiter.accepted, limiter.refused, limiter.refusals, limiter.accepts
"""

from __future__ import annotations

import math
import threading
import time

from tests.fakes.server import FakeServer, Request, Response


def duration(seconds: float) -> str:
    """Seconds as OpenAI writes them in x-ratelimit-reset-*: 1m0s, 1.5s, 20ms."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{rest_text}s" if minutes else f"{rest_text}s"


class RateLimit:
    def __init__(self, server: FakeServer, rpm: float, burst: float, headers: bool = False,
                 path: str = "/images/generations") -> None:
        self.real = server.app
        self.rate = rpm / 60
        self.rpm = rpm
        self.burst = burst
        self.headers = headers
        self.path = path
        self.tokens = burst
        self.at = time.monotonic()
        self.lock = threading.Lock()
        self.accepted = 0
        self.refused = 0
        self.first: float | None = None  # when the first request came
        self.refusals: list[float] = []  # seconds after it, of each 429
        self.accepts: list[float] = []  # ... and of each request let through
        server.app = self.app

    def _limit_headers(self) -> dict[str, str]:
        if not self.headers:
            return {}
        return {"x-ratelimit-limit-requests": f"{self.rpm:g}",
                "x-ratelimit-remaining-requests": str(int(self.tokens)),
                # Until all RPM are back, as OpenAI counts it (its bucket holds a
                # minute's requests; this one BURST, a limit tighter than it says).
                "x-ratelimit-reset-requests": duration((self.rpm - self.tokens) / self.rate)}

    def app(self, req: Request) -> Response:
        if not req.path.endswith(self.path):
            return self.real(req)
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.first is None:
                self.first = now
            if self.tokens < 1.0:
                self.refused += 1
                self.refusals.append(now - self.first)
                wait = (1.0 - self.tokens) / self.rate
                return Response.json({"error": {"message": "Rate limit reached for requests",
                                                "type": "requests", "param": None,
                                                "code": "rate_limit_exceeded"}}, 429,
                                     **{"retry-after": str(max(1, math.ceil(wait))),
                                        **self._limit_headers()})
            self.tokens -= 1.0
            self.accepted += 1
            self.accepts.append(now - self.first)
            extra = self._limit_headers()
        resp = self.real(req)
        resp.headers.update(extra)
        return resp
