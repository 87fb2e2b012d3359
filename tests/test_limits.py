"""The per-provider Gate: slots, --rpm spacing, the shared pause, AIMD."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegen_cli.transport.limits import Gate


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_rpm_spaces_requests() -> None:
    c = Clock()
    g = Gate("p", 4, rpm=120, clock=c)
    waits: list[float] = []

    def pause(s: float) -> None:
        waits.append(s)
        c.sleep(s)

    for _ in range(4):
        g.before_send(pause)
    assert waits == [0.5, 0.5, 0.5]


def test_429_pauses_everyone_and_halves_concurrency_once_per_pause() -> None:
    c = Clock()
    g = Gate("p", 16, clock=c)
    sent = g.before_send(c.sleep)
    g.throttled(2.0, sent)
    g.throttled(2.0, sent)  # in flight at the same time: the same signal
    g.settle()
    assert g.limit == 8 and g.events == 1
    waits: list[float] = []
    g.before_send(waits.append)
    assert waits == [2.0]
    for _ in range(40):
        g.succeeded()
    assert 8 < g.limit <= 16


def test_rate_is_learned_from_successes_and_cut_on_429() -> None:
    # A first 429 after successes (a provider's allowance running out mid-batch):
    # the rate is what came back; a later 429 cuts it (3% to 30%).
    c = Clock()
    g = Gate("p", 16, clock=c)
    for _ in range(20):  # 2 successes a second for 10 s
        c.sleep(0.5)
        g.succeeded()
    g.throttled(1.0, g.before_send(c.sleep))
    g.settle()
    assert g.rate is not None and 1.5 <= g.rate <= 2.5
    before = g.rate
    c.sleep(1.0)
    g.throttled(1.0, g.before_send(c.sleep))
    g.settle()
    assert 0.7 * before <= g.rate <= 0.97 * before + 1e-9


def test_slots_bound_calls_in_flight() -> None:
    g = Gate("p", 3)
    peak = [0]
    lock = threading.Lock()
    busy = [0]
    gate_open = threading.Event()

    def work() -> None:
        with g.slot():
            with lock:
                busy[0] += 1
                peak[0] = max(peak[0], busy[0])
            gate_open.wait(0.05)
            with lock:
                busy[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 3


def test_workers_share_one_http_client() -> None:
    # Sixteen workers asking at once used to build sixteen clients (a CA bundle load
    # each, and their pools' memory), fifteen of them then leaked.
    from imagegen_cli.transport.client import Transport

    tr = Transport(timeout=5, retries=0)
    start = threading.Barrier(16)
    got: list[object] = []

    def ask() -> None:
        start.wait()
        got.append(tr.client)

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tr.close()
    assert len(got) == 16 and len({id(c) for c in got}) == 1


def _send(g: Gate, c: Clock, n: int, refused: bool = False, wait: float = 1.0) -> None:
    """N requests going out a millisecond apart, whatever the pacing; REFUSED: all
    answered 429 (after the last went out: they were in flight together)."""
    sent = []
    for _ in range(n):
        c.sleep(0.001)
        sent.append(g.before_send(lambda s: None))
    for t in sent if refused else []:
        g.throttled(wait, t)
    g.settle()  # the 429s are all back: measure


def test_rate_is_measured_from_requests_accepted_between_two_429s() -> None:
    # Slow calls: no answer has come back when the second 429 does. The provider
    # accepted 2 requests between the two moments its allowance ran out, 1 s apart.
    c = Clock()
    g = Gate("p", 16, clock=c)
    _send(g, c, 2)
    _send(g, c, 3, refused=True)  # one signal: those in flight with it add nothing
    assert g.events == 1 and g.rate is None
    c.t = 101.0
    _send(g, c, 2)
    _send(g, c, 3, refused=True)
    assert g.events == 2 and g.rate is not None and 1.9 <= g.rate <= 2.1


def test_the_measure_waits_for_the_429s_in_flight_with_the_first() -> None:
    # 16 requests go out at once, 2 get through; the 429 of the last one sent comes
    # back first. The other 13 in flight with it were refused too: not a rate of 15.
    c = Clock()
    g = Gate("p", 16, clock=c)
    _send(g, c, 2)
    _send(g, c, 14, refused=True)
    c.t = 101.0
    sent = []
    for _ in range(16):
        c.sleep(0.001)
        sent.append(g.before_send(c.sleep))
    g.throttled(1.0, sent[-1])
    for t in sent[2:-1]:
        g.throttled(1.0, t)
    waits: list[float] = []

    def pause(s: float) -> None:
        waits.append(s)
        c.sleep(s)

    g.before_send(pause)  # the first to go after the pause: at the rate measured
    assert g.rate is not None and 1.9 <= g.rate <= 2.1
    assert abs(sum(waits) - 1.0) < 0.02


def test_a_429_cuts_the_rate_down_to_the_rate_measured() -> None:
    c = Clock()
    g = Gate("p", 16, clock=c)
    _send(g, c, 1, refused=True)
    c.t = 101.0
    _send(g, c, 3)
    _send(g, c, 1, refused=True)  # 3 a second
    assert g.rate is not None and abs(g.rate - 3) < 0.1
    for _ in range(25):  # 10 s at 2.5 a second got through, then a 429
        _send(g, c, 1)
        c.t += 0.4 - 0.001
    _send(g, c, 1, refused=True)
    # Accepted since the first 429 (the longest stretch measured): 3 + 25 in 11 s.
    assert abs(g.rate - 28 / 11) < 0.02


def test_a_cut_is_at_most_30_percent() -> None:
    # A measure far below the rate (the provider's limit came down, or a long quiet
    # stretch) takes it down step by step, not at once.
    c = Clock()
    g = Gate("p", 16, clock=c)
    _send(g, c, 1, refused=True)
    c.t = 101.0
    _send(g, c, 4)
    _send(g, c, 1, refused=True)
    before = g.rate
    assert before is not None
    c.t = 111.0
    _send(g, c, 1)  # 1 request in 10 s
    _send(g, c, 1, refused=True)
    assert abs(g.rate - 0.7 * before) < 1e-9


def test_concurrency_halves_only_until_a_rate_is_known() -> None:
    # Then pacing at the learned rate keeps the provider happy: concurrency goes back
    # to the cap, and later 429s leave it there (halving the calls in flight again
    # would only starve a fast rate: slow calls need many in flight).
    c = Clock()
    g = Gate("p", 16, clock=c)
    _send(g, c, 2)
    _send(g, c, 1, refused=True)
    assert g.rate is None and g.limit == 8
    c.t = 101.0
    _send(g, c, 2)
    _send(g, c, 1, refused=True)
    assert g.rate is not None and g.limit == 16
    c.t = 110.0
    _send(g, c, 1, refused=True)
    assert g.limit == 16 and g.events == 3


def test_a_fresh_429_restarts_the_schedule_after_its_pause() -> None:
    # Workers waiting for slots taken before a 429 take new ones right after its
    # pause, not after the old ones (that left the provider idle for seconds).
    c = Clock()
    g = Gate("p", 16, rpm=120, clock=c)
    waits: list[float] = []
    for _ in range(8):  # 8 workers hold slots 0.5 s apart: up to 3.5 s ahead
        g.before_send(waits.append)
    assert waits[-1] == 3.5
    g.throttled(1.0, 100.0 + 0.001)
    g.settle()
    waits.clear()
    g.before_send(waits.append)
    g.before_send(waits.append)
    assert waits == [1.0, 1.5]


def test_growth_is_fast_until_a_long_stretch_measured_the_rate() -> None:
    c = Clock()
    g = Gate("p", 16, clock=c)
    _send(g, c, 1, refused=True)
    c.t = 101.0
    _send(g, c, 2)
    _send(g, c, 1, refused=True)  # measured over 1 s: a rough guess
    c.t = 103.0
    _send(g, c, 4)
    _send(g, c, 1, refused=True)  # 2 s: still rough
    assert g.rate is not None
    before = g.rate
    for _ in range(10):
        g.succeeded()
    assert g.rate >= before * 1.1  # a low guess is soon corrected
    c.t = 113.0
    _send(g, c, 20)
    _send(g, c, 1, refused=True)  # 10 s: a good measure
    before = g.rate
    for _ in range(10):
        g.succeeded()
    assert before < g.rate <= before * 1.05  # probe upward slowly


@pytest.mark.parametrize(("rpm", "jobs", "share"), [(120, 120, 0.95), (30, 60, 0.9),
                                                    (600, 600, 0.95)])
def test_simulated_batch_runs_near_the_providers_limit(rpm: int, jobs: int,
                                                       share: float) -> None:
    # The real Gate, 16 workers, 0.5 s calls, against a token bucket holding a second
    # of requests that answers 429 with Retry-After in whole seconds (bench_batch.py
    # phase 4), on a virtual clock: no --rpm, and every job done.
    from tests.gate_sim import batch

    span, limited, failed = batch(rpm=rpm, jobs=jobs)
    assert failed == 0 and limited > 0
    assert jobs / span * 60 >= share * rpm, span


def test_simulated_batch_never_slows_down_without_429s() -> None:
    from tests.gate_sim import batch

    span, limited, failed = batch(rpm=1_000_000, jobs=200)
    assert (limited, failed) == (0, 0)
    assert span < 200 / 16 * 0.5 + 0.6  # 13 rounds of 0.5 s calls


def test_headers_saying_the_limit_pace_once_little_remains() -> None:
    c = Clock()
    g = Gate("p", 16, clock=c)
    said = {"x-ratelimit-limit-requests": "120", "x-ratelimit-remaining-requests": "90"}
    g.observe(said)
    assert g.rate is None  # plenty left: the calls go out as fast as they can
    g.observe({**said, "x-ratelimit-remaining-requests": "15"})
    assert g.rate == 120 / 60 * 0.98
    for _ in range(50):
        g.succeeded()
    assert g.rate == 120 / 60 * 0.98  # never probed above what the provider said
    waits: list[float] = []
    for _ in range(3):
        g.before_send(waits.append)
    assert waits == [0.51, 1.02]


def test_headers_cap_a_learned_rate_and_garbage_is_ignored() -> None:
    c = Clock()
    g = Gate("p", 16, clock=c)
    for value in ("", "many", "-5", "nan", "inf", "1e400"):
        g.observe({"x-ratelimit-limit-requests": value,
                   "x-ratelimit-remaining-requests": "0"})
    g.observe({"x-ratelimit-remaining-requests": "0"})
    assert g.rate is None and g.said is None
    g.rate = 5.0  # learned from 429s
    g.observe({"x-ratelimit-limit-requests": "60.0"})
    assert g.rate == 0.98


def test_a_reset_that_comes_back_faster_means_a_shorter_window() -> None:
    # 10 requests, 8 of them back within 0.8 s: 10 a second, not 10 a minute.
    c = Clock()
    g = Gate("p", 16, clock=c)
    g.observe({"x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "2",
               "x-ratelimit-reset-requests": "800ms"})
    assert g.rate is not None and abs(g.rate - 10 * 0.98) < 1e-9
    # OpenAI's own: a minute's 120, 105 of them back in 52.5 s.
    g = Gate("p", 16, clock=c)
    g.observe({"x-ratelimit-limit-requests": "120", "x-ratelimit-remaining-requests": "15",
               "x-ratelimit-reset-requests": "52.5s"})
    assert g.rate is not None and abs(g.rate - 2 * 0.98) < 1e-9


@pytest.mark.parametrize(("text", "seconds"), [
    ("6m0s", 360.0), ("1.5s", 1.5), ("20ms", 0.02), ("1m1.25s", 61.25), ("2h3m4s", 7384.0),
    ("7", 7.0), ("", None), ("soon", None), ("1s2", None), ("-1", None), ("nan", None),
    ("1e400", None)])
def test_reset_durations(text: str, seconds: float | None) -> None:
    from imagegen_cli.transport.limits import _duration

    got = _duration(text)
    assert got == seconds or (got is not None and seconds is not None
                              and abs(got - seconds) < 1e-9)


@given(limit=st.text(max_size=12), remaining=st.text(max_size=12), reset=st.text(max_size=12))
@settings(max_examples=300, deadline=None)
def test_any_ratelimit_headers_leave_a_sane_rate(limit: str, remaining: str, reset: str) -> None:
    g = Gate("p", 16, clock=Clock())
    g.observe({"x-ratelimit-limit-requests": limit,
               "x-ratelimit-remaining-requests": remaining,
               "x-ratelimit-reset-requests": reset})
    assert g.rate is None or (math.isfinite(g.rate) and g.rate > 0)
