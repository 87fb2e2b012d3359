"""Parse a JSON answer whose `b64_json` strings are too big to hold at once.

The body is read chunk by chunk. Each `"b64_json": "..."` string is decoded as
it streams in and spooled to a temporary file; the rest of the document (the
small part) is parsed normally with a `Spool` standing in for each image. So
an answer with ten 4 MB images costs one image's memory, not eighty megabytes.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable
from typing import IO, Any

from imagegen_cli import b64

KEY = b'"b64_json"'
_PLACEHOLDER = "\x00imagegen-spool-%d\x00"
_PLACEHOLDER_RE = re.compile("^\x00imagegen-spool-(\\d+)\x00$")


class Spool:
    """Decoded image bytes parked on disk until read once."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - lives until read
        self.size = 0

    def read(self) -> bytes:
        self.file.seek(0)
        data = self.file.read()
        self.file.close()
        return data


class Malformed(ValueError):
    """The answer is not a well-formed JSON document: the only error `load` raises."""


class BadBase64(Malformed):
    pass


# The small part of the document (all but the images) is held in memory: cap it.
SKELETON_CAP = 16 * 1024 * 1024


class _Extractor:
    def __init__(self) -> None:
        self.skeleton = bytearray()
        self.spools: list[Spool] = []
        self.state = "scan"
        self.pending = b""
        self.carry = b""

    def feed(self, chunk: bytes) -> None:
        data = self.pending + chunk
        self.pending = b""
        i = 0
        n = len(data)
        while i < n:
            if self.state == "scan":
                j = data.find(KEY, i)
                if j < 0:
                    cut = max(i, n - (len(KEY) - 1))
                    self.skeleton += data[i:cut]
                    self.pending = data[cut:]
                    self._check_size()
                    return
                self.skeleton += data[i : j + len(KEY)]
                self._check_size()
                i = j + len(KEY)
                self.state = "colon"
            elif self.state == "colon":
                c = data[i : i + 1]
                if c in (b" ", b"\t", b"\r", b"\n", b":"):
                    self.skeleton += c
                    i += 1
                elif c == b'"':
                    self.spools.append(Spool())
                    self.carry = b""
                    self.state = "string"
                    i += 1
                else:  # null, or anything else: leave it to json
                    self.state = "scan"
            else:  # inside a base64 string
                j = data.find(b'"', i)
                end = j if j >= 0 else n
                segment = data[i:end]
                if segment.endswith(b"\\") and j < 0:
                    self.pending = b"\\"
                    segment = segment[:-1]
                if b"\\" in segment:
                    # Base64 holds only '/' that JSON may escape, and line breaks.
                    segment = (segment.replace(b"\\/", b"/").replace(b"\\n", b"")
                               .replace(b"\\r", b""))
                    if b"\\" in segment:
                        raise BadBase64("unexpected escape in base64 data")
                self._decode(self.carry + segment)
                if j < 0:
                    return
                if self.carry:
                    raise BadBase64("base64 data has a dangling tail")
                k = len(self.spools) - 1
                self.skeleton += json.dumps(_PLACEHOLDER % k).encode()
                self.state = "scan"
                i = j + 1

    def _check_size(self) -> None:
        if len(self.skeleton) > SKELETON_CAP:
            raise Malformed(f"the answer holds over {SKELETON_CAP} bytes besides its images")

    def _decode(self, text: bytes) -> None:
        cut = len(text) // 4 * 4
        self.carry = text[cut:]
        if cut:
            try:
                raw = b64.decode(text[:cut])
            except b64.Error as exc:
                raise BadBase64(str(exc)) from None
            spool = self.spools[-1]
            spool.file.write(raw)
            spool.size += len(raw)

    def close(self) -> Any:
        if self.state != "scan":
            raise Malformed("the answer ended inside an image")
        self.skeleton += self.pending
        try:
            doc = json.loads(bytes(self.skeleton))
        except RecursionError:
            raise Malformed("the answer is nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bad UTF-8
            raise Malformed(str(exc)) from None
        return _restore(doc, self.spools)


def _restore(value: Any, spools: list[Spool]) -> Any:
    if isinstance(value, str):
        m = _PLACEHOLDER_RE.match(value)
        return spools[int(m.group(1))] if m else value
    if isinstance(value, list):
        return [_restore(v, spools) for v in value]
    if isinstance(value, dict):
        return {k: _restore(v, spools) for k, v in value.items()}
    return value


def load(chunks: Iterable[bytes]) -> Any:
    """The parsed document, with a Spool in place of each b64_json string.
    Raises Malformed (a ValueError; BadBase64 included) for anything malformed."""
    ex = _Extractor()
    for chunk in chunks:
        ex.feed(chunk)
    return ex.close()
