"""Writing a file whole or not at all, never over another unless asked.

Owns `write_atomic` (a temp file in the same folder, fsynced, then a hard link,
or a rename when overwriting, makes it appear at once; never-overwrite takes the
next free name, with its companion files free too), `unique_path`, cleaning up
the temp files of runs killed mid-write (their pid is gone), and the process
umask, read once at import without setting it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from imagegen_cli.errors import OutputError, output_error


def refuse_symlink(path: Path, what: str, fix: str) -> None:
    """OutputError (exit 7) when PATH is a symlink: a file this tool keeps (journal,
    lock, summary) is never written through one, which could point anywhere the user
    can write (a shared volume)."""
    if os.path.islink(path):
        try:
            target = f" (to {os.readlink(path)})"
        except OSError:
            target = ""
        raise OutputError(f"Refusing to use {what} {path}: it is a symlink{target}, and "
                          f"imagegen never follows a symlink it did not create; {fix}")


def open_nofollow(path: Path, flags: int, mode: int, what: str, fix: str) -> int:
    """os.open(PATH) without following a symlink at PATH (O_NOFOLLOW): a symlink there
    is OutputError (exit 7) naming WHAT and FIX; other OSErrors are the caller's."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            refuse_symlink(path, what, fix)
        raise


def unique_path(path: Path, companions: tuple[str, ...] = ()) -> Path:
    """PATH, or PATH-1, PATH-2... whichever is free, with its companion files
    (e.g. the .json sidecar) free too."""

    def free(p: Path) -> bool:
        # lexists: a dangling symlink is taken too (exists() would say free for ever).
        return not os.path.lexists(p) and not any(
            os.path.lexists(p.with_suffix(c)) for c in companions)

    if free(path):
        return path
    k = 1
    while True:
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
        if free(candidate):
            return candidate
        k += 1


def write_atomic(
    path: Path,
    data: bytes,
    *,
    overwrite: bool = False,
    companions: tuple[str, ...] = (),
    mode: int | None = None,
    claim: Callable[[Path, os.stat_result], None] | None = None,
) -> Path:
    """Write DATA to PATH whole or not at all; never replace a file unless asked.

    Returns the path written, which differs from PATH when PATH existed
    (never-overwrite adds -1, -2, ...). The temp file lives in the same folder,
    and a hard link (or rename when overwriting) makes it appear atomically.
    CLAIM(target, stat of the data) runs just before it appears (a journal records
    the name first, so a kill between the two leaves nothing unaccounted for).
    The temp name carries our pid and host: `clean_stale_parts` removes those of dead
    runs.
    """
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(f"Cannot create folder {folder}", exc) from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}@{_HOST}.",
                                   suffix=".part", dir=folder)
    except OSError as exc:
        raise output_error(f"Cannot write in {folder}", exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode if mode is not None else 0o666 & ~UMASK)
        if overwrite:
            if claim is not None:
                claim(path, os.stat(tmp))
            os.replace(tmp, path)
            return path
        target = path
        while True:
            target = unique_path(target, companions)
            if claim is not None:
                claim(target, os.stat(tmp))
            try:
                os.link(tmp, target)
            except FileExistsError:
                continue  # lost a race with another writer: take the next name
            except OSError:
                # Filesystems without hard links: fall back to an exclusive create.
                try:
                    with open(target, "xb") as fh:
                        fh.write(data)
                except FileExistsError:
                    continue
            os.unlink(tmp)
            return target
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise output_error(f"Cannot write {path}", exc) from None
    except BaseException:  # Ctrl-C mid-write: no temp file left behind either
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def rewrite(path: Path, data: bytes, *, mode: int | None = None) -> Path:
    """Replace the contents of a file the user keeps (a shell rc file, the config),
    atomically and through a symlink: the link is resolved and the temp file written
    beside its target, so the link stays a link; the target keeps its mode (MODE, when
    given, is what a new file gets, and an existing one is never looser than it).
    Returns the file written (the target)."""
    target = Path(os.path.realpath(path))
    try:
        current: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        current = None
    except OSError as exc:
        raise OutputError(f"Cannot write {path}: {exc.strerror or exc}") from None
    if current is None:
        new = mode
    elif mode is None:
        new = current
    else:
        new = current & mode  # keep what it had, never wider than asked (0600: keys)
    return write_atomic(target, data, overwrite=True, mode=new)


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """FOLDER held by this process (an flock on the folder itself, released by the
    kernel if the process dies) while several files are written as one unit: an image
    and its sidecar replaced by racing processes must describe each other."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield  # cannot be opened (or no such folder yet): the writes report it
        return
    try:
        import fcntl

        with contextlib.suppress(OSError):  # a filesystem without locks: as before
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# .NAME.PID@HOST.RANDOM.part: only what write_atomic names (the pid@host mark is
# ours; a bare .NAME.PID.RANDOM.part may be another tool's download, left alone).
_PART = re.compile(r"^\..+\.(\d+)@([A-Za-z0-9-]+)\.[A-Za-z0-9_]+\.part$")
# A temp file of another machine (a shared volume: Kubernetes, Slurm on NFS) is left
# alone until it is this old: its pid means nothing here, and no write takes an hour.
FOREIGN_PART_AGE = 3600.0


def _host_id() -> str:
    import socket

    try:
        name = socket.gethostname()
    except OSError:
        name = ""
    return re.sub(r"[^A-Za-z0-9-]", "", name)[:40] or "host"


_HOST = _host_id()


def clean_stale_parts(folder: Path) -> int:
    """Remove temp files that runs killed mid-write left in FOLDER (only files named
    as write_atomic names them, only in FOLDER itself): this machine's whose pid is
    gone, another machine's once an hour old; a live run's stay.
    Returns how many were removed."""
    import time

    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        m = _PART.match(entry.name)
        # Only regular files: never a symlink (or what it points at), never a folder.
        if not m or not entry.is_file(follow_symlinks=False):
            continue
        pid, host = int(m.group(1)), m.group(2)
        if host != _HOST:
            try:
                if time.time() - entry.stat().st_mtime < FOREIGN_PART_AGE:
                    continue
            except OSError:
                continue
        elif pid == os.getpid() or _alive(pid):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed += 1
    return removed


_cleaned: set[str] = set()


def clean_once(folder: Path) -> None:
    """`clean_stale_parts` for FOLDER, the first time this process writes there."""
    key = os.path.abspath(folder)
    if key not in _cleaned:
        _cleaned.add(key)
        clean_stale_parts(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _read_umask() -> int:
    """The process umask, read once at import (before any worker thread exists):
    os.umask can only read it by setting it, which would race with other threads'
    file creation."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _read_umask()
