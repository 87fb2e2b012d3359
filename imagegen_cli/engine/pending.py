"""What a provider-side job was submitted for, kept until its images are written, so
`imagegen job get PROVIDER ID` can name and tag them as `generate` would have.

One small JSON file per job in the platform's state folder (written atomically);
no key or secret is ever stored.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegen_cli.errors import OutputError
from imagegen_cli.files import jsontext
from imagegen_cli.files.atomic import write_atomic
from imagegen_cli.types import ImageRequest

# The ImageRequest fields that shape a job's images and their metadata.
FIELDS = ("prompt", "model", "size", "quality", "style", "seed", "steps", "guidance",
          "negative_prompt", "params", "resolution", "aspect_ratio")


@dataclass
class JobRecord:
    provider: str
    job_id: str
    request: dict[str, Any]
    index: int = 1
    count: int = 1
    output: str | None = None
    format: str | None = None
    metadata: bool = True
    sidecar: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def image_request(self) -> ImageRequest:
        known = {k: v for k, v in self.request.items() if k in FIELDS}
        known.setdefault("prompt", f"job {self.job_id}")
        return ImageRequest(**known)


def folder() -> Path:
    """The platform's state folder (~/.local/state/imagegen/jobs on Linux)."""
    import platformdirs

    return Path(platformdirs.user_state_dir("imagegen", appauthor=False)) / "jobs"


def _path(provider: str, job_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{provider}-{job_id}")
    return folder() / f"{safe}.json"


def save(record: JobRecord) -> None:
    """Best effort: a job must never fail because its note could not be written."""

    data = json.dumps(record.__dict__, ensure_ascii=False, default=str).encode()
    with contextlib.suppress(OutputError, OSError):
        write_atomic(_path(record.provider, record.job_id), data, overwrite=True, mode=0o600)


def load(provider: str, job_id: str) -> JobRecord | None:
    try:
        raw = jsontext.loads(_path(provider, job_id).read_text(encoding="utf-8"))
        return JobRecord(**raw)
    except (OSError, ValueError, TypeError):
        return None


def fetched(record: JobRecord, paths: list[str]) -> None:
    """RECORD's images are written, at PATHS: kept as that, so that `job get` again
    points at them instead of writing another copy (in the current folder)."""
    record.extra["fetched"] = paths
    save(record)


def already_fetched(record: JobRecord | None) -> list[str] | None:
    """The paths RECORD's images were written to, when they all still exist."""
    paths = record.extra.get("fetched") if record is not None else None
    if not isinstance(paths, list) or not paths:
        return None
    return [str(p) for p in paths] if all(Path(str(p)).is_file() for p in paths) else None


def drop(provider: str, job_id: str) -> None:
    with contextlib.suppress(OSError):
        _path(provider, job_id).unlink()


def request_fields(req: ImageRequest) -> dict[str, Any]:
    return {k: getattr(req, k) for k in FIELDS if getattr(req, k) not in (None, {}, [])}
