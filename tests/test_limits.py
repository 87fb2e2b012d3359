"""The per-provider Gate: slots, --rpm spacing, the shared pause, AIMD."""

from __future__ import annotations

import threading

from imagegen_cli.limits import Gate


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
    assert g.limit == 8 and g.events == 1
    waits: list[float] = []
    g.before_send(waits.append)
    assert waits == [2.0]
    for _ in range(40):
        g.succeeded()
    assert 8 < g.limit <= 16


def test_rate_is_learned_from_successes_and_cut_on_429() -> None:
    c = Clock()
    g = Gate("p", 16, clock=c)
    for _ in range(20):  # 2 successes a second for 10 s
        c.sleep(0.5)
        g.succeeded()
    g.throttled(1.0, g.before_send(c.sleep))
    assert g.rate is not None and 1.5 <= g.rate <= 2.5
    before = g.rate
    c.sleep(1.0)
    g.throttled(1.0, g.before_send(c.sleep))
    assert 0.75 * before <= g.rate <= 0.9 * before + 1e-9


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
    from imagegen_cli.http import Transport

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
