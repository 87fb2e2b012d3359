"""A batch's --max-cost: jobs admitted while their estimates fit under the cap, and
each finished job's estimate replaced by what it actually cost."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from imagegen_cli.engine.events import JobFinished
from imagegen_cli.engine.fallback import estimates
from imagegen_cli.errors import OverBudget, UsageError
from imagegen_cli.pricing.costs import check_cap, money, total_cost

if TYPE_CHECKING:
    from imagegen_cli.engine.jobs import Job


class BatchBudget:
    """--max-cost over a whole batch: the scheduler's `admit` hook refuses a job whose
    estimate would take the batch over the cap (it is not started; jobs already
    written stay) once no running job can settle below its reservation, and, as an
    event sink, replaces a finished job's estimate with what it actually cost. Every
    estimate must be known before the batch starts (see `check_cap`)."""

    def __init__(self, cap: float, where: str, estimate_of: Any) -> None:
        self.cap = cap
        self.where = where
        self.estimate_of = estimate_of  # job -> USD (the top of its estimate)
        self.committed = 0.0
        self.admitted: dict[int, float] = {}  # running jobs: what each reserved
        self.refused: dict[int, Exception] = {}
        # admit waits on it (a worker thread); a finished job's settling wakes it
        self.settled = threading.Condition()

    def check(self, job: Any) -> float:
        """JOB's price must be known (exit 2 naming its record); the top of its estimate."""
        ests = estimates(job)
        try:
            check_cap(ests, self.cap, self.where, known_only=True)
        except UsageError as exc:
            exc.message = f"line {job.line} (id {job.id}): {exc.message}"
            raise
        return max(e.high for e in ests)

    def admit(self, job: Any, wait: bool = False) -> Any:
        """None: JOB may start (its estimate is reserved); else the refusal. WAIT (a
        worker thread, while other threads run jobs): a job that does not fit while
        running jobs hold the tops of their estimates waits for them to settle at what
        they really cost, and is refused only when nothing running could free room."""
        k = id(job)
        with self.settled:
            if k in self.admitted:
                return None
            if k in self.refused:
                return self.refused[k]
            high = float(self.estimate_of(job))
            while self.committed + high > self.cap + 1e-12:
                if not (wait and self.admitted):
                    exc = OverBudget(
                        f"not started: its estimated {money(high)} would take the batch "
                        f"over {self.where} {money(self.cap)} ({money(self.committed)} "
                        "spent or committed)")
                    self.refused[k] = exc
                    return exc
                self.settled.wait()
            self.admitted[k] = high
            self.committed += high
            return None

    def __call__(self, ev: Any) -> None:
        if isinstance(ev, JobFinished):
            with self.settled:
                self.refused.pop(id(ev.job), None)  # its id may name another job later
                if id(ev.job) not in self.admitted:
                    return
                est = self.admitted.pop(id(ev.job))
                actual, _ = total_cost([(s.cost_usd, s.cost_source)
                                        for s in ev.outcome.saved])
                if actual is not None:
                    self.committed += actual - est
                self.settled.notify_all()


def batch_budget(jobs: Sequence[Job], cap: float, where: str) -> BatchBudget:
    """The batch-wide cap: every job's price must be known (exit 2 naming the record),
    and at least one job must fit (else exit 2: nothing would be made). JOBS: those
    known now (a long batch's settled templates; `BatchBudget.check` sees the rest as
    they are read). Returns the BatchBudget for the scheduler (`admit`) and the event
    stream."""

    budget = BatchBudget(cap, where, high_estimate)
    highs = [budget.check(job) for job in jobs]
    if highs and min(highs) > cap + 1e-12:
        raise UsageError(
            f"Every job's estimated cost is over {where} {money(cap)} (the cheapest is "
            f"{money(min(highs))}): nothing was sent; raise the cap")
    return budget


def high_estimate(job: Job) -> float:
    """The top of JOB's estimate over its chain (USD)."""
    return max(e.high for e in estimates(job))
