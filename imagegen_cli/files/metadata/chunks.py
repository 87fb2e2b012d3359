"""The byte layout of the three containers metadata is spliced into.

Owns building and walking PNG chunks, JPEG marker segments (up to the scan
data), RIFF chunks (WebP) and big-endian TIFF IFDs (EXIF); `TYPE_SIZE` gives
each TIFF field type's size. No meaning here, only layout: metadata.py writes
with these and metaread.py reads with them.
"""

from __future__ import annotations

import struct
import zlib


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of every chunk after the signature."""
    out = []
    i = 8
    while i + 12 <= len(data):
        length = struct.unpack(">I", data[i : i + 4])[0]
        end = i + 12 + length
        out.append((data[i + 4 : i + 8], i, min(end, len(data))))
        if data[i + 4 : i + 8] == b"IEND":
            break
        i = end
    return out


TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 7: 1}


def ifd(entries: list[tuple[int, int, int, bytes]], data_at: int) -> tuple[bytes, bytes]:
    """An IFD table and its out-of-line data (placed at DATA_AT): (tag, type, count, value).

    A value of 4 bytes or fewer lives in the entry itself (TIFF 6.0, section 2):
    readers take a short value from there, never from an offset.
    """
    table = struct.pack(">H", len(entries))
    extra = b""
    for tag, typ, count, value in sorted(entries):
        if len(value) <= 4:
            table += struct.pack(">HHI", tag, typ, count) + value.ljust(4, b"\0")
        else:
            table += struct.pack(">HHII", tag, typ, count, data_at + len(extra))
            extra += value + (b"\0" if len(value) % 2 else b"")
    return table + struct.pack(">I", 0), extra


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of the segments before the scan data."""
    out = []
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD9, 0xDA):
            break
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        out.append((marker, i, i + 2 + length))
        i += 2 + length
    return out


def riff_chunk(ctype: bytes, body: bytes) -> bytes:
    return ctype + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    i = 12
    while i + 8 <= len(data):
        ctype = data[i : i + 4]
        size = struct.unpack("<I", data[i + 4 : i + 8])[0]
        out.append((ctype, data[i + 8 : i + 8 + size]))
        i += 8 + size + (size & 1)
    return out
