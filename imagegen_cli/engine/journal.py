"""The batch journal: which images each job has written, so a re-run skips them.

One JSON object per line, appended and fsynced as each image is claimed: the
line is written just before the file appears under its name (see
`output.write_atomic`'s claim), so after a kill -9 at any moment every image
on disk is in the journal, and an entry whose file never appeared is simply
not intact. An entry is intact when its file exists with the recorded size
and either the recorded mtime or the recorded sha256 (hashing only when the
mtime changed keeps a re-run of a big batch fast).

Appends are single `write` calls on an O_APPEND descriptor. One run writes a
journal at a time: a second run on it (a CI retry while the first still runs)
would pay for every job again, so it is refused before it sends anything
(`open`); the lock is the kernel's, released when its process ends, so a
killed run's lock never lingers.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from imagegen_cli.engine.events import ImageWritten, image_record
from imagegen_cli.engine.jobs import Job
from imagegen_cli.engine.save import Claim, SavedImage
from imagegen_cli.errors import OutputError, output_error
from imagegen_cli.files import jsontext
from imagegen_cli.files.atomic import open_nofollow

DEFAULT_NAME = ".imagegen-batch.jsonl"
_FIX = "remove it, or pass --state FILE to keep the journal elsewhere"


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
            fd = open_nofollow(self.path, os.O_RDONLY, 0, "journal", _FIX)
            with open(fd, encoding="utf-8", errors="replace") as fh:
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
        # A journal an older imagegen wrote names the job by its key of then (and one
        # resumed since, by both).
        found: dict[int, dict[str, Any]] = {}
        for key in (job.legacy_key, job.key):
            for index in self.indexes.get(key, ()) if key else ():
                found[index] = self.entries[(key, index)]
        for index in sorted(found):
            rec = found[index]
            if 1 <= index <= job.n and _intact(rec):
                out.append(SavedImage.from_record(rec))
        return out or None

    def spent(self, jobs: list[Job] | None) -> float:
        """USD that earlier runs recorded for the images of JOBS (None: every image the
        journal records; files since deleted included: that money is spent)."""
        keys = {k for job in jobs for k in (job.key, job.legacy_key) if k} if jobs is not None \
            else None
        total = 0.0
        for (key, _), rec in self.entries.items():
            cost = rec.get("cost_usd")
            if (keys is None or key in keys) and isinstance(cost, (int, float)) \
                    and not isinstance(cost, bool):
                total += float(cost)
        return total

    def claim_for(self, job: Job) -> Claim:
        def claim(saved: SavedImage, st: os.stat_result) -> None:
            rec = image_record(ImageWritten(job, saved, saved.request_id))
            rec.pop("skipped", None)
            self.append({"key": job.key, "mtime_ns": st.st_mtime_ns, **rec})

        return claim

    def open(self) -> None:
        """Open the journal for appending now, and take it for this run: one that cannot
        be written, or that another run holds, fails the batch (exit 7) before anything
        is paid for, not after the first image."""
        import fcntl

        with self.lock:
            try:
                fd = self._open()
            except OSError as exc:
                raise OutputError(f"Cannot write journal {self.path}: "
                                  f"{exc.strerror or exc} (pass --state FILE to keep it "
                                  "elsewhere)") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.close()
                raise OutputError(
                    f"Another imagegen batch is running on the journal {self.path}: nothing "
                    "was sent; wait for it to finish (then run this again: finished jobs "
                    "are skipped), or give this run its own --state FILE") from None
            except OSError:
                pass  # a filesystem without locks (some network mounts): as before
            try:
                # Only once the journal is this run's: another's line may be mid-append.
                if _ends_mid_line(fd):
                    os.write(fd, b"\n")  # after a kill mid-append
            except OSError as exc:
                raise output_error(f"Cannot write journal {self.path}", exc) from None

    def _open(self) -> int:
        if self.fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = open_nofollow(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT,
                                    0o644, "journal", _FIX)
        return self.fd

    def append(self, rec: dict[str, Any]) -> None:
        line = (json.dumps(rec, ensure_ascii=False) + "\n").encode()
        with self.lock:
            try:
                fd = self._open()
                if os.write(fd, line) != len(line):
                    # A full disk takes part of a line: that is no claim, and the image
                    # it names must not appear (the caller drops it). The next run ends
                    # the broken line (`open`) and makes that image again.
                    raise OSError(errno.ENOSPC, "the disk is full (a line written in part)")
                os.fsync(fd)
            except OSError as exc:
                raise output_error(f"Cannot write journal {self.path}", exc) from None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _ends_mid_line(fd: int) -> bool:
    try:
        size = os.fstat(fd).st_size
        return size > 0 and os.pread(fd, 1, size - 1) != b"\n"
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
