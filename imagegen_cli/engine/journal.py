"""The batch journal: which images each job has written, so a re-run skips them.

One JSON object per line, appended and fsynced as each image is claimed: the
line is written just before the file appears under its name (see
`output.write_atomic`'s claim), so after a kill -9 at any moment every image
on disk is in the journal, and an entry whose file never appeared is simply
not intact. An entry is intact when its file exists with the recorded size
and either the recorded mtime or the recorded sha256 (hashing only when the
mtime changed keeps a re-run of a big batch fast).

Appends are single `write` calls on an O_APPEND descriptor: two batches can
share one journal.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from imagegen_cli.engine.events import ImageWritten, image_record
from imagegen_cli.engine.jobs import Job
from imagegen_cli.engine.save import Claim, SavedImage
from imagegen_cli.errors import OutputError
from imagegen_cli.files import jsontext

DEFAULT_NAME = ".imagegen-batch.jsonl"


def static_dir(template: str) -> Path:
    """The folder part of an output template before any {field}."""
    head = template.split("{", 1)[0]
    if head.endswith(("/", os.sep)):
        return Path(head)
    return Path(head).parent


class Journal:
    def __init__(self, path: Path, *, force: bool = False) -> None:
        self.path = path
        self.entries: dict[tuple[str, int], dict[str, Any]] = {}
        self.indexes: dict[str, set[int]] = {}  # each key's indexes in entries
        self.fd: int | None = None
        self.lock = threading.Lock()
        if not force:
            self._load()

    def _load(self) -> None:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        rec = jsontext.loads(line)
                        key, index = str(rec["key"]), int(rec["index"])
                        self.entries[(key, index)] = rec
                        self.indexes.setdefault(key, set()).add(index)
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a kill: that image is redone
        except FileNotFoundError:
            return
        except OSError as exc:
            raise OutputError(f"Cannot read journal {self.path}: {exc.strerror or exc} "
                              "(pass --state FILE to use another)") from None

    def finished(self, job: Job) -> list[SavedImage] | None:
        """The job's images that an earlier run wrote and are intact (all of them: the
        job is finished; some: a killed run's job, whose other images are still to
        make), or None."""
        out = []
        # The job's entries, not its indexes: a job of -n 100000000000 is no long loop.
        for index in sorted(self.indexes.get(job.key, ())):
            rec = self.entries[(job.key, index)]
            if 1 <= index <= job.n and _intact(rec):
                out.append(SavedImage.from_record(rec))
        return out or None

    def claim_for(self, job: Job) -> Claim:
        def claim(saved: SavedImage, st: os.stat_result) -> None:
            rec = image_record(ImageWritten(job, saved, saved.request_id))
            rec.pop("skipped", None)
            self.append({"key": job.key, "mtime_ns": st.st_mtime_ns, **rec})

        return claim

    def open(self) -> None:
        """Open the journal for appending now: one that cannot be written fails the
        batch (exit 7) before anything is paid for, not after the first image."""
        with self.lock:
            try:
                self._open()
            except OSError as exc:
                raise OutputError(f"Cannot write journal {self.path}: "
                                  f"{exc.strerror or exc} (pass --state FILE to keep it "
                                  "elsewhere)") from None

    def _open(self) -> int:
        if self.fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if _ends_mid_line(self.path):
                os.write(self.fd, b"\n")  # after a kill mid-append
        return self.fd

    def append(self, rec: dict[str, Any]) -> None:
        line = (json.dumps(rec, ensure_ascii=False) + "\n").encode()
        with self.lock:
            try:
                fd = self._open()
                os.write(fd, line)
                os.fsync(fd)
            except OSError as exc:
                raise OutputError(f"Cannot write journal {self.path}: "
                                  f"{exc.strerror or exc}") from None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _ends_mid_line(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError:
        return False


def _intact(rec: dict[str, Any]) -> bool:
    try:
        st = os.stat(rec["path"])
    except (OSError, KeyError, TypeError):
        return False
    if st.st_size != rec.get("bytes"):
        return False
    if st.st_mtime_ns == rec.get("mtime_ns"):
        return True
    h = hashlib.sha256()
    try:
        with open(rec["path"], "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return False
    return h.hexdigest() == rec.get("sha256")
