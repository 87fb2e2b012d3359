"""The pure-Python C2PA reader (files/metadata/credentials.py) without c2pa-python: a
manifest store built here box by box, and hostile bytes where a store would be."""

from __future__ import annotations

import io
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imagegen_cli.files.metadata import credentials
from imagegen_cli.files.metadata.chunks import png_chunk, png_chunks, riff_chunk

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
C2PA_UUID = bytes.fromhex("6332706100110010800000aa00389b71")


def cbor(v: Any) -> bytes:
    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | info]) + n.to_bytes(size, "big")
        raise ValueError(n)

    if isinstance(v, str):
        raw = v.encode()
        return head(3, len(raw)) + raw
    if isinstance(v, int):
        return head(0, v)
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict):
        return head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())
    raise TypeError(v)


def box(btype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + btype + payload


def superbox(label: str, *content: bytes) -> bytes:
    jumd = box(b"jumd", C2PA_UUID + b"\x03" + label.encode() + b"\0")
    return box(b"jumb", jumd + b"".join(content))


def store(generator: str = "Test-Generator", version: str = "2.0") -> bytes:
    actions = superbox("c2pa.actions.v2", box(b"cbor", cbor(
        {"actions": [{"action": "c2pa.created", "digitalSourceType": TRAINED},
                     {"action": "c2pa.resized"}]})))
    claim = superbox("c2pa.claim.v2", box(b"cbor", cbor(
        {"claim_generator_info": {"name": generator, "version": version},
         "dc:title": "made here"})))
    manifest = superbox("urn:c2pa:1234", superbox("c2pa.assertions", actions), claim)
    return superbox("c2pa", manifest)


def png_with(body: bytes) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    data = buf.getvalue()
    ihdr_end = 8 + 12 + 13
    return data[:ihdr_end] + png_chunk(b"caBX", body) + data[ihdr_end:]


def jpeg_with(body: bytes, piece: int = 1000) -> bytes:
    """BODY (a JUMBF box) as APP11 segments of at most PIECE bytes each, the box header
    repeated in each, as ISO 19566-5 cuts it."""
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="JPEG")
    data = buf.getvalue()
    head, rest = body[:8], body[8:]
    segments = b""
    for seq, at in enumerate(range(0, max(len(rest), 1), piece), 1):
        payload = b"JP" + struct.pack(">HI", 1, seq) + head + rest[at : at + piece]
        segments += b"\xff\xeb" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segments + data[2:]


def webp_with(body: bytes) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="WEBP")
    data = buf.getvalue()
    chunks = data[12:] + riff_chunk(b"C2PA", body)
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks


def test_store_read_in_every_container() -> None:
    want = {"present": True, "manifests": 1, "claim_generator": "Test-Generator 2.0",
            "title": "made here", "actions": ["c2pa.created", "c2pa.resized"],
            "digital_source_type": TRAINED, "ai_generated": True}
    for fmt, data in (("png", png_with(store())), ("jpeg", jpeg_with(store(), 100)),
                      ("webp", webp_with(store()))):
        assert credentials.present(data, fmt), fmt
        assert credentials.summary(data, fmt) == want, fmt


def test_no_store_and_a_foreign_jumbf() -> None:
    assert credentials.summary(png_with(b""), "png")["damaged"] is True
    other = superbox("not-c2pa", box(b"json", b"{}"))
    assert credentials.summary(jpeg_with(other), "jpeg") == {"present": False}
    assert credentials.summary(b"GIF89a", "gif") == {"present": False}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 10_000))
def test_hostile_stores_never_raise(junk: bytes, cut: int) -> None:
    real = store()
    mangled = real[: cut % (len(real) + 1)] + junk
    for fmt, data in (("png", png_with(mangled)), ("jpeg", jpeg_with(mangled)),
                      ("webp", webp_with(mangled)), ("png", png_with(junk))):
        got = credentials.summary(data, fmt)
        assert got["present"] in (True, False)


def test_deep_or_huge_cbor_is_refused_not_followed() -> None:
    deep = b"\x81" * 5000 + b"\x00"  # arrays nested 5000 deep
    assert credentials._content(superbox("x", box(b"cbor", deep))[8:]) is None
    huge = b"\x5b" + (1 << 40).to_bytes(8, "big")  # a byte string claiming a terabyte
    assert credentials._content(superbox("x", box(b"cbor", huge))[8:]) is None
    assert [t for t, _, _ in png_chunks(png_with(store()))][:2] == [b"IHDR", b"caBX"]
