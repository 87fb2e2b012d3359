"""A batch on a virtual clock: the real `Gate` (imagegen_cli/transport/limits.py) driven by
simulated workers against a simulated rate-limited provider. A minute of batch takes
a fraction of a second, and comes out the same on a busy machine as on an idle one.
Used by tests/test_limits.py and bench/sim_limits.py.

Each worker takes a job, holds a slot, asks `before_send`, and "sends": the provider
(a token bucket of RPM a minute holding BURST seconds of them, or with after="window"
a fixed one-minute window) answers 429 at once, with Retry-After in whole seconds
("ceil") or exact ("ms"), or a 200 after LATENCY seconds; the worker reports both to
the gate as `Transport.send` does.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import threading
from typing import Any

from imagegen_cli.transport.limits import Gate

MAX_THROTTLED = 50


class Waiter:
    woken = False


class VClock:
    """Virtual time: it moves on only when every live thread waits on it."""

    def __init__(self) -> None:
        self.t = 0.0
        self.tick = 0
        self.lock = threading.RLock()
        self.cv = threading.Condition(self.lock)
        self.running = 0
        self.timers: list[tuple[float, int, Waiter]] = []
        self.seq = itertools.count()

    def __call__(self) -> float:
        # Strictly increasing within one virtual instant, as real clocks are: requests
        # "sent at once" still go out one after another.
        with self.lock:
            self.tick += 1
            return self.t + self.tick * 1e-7

    def block(self, timeout: float | None, w: Waiter) -> None:
        """With the lock held: wait until woken (by wake or after TIMEOUT)."""
        if timeout is not None:
            heapq.heappush(self.timers, (self.t + max(0.0, timeout), next(self.seq), w))
        self.running -= 1
        self.cv.notify_all()
        while not w.woken:
            self.cv.wait()

    def wake(self, w: Waiter) -> None:
        if not w.woken:
            w.woken = True
            self.running += 1
            self.cv.notify_all()

    def sleep(self, s: float) -> None:
        with self.lock:
            self.block(s, Waiter())

    def drive(self, threads: list[threading.Thread]) -> None:
        with self.lock:
            self.running = len(threads)
            for th in threads:
                th.start()
            while True:
                while self.running > 0:
                    self.cv.wait()
                if not any(th.is_alive() for th in threads) or not self.timers:
                    break
                when, _, w = heapq.heappop(self.timers)
                if w.woken:
                    continue
                if when > self.t:
                    self.t, self.tick = when, 0
                self.wake(w)
        for th in threads:
            th.join()


class VCondition:
    """threading.Condition on the virtual clock (the gate's slot waits)."""

    def __init__(self, clock: VClock) -> None:
        self.clock = clock
        self.waiters: list[Waiter] = []

    def __enter__(self) -> VCondition:
        self.clock.lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.clock.lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        w = Waiter()
        self.waiters.append(w)
        self.clock.block(timeout, w)
        return True

    def notify_all(self) -> None:
        with self.clock.lock:
            for w in self.waiters:
                self.clock.wake(w)
            self.waiters.clear()

    notify = notify_all


class Provider:
    def __init__(self, rpm: float, burst: float, after: str) -> None:
        self.rate = rpm / 60
        self.cap = max(1.0, burst * self.rate)
        self.tokens = self.cap
        self.at = 0.0
        self.after = after
        self.rpm = rpm
        self.window = (0.0, 0)  # start, count (fixed window mode)
        self.lock = threading.Lock()
        self.limited = 0
        self.ok = 0

    def send(self, now: float) -> float | None:
        """None when accepted, else the Retry-After seconds."""
        with self.lock:
            if self.after == "window":
                start, count = self.window
                if now - start >= 60:
                    start, count = now - (now - start) % 60, 0
                if count >= self.rpm:
                    self.limited += 1
                    self.window = (start, count)
                    return float(math.ceil(start + 60 - now))
                self.window = (start, count + 1)
                self.ok += 1
                return None
            self.tokens = min(self.cap, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens < 1.0:
                self.limited += 1
                wait = (1.0 - self.tokens) / self.rate
                return float(max(1, math.ceil(wait))) if self.after == "ceil" else wait
            self.tokens -= 1.0
            self.ok += 1
            return None

def simulate(args: argparse.Namespace | Any) -> tuple[float, int, int, list[float]]:
    clock = VClock()
    gate = Gate("sim", args.j, clock=clock)
    gate.cond = VCondition(clock)  # type: ignore[assignment]
    prov = Provider(args.rpm, args.burst, args.after)
    jobs = iter(range(args.jobs))
    jobs_lock = threading.Lock()
    failed = [0]
    done: list[float] = []
    if args.trace:
        real = gate.throttled

        def throttled(wait: float, sent_at: float | None = None) -> None:
            real(wait, sent_at)
            print(f"  {clock():7.2f} 429 sent {sent_at or 0:7.2f} wait {wait:.2f}: rate "
                  f"{gate.rate or 0:.3f}/s, limit {gate.limit:.1f}, done {len(done)}")

        gate.throttled = throttled  # type: ignore[method-assign]

    def worker() -> None:
        try:
            while True:
                with jobs_lock:
                    if next(jobs, None) is None:
                        return
                with gate.slot():
                    throttled = 0
                    while True:
                        sent = gate.before_send(clock.sleep)
                        after = prov.send(sent)
                        if after is None:
                            clock.sleep(args.latency)
                            gate.succeeded()
                            done.append(clock())
                            break
                        clock.sleep(0.005)
                        throttled += 1
                        if throttled > MAX_THROTTLED:
                            failed[0] += 1
                            break
                        gate.throttled(after, sent)
        finally:
            with clock.lock:
                clock.running -= 1
                clock.cv.notify_all()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.j)]
    clock.drive(threads)
    return max(done, default=0.0), prov.limited, failed[0], done




def batch(rpm: float = 120, burst: float = 1.0, jobs: int = 120, j: int = 16,
          latency: float = 0.5, after: str = "ceil") -> tuple[float, int, int]:
    """Seconds the batch took, 429s, failed jobs."""
    span, limited, failed, _ = simulate(argparse.Namespace(
        rpm=rpm, burst=burst, jobs=jobs, j=j, latency=latency, after=after, trace=False))
    return span, limited, failed
