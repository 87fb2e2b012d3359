"""Sniffing, verification, conversion and embedded metadata that other tools read."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from imagegen_cli.errors import UnavailableError
from imagegen_cli.files import images
from imagegen_cli.files.metadata import write as metadata
from tests.fakes.server import png

META = {"prompt": "a café at night", "provider": "openai", "model": "gpt-image-1",
        "size": "32x16", "seed": 7, "steps": 20, "negative_prompt": "blur"}


def encode(fmt: str, mode: str = "RGB", **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (32, 16), (10, 20, 30) if mode == "RGB" else (10, 20, 30, 128)).save(
        buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt, kw", [("PNG", {}), ("JPEG", {}), ("WEBP", {}),
                                     ("WEBP", {"lossless": True})])
def test_dimensions_from_header(fmt: str, kw: dict[str, object]) -> None:
    data = encode(fmt, **kw)
    assert images.verify(data)[1:] == (32, 16)


def test_truncated_and_garbage_rejected() -> None:
    data = png(16, 16)
    with pytest.raises(UnavailableError, match="truncated"):
        images.verify(data[:-12])
    with pytest.raises(UnavailableError, match="not an image"):
        images.verify(b"<html>")
    with pytest.raises(UnavailableError):
        images.verify(encode("JPEG")[:-50])


def test_png_text_chunks_readable() -> None:
    out = metadata.embed(encode("PNG"), "png", META)[0]
    with Image.open(io.BytesIO(out)) as im:
        im.load()
        params = im.text["parameters"]  # type: ignore[attr-defined]
    assert params.splitlines()[0] == "a café at night"
    assert params.splitlines()[1] == "Negative prompt: blur"
    assert params.splitlines()[2].startswith("Steps: 20, Seed: 7, Size: 32x16, Model: gpt-image-1")


def test_png_unicode_goes_to_itxt() -> None:
    out = metadata.embed(encode("PNG"), "png", dict(META, prompt="猫"))[0]
    assert b"iTXt" in out
    with Image.open(io.BytesIO(out)) as im:
        im.load()
        assert im.text["parameters"].startswith("猫\n")  # type: ignore[attr-defined]


def _user_comment(im: Image.Image) -> str:
    exif = im.getexif().get_ifd(0x8769)
    raw = exif[0x9286]
    assert raw[:8] == b"UNICODE\0"
    return raw[8:].decode("utf-16-be")


def test_jpeg_exif_and_xmp_without_reencode() -> None:
    src = encode("JPEG")
    out = metadata.embed(src, "jpeg", META)[0]
    assert out.endswith(src[20:])  # pixels untouched: the original stream follows our segments
    with Image.open(io.BytesIO(out)) as im:
        assert _user_comment(im).startswith("a café at night\nNegative prompt: blur")
        assert im.getexif()[0x010E].encode("latin-1").decode() == "a café at night"
        xmp = ET.fromstring(im.info["xmp"])
    ns = {"rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
          "dc": "http://purl.org/dc/elements/1.1/"}
    li = xmp.find(".//dc:description/rdf:Alt/rdf:li", ns)
    assert li is not None and li.text == "a café at night"
    desc = xmp.find(".//rdf:Description", ns)
    assert desc is not None
    assert desc.get("{https://github.com/imagegen-cli/ns/1.0/}model") == "gpt-image-1"


@pytest.mark.parametrize("lossless", [False, True])
def test_webp_exif_and_xmp(lossless: bool) -> None:
    src = encode("WEBP", mode="RGBA", lossless=lossless)
    out = metadata.embed(src, "webp", META)[0]
    with Image.open(io.BytesIO(out)) as im:
        im.load()
        assert im.size == (32, 16) and im.mode == "RGBA"
        assert _user_comment(im).startswith("a café at night")
        assert b"imagegen:provider" in im.info["xmp"]


def test_convert_flattens_alpha_for_jpeg() -> None:
    out = images.convert(encode("PNG", mode="RGBA"), "jpeg")
    with Image.open(io.BytesIO(out)) as im:
        assert im.format == "JPEG" and im.mode == "RGB"
