"""Counts of a run (jobs done, failed, skipped; images; usage; cost), kept from
the event stream like any other sink."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imagegen_cli.engine.events import Event, ImageWritten, JobFinished
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

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, ImageWritten):
            self.images += 1
            if not ev.skipped:
                if ev.image.cost_usd is None:
                    self.cost_unknown += 1
                else:
                    self.cost_usd += ev.image.cost_usd
                    self.cost_sources.add(ev.image.cost_source or "table")
        elif isinstance(ev, JobFinished):
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
