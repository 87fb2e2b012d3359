"""Counts of a run (jobs done, failed, skipped; images; usage; cost, per provider
too), kept from the event stream like any other sink, and the --summary record
made from them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imagegen_cli.engine.events import Event, ImageWritten, JobFinished, failure_record
from imagegen_cli.errors import ImagegenError

if TYPE_CHECKING:
    from imagegen_cli.engine.jobs import Job


@dataclass
class Tally:
    """Counts of a run, kept from the event stream."""

    jobs: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    not_run: int = 0
    images: int = 0
    failures: list[tuple[Job, ImagegenError]] = field(default_factory=list)
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    fatal: ImagegenError | None = None
    # What this run's images cost (journal-skipped ones cost nothing now).
    cost_usd: float = 0.0
    cost_unknown: int = 0
    cost_sources: set[str] = field(default_factory=set)
    # Per provider: jobs run (done or failed), images made and their cost, by the
    # provider that made each image (a fallback's included).
    by_provider: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, ImageWritten):
            self.images += 1
            if not ev.skipped:
                mine = self._of(ev.image.provider or ev.job.provider.name)
                mine["images"] += 1
                if ev.image.cost_usd is None or mine["cost_usd"] is None:
                    mine["cost_usd"] = None  # some image's price is unknown
                else:
                    mine["cost_usd"] = round(mine["cost_usd"] + ev.image.cost_usd, 6)
                if ev.image.cost_usd is None:
                    self.cost_unknown += 1
                else:
                    self.cost_usd += ev.image.cost_usd
                    self.cost_sources.add(ev.image.cost_source or "table")
        elif isinstance(ev, JobFinished):
            if not ev.skipped and not ev.not_run:
                self._of(ev.job.provider.name)["jobs"] += 1
            if ev.skipped:
                self.skipped += 1
            elif ev.not_run:
                self.not_run += 1
            elif ev.failed:
                self.failed += 1
                self.failures.append((ev.job, ev.outcome.failures[0]))
            else:
                self.done += 1
            usage = ev.outcome.usage
            if usage:
                mine = self.usage.setdefault(ev.job.provider.name, {})
                for k, v in usage.items():
                    if isinstance(v, (int, float)):
                        mine[k] = mine.get(k, 0) + v

    def _of(self, name: str) -> dict[str, Any]:
        return self.by_provider.setdefault(name, {"jobs": 0, "images": 0, "cost_usd": 0.0})

    def summary(self, shard: str | None, invalid: list[str],
                interrupted: bool = False) -> dict[str, Any]:
        """The --summary record: counts, per-provider usage (with the token counts the
        providers reported), cost, failures, and the records left out."""
        usage = {name: dict(counts) for name, counts in self.by_provider.items()}
        for name, tokens in self.usage.items():
            usage.setdefault(name, {}).update(tokens)
        cost, source = self.cost()
        return {
            "jobs": self.jobs, "done": self.done, "skipped": self.skipped,
            "failed": self.failed, "not_run": self.not_run, "images": self.images,
            "total_s": round(self.elapsed, 3), "shard": shard,
            "usage": usage,
            "cost_usd": cost, "cost_source": source,
            "failures": [failure_record(job, exc) for job, exc in self.failures],
            "invalid": invalid,  # --skip-invalid: each record left out, and why
            **({"interrupted": True} if interrupted else {}),  # Ctrl-C or SIGTERM
        }

    def cost(self) -> tuple[float | None, str | None]:
        """(USD, 'usage' | 'table' | 'mixed') of the images this run wrote; (None, None)
        when any of them has no known price."""
        if self.cost_unknown:
            return None, None
        src = self.cost_sources
        return round(self.cost_usd, 6), (next(iter(src)) if len(src) == 1
                                         else "mixed" if src else None)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started
