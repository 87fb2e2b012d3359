"""Output naming (templates), atomic writes and never-overwrite.

This module owns naming: the -o templates and their fields, `OutputPlan` (where
each image of a job goes, and whether that folder can be written), slugs and
names every common file system accepts. Writing (atomic, never-overwrite, temp
file cleanup, the umask) lives in atomic.py; its names are re-exported here.
"""

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

# `NAME`: re-exported, callers have always found these here.

DEFAULT_TEMPLATE = "{date}-{time}-{prompt}-{index}.{ext}"
BATCH_TEMPLATE = "{id}-{prompt}-{index}.{ext}"
FIELDS = {"id", "prompt", "index", "count", "seed", "model", "provider", "date", "time", "ext"}
# gif and svg only when asked for (gpt-image-2.6 generations), written as received.
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp", "gif": "gif", "svg": "svg"}
FORMAT_OF_EXT = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp",
                 ".gif": "gif", ".svg": "svg"}
# A file name's most bytes (ext4, APFS, NTFS), less room for a never-overwrite "-NNN".
NAME_MAX = 255
NAME_ROOM = 8
# Image formats we cannot write: a name ending so would hold PNG bytes under a lie.
# (.gif and .svg are written when the model draws them: see FORMAT_OF_EXT.)
UNWRITABLE_EXT = {".bmp", ".tif", ".tiff", ".avif", ".heic", ".heif", ".jxl", ".ico",
                  ".jp2"}


# Names Windows reserves whatever the extension (CON.png is the console there).
WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                    *(f"lpt{i}" for i in range(10))}


def slug(text: str, limit: int = 40) -> str:
    """A filename-safe slug: ASCII letters, digits and dashes, never a path.

    Other scripts are transliterated (anyascii: `лиса в снегу` -> `lisa-v-snegu`,
    `雪の狐` -> `xue-no-hu`) rather than dropped, and a name Windows reserves gets
    a suffix.
    """
    text = _ascii(unicodedata.normalize("NFC", text))
    text = re.sub(r"[^A-Za-z0-9]+", "-", text.lower()).strip("-")
    text = text[:limit].rstrip("-")
    if text in WINDOWS_RESERVED:
        text += "-image"
    return text or "image"


_SYLLABIC = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL")


def _ascii(text: str) -> str:
    from anyascii import anyascii

    out = []
    for ch in text:
        if ch.isascii():
            out.append(ch)
            continue
        if unicodedata.category(ch)[0] not in "LMN":
            out.append(" ")  # symbols and emoji: anyascii would spell ":coffee:"
            continue
        # Each ideograph, kana or hangul block is a syllable: keep them apart as words.
        sep = " " if unicodedata.name(ch, "").startswith(_SYLLABIC) else ""
        out.append(sep + anyascii(ch) + sep)
    return "".join(out)


def _field_slug(value: object) -> str:
    # Values other than {prompt} come from flags or the provider; still keep them
    # to one path component.
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(value)).strip("-.")
    if s.split(".")[0].lower() in WINDOWS_RESERVED:
        s += "-x"
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


def inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether PATH is ROOT or under it, once `..` and symlinks are resolved (in both:
    a symlinked -o folder holds what is under its target)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


@dataclass
class OutputPlan:
    """Where images go: a template, one exact file, or stdout."""

    template: str
    stdout: bool = False
    exact: bool = False  # a plain file path: images past the first get -2, -3...
    overwrite: bool = False

    @classmethod
    def from_option(cls, value: str | None, overwrite: bool = False,
                    default: str | None = None) -> OutputPlan:
        default = default or DEFAULT_TEMPLATE
        if value is None or value == "":
            return cls(default, overwrite=overwrite)
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
        if expanded.endswith(("/", os.sep)) or Path(expanded).is_dir() or \
                os.path.basename(expanded) in (".", ".."):
            folder = expanded.replace("{", "{{").replace("}", "}}")
            return cls(os.path.join(folder, default), overwrite=overwrite)
        return cls(expanded.replace("{", "{{").replace("}", "}}"), exact=True,
                   overwrite=overwrite)

    def check_extension(self) -> None:
        """UsageError for a name ending in an image format we cannot write (.gif)."""
        if self.stdout:
            return
        suffix = Path(self.template).suffix.lower()
        if suffix in UNWRITABLE_EXT:
            raise UsageError(
                f"-o {self.template}: {suffix[1:].upper()} is not an output format; "
                "name a .png, .jpg or .webp file (or pass -f png|jpeg|webp)")

    def check_writable(self) -> None:
        """OutputError (exit 7) now, before anything is paid for, when the folder the
        images go to cannot be created or written."""
        if self.stdout:
            return
        head = self.template.split("{", 1)[0]
        # The fixed part of the template: a folder, or a folder plus a name prefix.
        folder = Path(head) if head.endswith(("/", os.sep)) else Path(head).parent
        probe = folder
        while not probe.exists():
            if probe.parent == probe:
                break
            probe = probe.parent
        if probe.exists() and not probe.is_dir():
            raise OutputError(f"Cannot create folder {folder}: {probe} is a file")
        what = "write in" if probe == folder else f"create {folder} in"
        if not os.access(probe, os.W_OK | os.X_OK):
            raise OutputError(f"Cannot {what} {probe}: permission denied "
                              "(choose another -o, or fix the folder's permissions)")
        # os.access says yes to root almost everywhere (/proc, some mounts): really try.
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".imagegen-probe.{os.getpid()}.", dir=probe)
        except OSError as exc:
            raise OutputError(f"Cannot {what} {probe}: {exc.strerror or exc} "
                              "(choose another -o)") from None
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)

    def stays_in(self, root: Path) -> bool:
        """Whether every image of this plan lands under ROOT, once `..` and symlinks are
        resolved (fields are slugs, so a probe with each one rendered as "x" stands for
        every name; literal `..` after a field still counts)."""
        if self.stdout:
            return True
        try:
            probe = self.template.format(**{f: "x" for f in FIELDS})
        except (KeyError, ValueError, IndexError):  # not a template settling accepts
            return False
        return inside(probe, root)

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
        id: str = "1",
    ) -> Path:
        values = {
            "id": _field_slug(id),
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
        if path.suffix.lower() not in FORMAT_OF_EXT:
            # `-o noext` (or a template without {ext}): give the file its extension.
            path = path.with_name(f"{path.name}.{ext}")
        if self.exact and count > 1 and index > 1:
            path = path.with_name(f"{path.stem}-{index}{path.suffix}")
        return path.with_name(legal_name(path.name))


def static_dir(template: str) -> Path:
    """The folder part of an output template before any {field}."""
    head = template.split("{", 1)[0]
    if head.endswith(("/", os.sep)):
        return Path(head)
    return Path(head).parent


def canonical_template(template: str) -> str:
    """TEMPLATE with its folder part spelled one way: `out/`, `./out/`, its absolute path
    and a path through a symlinked parent all name the same folder, so they are one
    output (a job's identity must not depend on how its folder was typed)."""
    head = template.split("{", 1)[0]
    cut = max(head.rfind("/"), head.rfind(os.sep)) + 1
    folder = os.path.realpath(template[:cut] or ".")
    return os.path.join(folder, template[cut:])


def legal_name(name: str) -> str:
    """NAME as a file name every common system accepts: at most NAME_MAX bytes with
    room for a "-NNN" (the stem is cut, the extension kept), never a Windows device
    name (whatever the template's literal text says)."""
    if name in ("", ".", ".."):  # a template ending in a folder, e.g. "{prompt}/.."
        name = "image"
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode()) > 16:
        stem, dot, ext = name, "", ""
    budget = NAME_MAX - NAME_ROOM - len((dot + ext).encode())
    if len(stem.encode()) > budget:
        stem = stem.encode()[:budget].decode("utf-8", "ignore")
    first, sep, rest = stem.partition(".")
    if first.lower() in WINDOWS_RESERVED:
        stem = f"{first}_{sep}{rest}"
    return stem + dot + ext
