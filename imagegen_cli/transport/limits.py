"""Per-provider limits shared by every worker: concurrency, requests per minute,
and the rate-limit pause.

One `Gate` per provider. A worker holds a slot while a call runs (at most
`limit` at once); the transport asks `before_send` before each HTTP request
(waiting out a shared pause and spacing requests for --rpm or the learned rate)
and reports successes and 429s.

The request rate is learned from the 429s. Each fresh 429 (for a request sent
after the last one) marks a moment the provider's allowance ran out; the requests
it accepted between two such moments, over the time between them, are its rate,
whatever its burst (the shared pause included: its allowance refills meanwhile).
Until a rate is known each fresh 429 halves concurrency; once it is, requests
are paced at it instead (concurrency back to the cap). A fresh 429 is measured a
moment later (SETTLE: the 429s in flight with it come back), cuts the rate down to
the rate measured (3% to 30% off), and restarts the schedule after its pause.
Each success adds a little back: 1% until a stretch of MEASURED seconds measured
it, 0.3% after, so a batch runs just under the provider's limit instead of
hitting it over and over.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping

WINDOW = 10.0  # seconds of successes that estimate the rate at the first 429
HORIZON = 30.0  # the longest stretch between two 429s that measures the rate
MEASURED = 5.0  # a stretch this long measures the rate well: probe upward slowly
FAST, SLOW = 0.01, 0.003  # each success adds this share of the rate back
SETTLE = 0.2  # seconds after a fresh 429 its measure waits for the 429s in flight with it
SAID = 0.98  # pace at this share of a limit the provider's headers say


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
        self.sends: deque[float] = deque()  # when each request went out (rate learning)
        self.refused: deque[float] = deque()  # ... and those answered 429
        self.marks: deque[float] = deque()  # sent times of the fresh 429s
        self.growth = FAST
        self.said: float | None = None  # requests per second its x-ratelimit-* say
        self.pending: float | None = None  # a fresh 429's mark, not yet measured
        self.settle_at = 0.0
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
        at = float("-inf")  # a time already waited for (a test's sleep takes none)
        for _ in range(6):
            with self.cond:
                now = max(self.clock(), at)
                self._settle(now + 0.001)  # due within a millisecond: no finer sleep
                if self.pending is not None:
                    # The new rate is not known yet: wait for it and the pause, then
                    # take a slot at it.
                    at = max(self.settle_at, self.paused_until)
                    wait, events = round(at - now, 3), -1
                    if wait <= 0:
                        self._settle(float("inf"))
                if self.pending is None:
                    start = max(now, self.paused_until)
                    interval = max(self.min_interval, 1.0 / self.rate if self.rate else 0.0)
                    if interval:
                        start = max(start, self.next_slot)
                        self.next_slot = start + interval
                    wait = round(start - now, 3)  # whole milliseconds: no finer sleep
                    events = self.events
            if wait <= 0:
                break
            pause(wait)
            if self.events == events:
                break
        with self.cond:
            now = self.clock()
            self.sends.append(now)
            if len(self.sends) > 10_000:
                self.sends.popleft()
            return now

    def throttled(self, wait: float, sent_at: float | None = None) -> None:
        """A 429 for a request sent at SENT_AT: every worker for this provider waits
        WAIT. Only a request sent after the last 429 is new evidence (sets the rate):
        those already in flight then are the same signal."""
        with self.cond:
            now = self.clock()
            self.throttles += 1
            if sent_at is not None:
                self.refused.append(sent_at)
            fresh = sent_at is None or sent_at > self.last_event
            if fresh:
                self.last_event = now
                self.events += 1
                if self.rate is None:
                    self.limit = max(1.0, self.limit / 2)  # nothing paced yet: fewer at once
                # What got through is known once the 429s of requests in flight with
                # this one are back (they come fast): measure a moment later.
                self._settle(float("inf"))
                self.pending = now if sent_at is None else sent_at
                self.settle_at = now + min(SETTLE, wait)
            self.paused_until = max(self.paused_until, now + wait)
            # A fresh 429 starts the schedule again after the pause: workers waiting
            # for slots taken before it take new ones (not after those old ones).
            self.next_slot = (self.paused_until if fresh
                              else max(self.next_slot, self.paused_until))

    def settle(self) -> None:
        """Apply a pending measure now (tests; `before_send` does it when due)."""
        with self.cond:
            self._settle(float("inf"))

    def _settle(self, now: float) -> None:
        """The rate from the last fresh 429's measure, once due (lock held)."""
        mark = self.pending
        if mark is None or now < self.settle_at:
            return
        self.pending = None
        measured = self._measure(mark)
        self.marks.append(mark)
        if self.rate is None:
            # The rate that got through (None when nothing did yet: the pause alone).
            # Paced at it, calls in flight need no other bound than -j.
            self.rate = measured[0] if measured else self._seen_rate(self.clock())
            if self.rate is not None:
                self.limit = float(self.cap)
        else:
            # Down to the rate measured (at least 3% off: it did not explain the 429),
            # never more than 30% at once, 10% for a short or stale measure.
            got = measured[0] if measured else self.rate
            floor = 0.7 if measured and MEASURED <= measured[1] <= HORIZON else 0.9
            self.rate = max(min(got, self.rate * 0.97), self.rate * floor)
            self.cuts += 1
        if measured and measured[1] >= MEASURED:
            self.growth = SLOW

    def _measure(self, mark: float) -> tuple[float, float] | None:
        """Requests the provider accepted between an earlier fresh 429 and MARK, per
        second, and that span: the longest such span up to HORIZON, else the last.
        Both ends are moments its allowance was spent, so what got through between
        them is its rate, bursts and windows included."""
        while self.marks and mark - self.marks[0] > HORIZON and len(self.marks) > 1:
            self.marks.popleft()
        starts = [m for m in self.marks if mark - m >= 0.1]
        if not starts:
            return None
        for q in (self.sends, self.refused):
            while q and q[0] < starts[0]:
                q.popleft()
        best: tuple[float, float] | None = None
        for start in starts:
            sent = sum(1 for t in self.sends if start < t < mark)
            refused = sum(1 for t in self.refused if start < t < mark)
            span = mark - start
            if sent <= refused:
                continue
            got = ((sent - refused) / span, span)
            # The longest stretch, or a higher rate over one long enough to trust: a
            # stretch the batch spent below the limit counts low.
            if best is None or (span >= MEASURED and got[0] > best[0]):
                best = got
        return best

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

    def observe(self, headers: Mapping[str, str]) -> None:
        """An answer's x-ratelimit-limit-requests / -remaining-requests /
        -reset-requests, as OpenAI sends them: once fewer remain than calls may be in
        flight, pace just under that limit; never learn a rate above it. The limit
        is a minute's requests, unless the reset (the time until all are back) says
        they come back faster (a per-second limit). Unreadable or absent: ignored."""
        said = _count(headers.get("x-ratelimit-limit-requests"))
        if not said:
            return
        remaining = _count(headers.get("x-ratelimit-remaining-requests"))
        reset = _duration(headers.get("x-ratelimit-reset-requests"))
        rate = said / 60
        if remaining is not None and reset and said > remaining:
            rate = max(rate, (said - remaining) / reset)
        with self.cond:
            self.said = rate * SAID
            if self.rate is not None:
                self.rate = min(self.rate, self.said)
            elif remaining is not None and remaining < self.cap:
                self.rate = self.said

    def succeeded(self) -> None:
        with self.cond:
            self.successes.append(self.clock())
            if len(self.successes) > 10_000:
                self.successes.popleft()
            if self.rate is not None:
                self.rate *= 1 + self.growth
                if self.said is not None:
                    self.rate = min(self.rate, self.said)
            if self.limit < self.cap:
                self.limit = min(float(self.cap), self.limit + 1.0 / self.limit)
                self.cond.notify_all()


def _count(value: str | None) -> int | None:
    """A header's count ("120", "120.0"), else None (absent, negative, garbage)."""
    try:
        n = float(value) if value is not None else None
    except ValueError:
        return None
    return int(n) if n is not None and 0 <= n < 1e12 else None


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "\u00b5s": 1e-6,
          "ns": 1e-9}
_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|\u00b5s|ns)")


def _duration(value: str | None) -> float | None:
    """OpenAI's "6m0s", "1.5s", "20ms" (or plain seconds) in seconds, else None."""
    if not value:
        return None
    value = value.strip()
    with contextlib.suppress(ValueError):
        n = float(value)
        return n if math.isfinite(n) and n >= 0 else None
    parts = _PART.findall(value)
    if not parts or "".join(a + b for a, b in parts) != value:
        return None
    return sum(float(a) * _UNITS[b] for a, b in parts)
