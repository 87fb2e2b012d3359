"""Parse a JSON answer whose `b64_json` strings are too big to hold at once.

The body is read chunk by chunk. Each `"b64_json": "..."` string goes, as it
streams in, to a temporary file, still base64 (no copy, no allocation per chunk
in the reading thread: sixteen of them reading at once leave no heap behind);
it is decoded, whole and strictly, when the image is read. The rest of the
document (the small part) is parsed normally with a `Spool` standing in for each
image. So an answer with ten 4 MB images costs one image's memory, not eighty
megabytes.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable
from typing import IO, Any

from imagegen_cli.transport import b64

KEY = b'"b64_json"'
_PLACEHOLDER = "\x00imagegen-spool-%d\x00"
_PLACEHOLDER_RE = re.compile("^\x00imagegen-spool-(\\d+)\x00$")


class Spool:
    """Image bytes parked on disk until read once: as received (a download), or
    base64 text decoded when read (an answer's b64_json; BadBase64 then)."""

    def __init__(self, encoded: bool = False) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - lives until read
        self.size = 0
        self.encoded = encoded

    def read(self) -> bytes:
        self.file.seek(0)
        data = self.file.read()
        self.file.close()
        if not self.encoded:
            return data
        try:
            return b64.decode(data)
        except (b64.Error, ValueError) as exc:
            raise BadBase64(f"its image data is not valid base64 ({exc})") from None


class Malformed(ValueError):
    """The answer is not a well-formed JSON document: the only error `load` raises."""


class BadBase64(Malformed):
    pass


# The small part of the document (all but the images) is held in memory: cap it.
SKELETON_CAP = 16 * 1024 * 1024
# One image's base64 text: 64 MiB of image, the cap on a downloaded image too.
IMAGE_TEXT_CAP = 64 * 1024 * 1024 * 4 // 3 + 4


class _Extractor:
    def __init__(self, key: bytes = KEY) -> None:
        self.key = key
        self.skeleton = bytearray()
        self.spools: list[Spool] = []
        self.state = "scan"
        self.pending = b""

    def feed(self, chunk: bytes) -> None:
        data = self.pending + chunk
        self.pending = b""
        i = 0
        n = len(data)
        while i < n:
            if self.state == "scan":
                j = data.find(self.key, i)
                if j < 0:
                    cut = max(i, n - (len(self.key) - 1))
                    self.skeleton += data[i:cut]
                    self.pending = data[cut:]
                    self._check_size()
                    return
                self.skeleton += data[i : j + len(self.key)]
                self._check_size()
                i = j + len(self.key)
                self.state = "colon"
            elif self.state == "colon":
                c = data[i : i + 1]
                if c in (b" ", b"\t", b"\r", b"\n", b":"):
                    self.skeleton += c
                    i += 1
                elif c == b'"':
                    self.spools.append(Spool(encoded=True))
                    self.state = "string"
                    i += 1
                else:  # null, or anything else: leave it to json
                    self.state = "scan"
            else:  # inside a base64 string
                j = data.find(b'"', i)
                end = j if j >= 0 else n
                if j < 0 and data.endswith(b"\\"):
                    self.pending = b"\\"  # an escape split across chunks
                    end -= 1
                if data.find(b"\\", i, end) < 0:
                    self._spool(memoryview(data)[i:end])  # the usual case: no copy
                else:
                    # Base64 holds only '/' that JSON may escape, and line breaks.
                    segment = (data[i:end].replace(b"\\/", b"/").replace(b"\\n", b"")
                               .replace(b"\\r", b""))
                    if b"\\" in segment:
                        raise BadBase64("unexpected escape in base64 data")
                    self._spool(segment)
                if j < 0:
                    return
                k = len(self.spools) - 1
                self.skeleton += json.dumps(_PLACEHOLDER % k).encode()
                self.state = "scan"
                i = j + 1

    def _check_size(self) -> None:
        if len(self.skeleton) > SKELETON_CAP:
            raise Malformed(f"the answer holds over {SKELETON_CAP} bytes besides its images")

    def _spool(self, text: bytes | memoryview) -> None:
        spool = self.spools[-1]
        spool.file.write(text)
        spool.size += len(text)
        if spool.size > IMAGE_TEXT_CAP:
            raise Malformed(f"an image in the answer is over {IMAGE_TEXT_CAP} bytes")

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


def load(chunks: Iterable[bytes], key: str = "b64_json") -> Any:
    """The parsed document, with a Spool in place of each KEY string (b64_json; Gemini's
    inlineData holds its base64 under "data"). Raises Malformed (a ValueError;
    BadBase64 included) for anything malformed."""
    ex = _Extractor(json.dumps(key).encode())
    for chunk in chunks:
        ex.feed(chunk)
    return ex.close()
