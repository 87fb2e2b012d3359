"""A batch's --max-cost: jobs admitted while their estimates fit under the cap, and
each finished job's estimate replaced by what it actually cost."""

from __future__ import annotations

from typing import Any

from imagegen_cli.engine.events import JobFinished
from imagegen_cli.errors import OverBudget
from imagegen_cli.pricing.costs import money, total_cost


class BatchBudget:
    """--max-cost over a whole batch: the scheduler's `admit` hook refuses a job whose
    estimate would take the batch over the cap (it is not started; jobs already
    written stay), and, as an event sink, replaces a finished job's estimate with
    what it actually cost. Every estimate must be known before the batch starts
    (see `check_cap`)."""

    def __init__(self, cap: float, where: str, estimate_of: Any) -> None:
        self.cap = cap
        self.where = where
        self.estimate_of = estimate_of  # job -> USD (the top of its estimate)
        self.committed = 0.0
        self.admitted: dict[int, float] = {}
        self.refused: dict[int, Exception] = {}

    def admit(self, job: Any) -> Any:
        k = id(job)
        if k in self.admitted:
            return None
        if k in self.refused:
            return self.refused[k]
        high = float(self.estimate_of(job))
        if self.committed + high > self.cap + 1e-12:
            exc = OverBudget(
                f"not started: its estimated {money(high)} would take the batch over "
                f"{self.where} {money(self.cap)} ({money(self.committed)} spent or "
                "committed)")
            self.refused[k] = exc
            return exc
        self.admitted[k] = high
        self.committed += high
        return None

    def __call__(self, ev: Any) -> None:
        if isinstance(ev, JobFinished) and id(ev.job) in self.admitted:
            est = self.admitted.pop(id(ev.job))
            actual, _ = total_cost([(s.cost_usd, s.cost_source) for s in ev.outcome.saved])
            if actual is not None:
                self.committed += actual - est
