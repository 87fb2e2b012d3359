"""Per-provider limits shared by every worker: concurrency, requests per minute,
and the rate-limit pause.

One `Gate` per provider. A worker holds a slot while a call runs (at most
`limit` at once); the transport asks `before_send` before each HTTP request
(waiting out a shared pause and spacing requests for --rpm) and reports
successes and 429s. Concurrency follows AIMD: a 429 halves it (once per
pause), each success adds 1/limit, up to the cap. The request rate is learned
the same way: the first 429 after some successes sets it to the rate of
successes seen, each later one takes 10 to 25% off, and each success adds a
little back (5% until the first cut, 0.3% after), so a batch settles just under
the provider's limit instead of hitting it (and pausing everyone) over and over.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

WINDOW = 10.0  # seconds of successes that estimate the rate at the first 429


class Gate:
    def __init__(self, name: str, cap: int, rpm: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.cap = max(1, cap)
        self.limit = float(self.cap)
        self.min_interval = 60.0 / rpm if rpm else 0.0
        self.rate: float | None = None  # learned requests per second, after a 429
        self.events = 0  # distinct 429 pauses
        self.cuts = 0  # times the learned rate was cut
        self.last_event = float("-inf")
        self.clock = clock
        self.created: float = clock()
        self.successes: deque[float] = deque()
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

    def before_send(self, pause: Callable[[float], None]) -> float:
        """Wait out a shared pause, then take the next slot (--rpm, or the learned rate).
        A 429 elsewhere during the wait moves the slot: look again (a few times)."""
        for _ in range(4):
            with self.cond:
                now = self.clock()
                start = max(now, self.paused_until)
                interval = max(self.min_interval, 1.0 / self.rate if self.rate else 0.0)
                if interval:
                    start = max(start, self.next_slot)
                    self.next_slot = start + interval
                wait = round(start - now, 3)  # whole milliseconds: a sleep is no finer
                events = self.events
            if wait <= 0:
                return self.clock()
            pause(wait)
            if self.events == events:
                break
        return self.clock()

    def throttled(self, wait: float, sent_at: float | None = None) -> None:
        """A 429 for a request sent at SENT_AT: every worker for this provider waits
        WAIT. Only a request sent after the last 429 is new evidence (cuts the rate
        and halves concurrency): those already in flight then are the same signal."""
        with self.cond:
            now = self.clock()
            self.throttles += 1
            if sent_at is None or sent_at > self.last_event:
                self.last_event = now
                self.events += 1
                self.limit = max(1.0, self.limit / 2)
                seen = self._seen_rate(now)
                if self.rate is None:
                    self.rate = seen  # None until some call succeeded: the pause alone
                else:
                    # 10% off, or down to the rate seen, but never more than 25% at once
                    # (the seen rate lags: it counts the start and the pauses)
                    self.rate = max(min(self.rate * 0.9, seen or self.rate), self.rate * 0.75)
                    self.cuts += 1
            self.paused_until = max(self.paused_until, now + wait)
            self.next_slot = max(self.next_slot, self.paused_until)

    def _seen_rate(self, now: float) -> float | None:
        """Successes per second over the last WINDOW seconds, pauses included (an
        estimate on the low side: successes then add back)."""
        start: float = max(self.created, now - WINDOW)
        while self.successes and self.successes[0] < start:
            self.successes.popleft()
        span = now - start
        if span < 0.5 or not self.successes:
            return None
        return float(len(self.successes) / span)

    def succeeded(self) -> None:
        with self.cond:
            self.successes.append(self.clock())
            if len(self.successes) > 10_000:
                self.successes.popleft()
            if self.rate is not None:
                self.rate *= 1.05 if not self.cuts else 1.003
            if self.limit < self.cap:
                self.limit = min(float(self.cap), self.limit + 1.0 / self.limit)
                self.cond.notify_all()
