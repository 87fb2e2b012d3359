"""What `imagegen gallery` shows: the images of a folder, of the history since a
time, or of a batch's NDJSON output, each with what it records; then the page
(files/gallery.py), written atomically."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from imagegen_cli.engine import history
from imagegen_cli.errors import UsageError
from imagegen_cli.files import images
from imagegen_cli.files.atomic import write_atomic
from imagegen_cli.files.gallery import Card, render, thumbnail
from imagegen_cli.files.metadata.read import read, sidecar_of

EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".gif"}


def from_folder(folder: Path) -> Iterator[Card]:
    """Every image directly in FOLDER (not below), with what it or its sidecar records;
    its time: the file's."""
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in EXTENSIONS and path.is_file() \
                and ".partial-" not in path.name:
            yield _card(path, datetime.fromtimestamp(path.stat().st_mtime), {})


def from_history(since: datetime | None, env: Mapping[str, str],
                 limit: int = 100_000) -> Iterator[Card]:
    """The images the history recorded since SINCE that are still on disk."""
    store = history.reader(env)
    if store is None:
        return
    try:
        rows = store.search(since=since, limit=limit)
    finally:
        store.close()
    for row in rows:
        path = Path(row["path"])
        if row["path"] != "-" and path.is_file():
            yield Card(path=path, time=row["time"], prompt=row["prompt"],
                       provider=row["provider"], model=row["model"], seed=row["seed"],
                       cost_usd=row["cost_usd"], width=row["width"], height=row["height"])


def from_ndjson(source: Path) -> Iterator[Card]:
    """The images a `batch --json` (or `generate --jsonl`) output lists; a record's path
    is found from the current folder, else from SOURCE's."""
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--batch {source}: cannot read it ({exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            raise UsageError(f"--batch {source}, line {number}: not JSON (expected the "
                             "NDJSON `imagegen batch --json` prints)") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("path"), str) \
                or rec["path"] == "-":
            continue  # a failed job's record, or a summary
        path = Path(rec["path"])
        if not path.is_absolute() and not path.exists():
            path = source.parent / path
        if path.is_file():
            when = datetime.fromtimestamp(path.stat().st_mtime)
            yield _card(path, when, rec)


def _card(path: Path, when: datetime, rec: Mapping[str, Any]) -> Card:
    """PATH's card: what its metadata (or sidecar) records, else what REC says."""
    fields: dict[str, Any] = {}
    try:
        with open(path, "rb") as fh:
            head = fh.read(images.MAX_FILE_BYTES + 1)
        if len(head) <= images.MAX_FILE_BYTES:
            fields = dict(read(head)["fields"])
    except (OSError, ValueError):
        pass
    if not fields.get("prompt"):
        fields = sidecar_of(path) or fields
    merged = {**{k: v for k, v in rec.items() if v is not None}, **fields}
    size = str(merged.get("size") or "")
    w, _, h = size.partition("x")
    return Card(path=path.absolute(), time=when.isoformat(timespec="seconds"),
                prompt=str(merged.get("prompt") or ""), provider=merged.get("provider"),
                model=merged.get("model"), seed=_int(merged.get("seed")),
                cost_usd=_float(merged.get("cost_usd")),
                width=_int(merged.get("width") or w), height=_int(merged.get("height") or h))


def _int(v: Any) -> int | None:
    try:
        return int(v) if v not in (None, "") and not isinstance(v, bool) else None
    except (TypeError, ValueError):
        return None


def _float(v: Any) -> float | None:
    try:
        return float(v) if v is not None and not isinstance(v, bool) else None
    except (TypeError, ValueError):
        return None


def write(cards: Iterator[Card], page: Path, title: str,
          progress: Callable[[int], None] | None = None) -> tuple[Path, int, int]:
    """The page for CARDS, written at PAGE (replaced when there): (path, images shown,
    images that could not be decoded)."""
    done: list[tuple[Card, str | None]] = []
    broken = 0
    for card in cards:
        try:
            data = card.path.read_bytes()
        except OSError:
            continue
        thumb = thumbnail(data)
        broken += thumb is None
        done.append((card, thumb))
        if progress is not None:
            progress(len(done))
    text = render(done, page.absolute(), title)
    written = write_atomic(page, text.encode("utf-8"), overwrite=True)
    return written, len(done), broken
