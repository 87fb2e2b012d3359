"""The one stream of events a run produces, and the records built from them.

The scheduler emits these on the writing thread, in order; the journal and
the CLI's reporters (paths, NDJSON, progress, summary) consume the same
stream. `image_record` and `failure_record` are the NDJSON shapes, shared by
`--json` output, the journal and `--summary`.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    }


def failure_record(job: Job, error: ImagegenError) -> dict[str, Any]:
    return {"id": job.id, "line": job.line, "error": str(error),
            "exit_code": int(error.exit_code)}
