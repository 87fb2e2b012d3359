"""Metadata in image files: written so the ecosystem reads it, read back by `imagegen info`.

What goes in (unless --no-metadata, which writes none and strips what came):

    PNG    tEXt/iTXt `parameters` (AUTOMATIC1111 infotext), `imagegen` (our JSON),
           iTXt `XML:com.adobe.xmp` (XMP). Never `prompt` or `workflow`: ComfyUI
           reads those names as its own JSON graph.
    JPEG   APP1 Exif (ImageDescription, Software, UserComment = infotext) and
           APP1 XMP; each segment holds at most 64 KB, so a long prompt is cut
           in the copy there (the caller is told, and the sidecar keeps it whole).
    WebP   EXIF and XMP chunks, the same content.

The XMP carries IPTC DigitalSourceType = trainedAlgorithmicMedia, the mark
the industry reads as "AI-generated". Values are spliced into the container:
received pixels are never re-encoded. Nothing here imports Pillow.

A provider's signed image (C2PA, credentials.py) must not come here: its
signature covers these very bytes. The writer (engine/save.py) asks first.

This module owns writing (`embed`) and stripping (`strip`). Its parts live
beside it: infotext.py (A1111 `parameters`), xmp.py (the XMP packet),
chunks.py (PNG/JPEG/RIFF/TIFF layout) and metaread.py (`read`, `settings_from`);
their public names are re-exported here.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

from imagegen_cli.files.images import webp_info
from imagegen_cli.files.metadata.chunks import (
    ifd,
    jpeg_segments,
    png_chunk,
    png_chunks,
    riff_chunk,
    riff_chunks,
)

# `NAME`: re-exported, callers have always found these here.
from imagegen_cli.files.metadata.infotext import SOFTWARE, infotext
from imagegen_cli.files.metadata.xmp import xmp_packet

PNG_SIG = b"\x89PNG\r\n\x1a\n"
# APP1 payload limit: the 16-bit length counts itself.
JPEG_SEGMENT_MAX = 0xFFFF - 2


def embed(data: bytes, fmt: str, meta: dict[str, Any],
          warn: Callable[[str], None] | None = None) -> tuple[bytes, bool]:
    """DATA with META embedded; also whether the prompt had to be cut to fit (JPEG)."""
    data = strip(data, fmt)
    if fmt == "png":
        return _png(data, meta), False
    if fmt == "jpeg":
        return _jpeg(data, meta, warn)
    if fmt == "webp":
        exif = _exif(meta, str(meta.get("prompt", "")))
        return _webp(data, exif, xmp_packet(meta)), False
    return data, False


# --- PNG

def _png_text(key: str, value: str) -> bytes:
    try:
        return png_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:
        # iTXt: keyword, no compression, empty language and translated keyword.
        body = key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")
        return png_chunk(b"iTXt", body)


def _png(data: bytes, meta: dict[str, Any]) -> bytes:
    chunks = [_png_text("parameters", infotext(meta))]
    for key in ("revised_prompt", "provider", "model", "size", "seed"):
        if meta.get(key) is not None:
            chunks.append(_png_text(key, str(meta[key])))
    chunks.append(_png_text("imagegen", json.dumps(meta, ensure_ascii=False, sort_keys=True)))
    xmp = xmp_packet(meta).decode("utf-8")
    chunks.append(png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp.encode("utf-8")))
    ihdr_end = 8 + 12 + struct.unpack(">I", data[8:12])[0]
    return b"".join([data[:ihdr_end], *chunks, memoryview(data)[ihdr_end:]])  # one copy


# --- EXIF (big-endian TIFF)

def _exif(meta: dict[str, Any], prompt: str) -> bytes:
    """TIFF header | IFD0 | Exif IFD | IFD0's data | Exif IFD's data."""
    desc = prompt.encode("utf-8") + b"\0"
    software = SOFTWARE.encode() + b"\0"
    comment = b"UNICODE\0" + infotext(meta, prompt).encode("utf-16-be")
    ifd0_at, n0, n1 = 8, 3, 1
    exif_at = ifd0_at + 2 + 12 * n0 + 4
    data_at = exif_at + 2 + 12 * n1 + 4
    ifd0, extra0 = ifd([(0x010E, 2, len(desc), desc),
                         (0x0131, 2, len(software), software),
                         (0x8769, 4, 1, struct.pack(">I", exif_at))], data_at)
    exif, extra1 = ifd([(0x9286, 7, len(comment), comment)], data_at + len(extra0))
    return b"MM\x00\x2a" + struct.pack(">I", ifd0_at) + ifd0 + exif + extra0 + extra1


# --- JPEG

def _fit(build: Callable[[str], bytes], prompt: str, limit: int) -> tuple[bytes, str]:
    """BUILD(prompt) if it fits in LIMIT bytes, else BUILD of the longest prefix that does."""
    whole = build(prompt)
    if len(whole) <= limit:
        return whole, prompt
    lo, hi = 0, len(prompt)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(build(prompt[:mid])) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return build(prompt[:lo]), prompt[:lo]


def _jpeg(data: bytes, meta: dict[str, Any],
          warn: Callable[[str], None] | None) -> tuple[bytes, bool]:
    prompt = str(meta.get("prompt", ""))
    exif_head, xmp_head = b"Exif\0\0", b"http://ns.adobe.com/xap/1.0/\0"
    exif, kept_e = _fit(lambda p: exif_head + _exif(meta, p), prompt, JPEG_SEGMENT_MAX)
    xmp, kept_x = _fit(lambda p: xmp_head + xmp_packet(meta, p), prompt, JPEG_SEGMENT_MAX)
    cut = min(len(kept_e), len(kept_x)) < len(prompt)
    if cut and warn is not None:
        warn(f"the prompt ({len(prompt)} characters) is longer than a JPEG metadata segment "
             f"holds: the image's EXIF and XMP carry its first {min(len(kept_e), len(kept_x))}"
             " characters and all settings; the sidecar .json keeps the whole text")
    segments = b"".join(b"\xff\xe1" + struct.pack(">H", len(p) + 2) + p for p in (exif, xmp))
    pos = 2
    if data[2:4] == b"\xff\xe0":  # after a JFIF APP0
        pos = 4 + struct.unpack(">H", data[4:6])[0]
    return data[:pos] + segments + data[pos:], cut


# --- WebP

def _webp(data: bytes, exif: bytes, xmp: bytes) -> bytes:

    w, h, alpha = webp_info(data)
    chunks = riff_chunks(data)
    if chunks and chunks[0][0] == b"VP8X":
        head = bytearray(chunks[0][1])
        head[0] |= 0x08 | 0x04
        chunks[0] = (b"VP8X", bytes(head))
    else:
        flags = 0x08 | 0x04 | (0x10 if alpha else 0)
        vp8x = bytes([flags, 0, 0, 0]) + (w - 1).to_bytes(3, "little") \
            + (h - 1).to_bytes(3, "little")
        chunks.insert(0, (b"VP8X", vp8x))
    chunks += [(b"EXIF", exif), (b"XMP ", xmp)]
    body = b"".join(riff_chunk(t, b) for t, b in chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


# --- stripping

_PNG_META = {b"tEXt", b"iTXt", b"zTXt", b"eXIf"}


def strip(data: bytes, fmt: str) -> bytes:
    """DATA without text, EXIF or XMP metadata (what --no-metadata promises)."""
    if fmt == "png":
        spans = png_chunks(data)
        if spans and spans[-1][2] == len(data) and not any(
                t in _PNG_META for t, _, _ in spans):
            return data  # nothing to take out: no copy of a big image
        view = memoryview(data)
        return b"".join([data[:8], *(view[s:e] for t, s, e in spans if t not in _PNG_META)])
    if fmt == "jpeg":
        segs = jpeg_segments(data)
        if not segs:
            return data
        body_at = segs[-1][2]
        keep = [data[s:e] for m, s, e in segs
                if not (m == 0xE1 or (m == 0xFE))]  # APP1 (Exif, XMP) and COM
        return data[:2] + b"".join(keep) + data[body_at:]
    if fmt == "webp":
        chunks = riff_chunks(data)
        kept = [(t, b) for t, b in chunks if t not in (b"EXIF", b"XMP ")]
        if len(kept) == len(chunks):
            return data
        if kept and kept[0][0] == b"VP8X":
            head = bytearray(kept[0][1])
            head[0] &= ~(0x08 | 0x04) & 0xFF
            kept[0] = (b"VP8X", bytes(head))
        out = b"".join(riff_chunk(t, b) for t, b in kept)
        return b"RIFF" + struct.pack("<I", 4 + len(out)) + b"WEBP" + out
    return data
