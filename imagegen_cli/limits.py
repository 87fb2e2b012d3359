"""Per-provider limits shared by every worker: concurrency, requests per minute,
and the rate-limit pause.

One `Gate` per provider. A worker holds a slot while a call runs (at most
`limit` at once); the transport asks `before_send` before each HTTP request
(waiting out a shared pause and spacing requests for --rpm) and reports
successes and 429s. Concurrency follows AIMD: a 429 halves it (once per
pause), each success adds 1/limit, up to the cap.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator


class Gate:
    def __init__(self, name: str, cap: int, rpm: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.cap = max(1, cap)
        self.limit = float(self.cap)
        self.rpm = rpm
        self.clock = clock
        self.in_flight = 0
        self.paused_until = 0.0
        self.next_slot = 0.0
        self.throttles = 0
        self.cond = threading.Condition()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        with self.cond:
            while self.in_flight >= max(1, int(self.limit)):
                self.cond.wait(0.5)
            self.in_flight += 1
        try:
            yield
        finally:
            with self.cond:
                self.in_flight -= 1
                self.cond.notify_all()

    def before_send(self, pause: Callable[[float], None]) -> None:
        """Wait out a shared pause, then take the next --rpm slot."""
        with self.cond:
            now = self.clock()
            wait = max(0.0, self.paused_until - now)
            if self.rpm:
                start = max(now + wait, self.next_slot)
                self.next_slot = start + 60.0 / self.rpm
                wait = start - now
        if wait > 0:
            pause(wait)

    def throttled(self, wait: float) -> None:
        """A 429: every worker for this provider waits WAIT, and concurrency halves
        (once per pause: many workers hitting the same limit is one signal)."""
        with self.cond:
            now = self.clock()
            self.throttles += 1
            if now >= self.paused_until:
                self.limit = max(1.0, self.limit / 2)
            self.paused_until = max(self.paused_until, now + wait)

    def succeeded(self) -> None:
        with self.cond:
            if self.limit < self.cap:
                self.limit = min(float(self.cap), self.limit + 1.0 / self.limit)
                self.cond.notify_all()
