"""Server-sent events: a text/event-stream body read as (event, data) pairs.

Owns splitting the stream into lines (CRLF, LF or CR, split anywhere across
chunks, each line capped) and the WHATWG dispatch rules. Used by streamed
generations (partial images).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from imagegen_cli.errors import UnavailableError

if TYPE_CHECKING:
    import httpx

SSE_LINE_CAP = 64 * 1024 * 1024  # one event line (a base64 partial image)


def iter_sse(resp: httpx.Response) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream body."""
    return parse_sse(resp.iter_bytes())


def sse_lines(chunks: Iterable[bytes], cap: int = SSE_LINE_CAP) -> Iterator[str]:
    """Lines of an event stream (CRLF, LF or CR endings, split anywhere across
    chunks); a line longer than CAP bytes is a malformed stream."""
    buf = bytearray()
    cr_pending = False  # the last chunk ended in CR: an LF opening the next one is its pair
    for chunk in chunks:
        if cr_pending and chunk[:1] == b"\n":
            chunk = chunk[1:]
        cr_pending = False
        start = 0
        for m in _EOL.finditer(chunk):
            buf += chunk[start:m.start()]
            yield buf.decode("utf-8", "replace")
            buf.clear()
            start = m.end()
        buf += chunk[start:]
        if chunk.endswith(b"\r"):
            cr_pending = True
        if len(buf) > cap:
            raise UnavailableError(f"An event stream line is over {cap} bytes")
    if buf:
        yield buf.decode("utf-8", "replace")


_EOL = re.compile(rb"\r\n|\r|\n")


def parse_sse(chunks: Iterable[bytes]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of an event stream given as byte chunks (the WHATWG rules:
    comments skipped, `data:` lines joined with LF, an event is dispatched at a blank
    line; a final event without its blank line is still delivered)."""
    event = "message"
    data: list[str] = []
    first = True
    for line in sse_lines(chunks):
        if first:
            line = line.removeprefix("\ufeff")
            first = False
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)
