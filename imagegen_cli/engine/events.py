"""The one stream of events a run produces, the records built from them, and the
counts kept from it.

The scheduler emits these on the writing thread, in order; the journal, the
`Tally` and the CLI's reporters (paths, NDJSON, progress, summary) consume the same
stream. `image_record` and `failure_record` are the NDJSON shapes, shared by
`--json` output, the journal and `--summary`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imagegen_cli.errors import ImagegenError

if TYPE_CHECKING:
    from imagegen_cli.engine.jobs import Job
    from imagegen_cli.engine.save import Outcome, SavedImage


@dataclass(frozen=True)
class JobStarted:
    job: Job


@dataclass(frozen=True)
class ImageWritten:
    job: Job
    image: SavedImage
    request_id: str | None = None
    skipped: bool = False  # finished by an earlier run (journal); nothing was sent


@dataclass(frozen=True)
class JobFinished:
    """A job ended: done (outcome.saved has every image), failed (outcome.failures),
    skipped (finished by an earlier run) or not run (the batch stopped first)."""

    job: Job
    outcome: Outcome
    skipped: bool = False
    not_run: bool = False

    @property
    def failed(self) -> bool:
        return bool(self.outcome.failures) and not self.not_run


@dataclass(frozen=True)
class PartialWritten:
    """A streamed preview frame kept with --keep-partials (not a result image)."""

    job: Job
    image: SavedImage


@dataclass(frozen=True)
class FellBack:
    """A call's provider was unavailable (REASON), so the same request went to the next
    provider of its job's chain, TO."""

    job: Job
    provider: str
    to: str
    reason: str

    def text(self) -> str:
        return (f"{self.provider} is unavailable ({self.reason}); sending the same request "
                f"to {self.to}")

    def as_json(self) -> dict[str, Any]:
        return {"from": self.provider, "to": self.to, "reason": self.reason}


Event = JobStarted | ImageWritten | PartialWritten | FellBack | JobFinished


def image_record(ev: ImageWritten) -> dict[str, Any]:
    img, job = ev.image, ev.job
    return {
        "id": job.id, "line": job.line, "index": img.index, "path": img.path,
        "sha256": img.sha256, "bytes": img.bytes, "width": img.width, "height": img.height,
        "format": img.format, "seed": img.seed, "provider": img.provider or job.provider.name,
        "model": img.model or job.request.model, "request_id": ev.request_id,
        "revised_prompt": img.revised_prompt, "timings": img.timings or {},
        "resolved": img.resolved or {}, "skipped": ev.skipped,
        "cost_usd": img.cost_usd, "cost_source": img.cost_source,
        **({"fallback_from": img.fallback_from} if img.fallback_from else {}),
        **({"via": "batch-api", "batch_id": img.batch_id} if img.batch_id else {}),
    }


def failure_record(job: Job, error: ImagegenError) -> dict[str, Any]:
    return {"id": job.id, "line": job.line, "error": str(error),
            "exit_code": int(error.exit_code)}


@dataclass
class Tally:
    """Counts of a run, kept from the event stream."""

    jobs: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    not_run: int = 0
    # The run stopped before reading every job of its input (a long batch is read as it
    # runs): those jobs are not run either, and not counted.
    unread: bool = False
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
            # A long batch stopped before its whole input was read: the jobs of the
            # records not reached are in no count (`jobs` counts those read).
            **({"unread": True} if self.unread else {}),
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
