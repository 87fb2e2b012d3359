"""Output naming (templates), atomic writes and never-overwrite."""

from __future__ import annotations

import contextlib
import os
import re
import string
import tempfile
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from imagegen_cli.errors import OutputError, UsageError

DEFAULT_TEMPLATE = "{date}-{time}-{prompt}-{index}.{ext}"
FIELDS = {"prompt", "index", "count", "seed", "model", "provider", "date", "time", "ext"}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
FORMAT_OF_EXT = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
# A file name's most bytes (ext4, APFS, NTFS), less room for a never-overwrite "-NNN".
NAME_MAX = 255
NAME_ROOM = 8
# Device names Windows refuses as a file name, with any extension: never produced.
RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
            *(f"LPT{i}" for i in range(1, 10))}


def slug(text: str, limit: int = 40) -> str:
    """A filename-safe slug: ASCII letters, digits and dashes, never a path."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9]+", "-", text.lower()).strip("-")
    text = text[:limit].rstrip("-")
    return text or "image"


def _field_slug(value: object) -> str:
    # Values other than {prompt} come from flags or the provider; still keep them
    # to one path component.
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(value)).strip("-.")
    return s or "x"


def check_template(template: str) -> None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UsageError(f"Bad --output template '{template}': {exc}") from None
    for _, name, _spec, conv in parsed:
        if name is None:
            continue
        if name not in FIELDS:
            raise UsageError(
                f"Unknown field '{{{name}}}' in --output template; known fields: "
                + ", ".join("{" + f + "}" for f in sorted(FIELDS))
            )
        if conv:
            raise UsageError(f"Conversions like '!{conv}' are not allowed in --output")


@dataclass
class OutputPlan:
    """Where images go: a template, one exact file, or stdout."""

    template: str
    stdout: bool = False
    exact: bool = False  # a plain file path: images past the first get -2, -3...
    overwrite: bool = False

    @classmethod
    def from_option(cls, value: str | None, overwrite: bool = False) -> OutputPlan:
        if value is None or value == "":
            return cls(DEFAULT_TEMPLATE, overwrite=overwrite)
        if value == "-":
            return cls("", stdout=True)
        if "\0" in value:
            raise UsageError("-o/--output holds a NUL character, which no file name can "
                             "contain")
        long = next((c for c in value.split(os.sep) if len(c.encode()) > NAME_MAX), None)
        if long is not None:
            raise UsageError(f"-o/--output has a name of {len(long.encode())} bytes; file "
                             f"and folder names take at most {NAME_MAX}")
        expanded = os.path.expanduser(value)
        if "{" in expanded:
            check_template(expanded)
            return cls(expanded, overwrite=overwrite)
        if expanded.endswith(("/", os.sep)) or Path(expanded).is_dir():
            folder = expanded.replace("{", "{{").replace("}", "}}")
            return cls(os.path.join(folder, DEFAULT_TEMPLATE), overwrite=overwrite)
        return cls(expanded.replace("{", "{{").replace("}", "}}"), exact=True,
                   overwrite=overwrite)

    def wanted_format(self) -> str | None:
        """A format implied by the file extension of an exact path or template."""
        if self.stdout:
            return None
        suffix = Path(self.template).suffix.lower()
        return FORMAT_OF_EXT.get(suffix)

    def path_for(
        self,
        *,
        prompt: str,
        index: int,
        count: int,
        ext: str,
        seed: int | None,
        model: str,
        provider: str,
        now: datetime,
    ) -> Path:
        values = {
            "prompt": slug(prompt),
            "index": str(index),
            "count": str(count),
            "seed": _field_slug(seed) if seed is not None else "noseed",
            "model": _field_slug(model.replace("/", "-")),
            "provider": _field_slug(provider),
            "date": now.strftime("%Y%m%d"),
            "time": now.strftime("%H%M%S"),
            "ext": ext,
        }
        rendered = self.template.format(**values)
        path = Path(rendered)
        if self.exact and count > 1 and index > 1:
            path = path.with_name(f"{path.stem}-{index}{path.suffix}")
        return path.with_name(legal_name(path.name))


def legal_name(name: str) -> str:
    """NAME as a file name every common system accepts: at most NAME_MAX bytes with
    room for a "-NNN" (the stem is cut, the extension kept), never a Windows device
    name."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode()) > 16:
        stem, dot, ext = name, "", ""
    budget = NAME_MAX - NAME_ROOM - len((dot + ext).encode())
    if len(stem.encode()) > budget:
        stem = stem.encode()[:budget].decode("utf-8", "ignore")
    first, sep, rest = stem.partition(".")
    if first.upper() in RESERVED:
        stem = f"{first}_{sep}{rest}"
    return stem + dot + ext


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
) -> Path:
    """Write DATA to PATH whole or not at all; never replace a file unless asked.

    Returns the path written, which differs from PATH when PATH existed
    (never-overwrite adds -1, -2, ...). The temp file lives in the same folder,
    and a hard link (or rename when overwriting) makes it appear atomically.
    """
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create folder {folder}: {exc.strerror or exc}") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise OutputError(f"Cannot write in {folder}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, path)
            return path
        target = path
        while True:
            target = unique_path(target, companions)
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
        raise OutputError(f"Cannot write {path}: {exc.strerror or exc}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
