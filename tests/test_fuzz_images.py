"""Fuzzing the image paths: masks and input images (every mode, any size, truncated,
decompression bombs) and image answers (random bytes, truncated PNG/JPEG/WebP, bogus
IHDR, SVG or HTML served as an image).

Inputs end in UsageError (exit 2), answers in UnavailableError (exit 6), never
another exception; an answer that is written decodes whole.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

from hypothesis import event, example, given
from hypothesis import strategies as st
from PIL import Image

from imagegen_cli.engine.save import SaveOptions, Saver
from imagegen_cli.errors import UnavailableError, UsageError
from imagegen_cli.files.masks import attach
from imagegen_cli.files.naming import OutputPlan
from imagegen_cli.types import GeneratedImage, ImageRequest
from tests.faults import bomb_png, chunk
from tests.fuzzing import fuzz

MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "CMYK"]
FORMATS = {"PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"),
           "JPEG": ("L", "RGB", "CMYK"), "WEBP": ("RGB", "RGBA"), "GIF": ("L", "P")}


@st.composite
def pil_images(draw: st.DrawFn, size: tuple[int, int] | None = None) -> bytes:
    """A real image file: any mode, size and pixels, in a format that holds the mode
    (P with a transparent index sometimes)."""
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(FORMATS[fmt]))
    w, h = size or (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    im = Image.new(mode, (w, h))
    nbytes = len(im.tobytes())
    seed = draw(st.binary(min_size=1, max_size=64))
    im.frombytes((seed * (nbytes // len(seed) + 1))[:nbytes])
    kwargs: dict[str, object] = {}
    if mode == "P" and draw(st.booleans()):
        kwargs["transparency"] = draw(st.integers(0, 255))
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@st.composite
def damaged(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = draw(base)
    how = draw(st.sampled_from(["whole", "truncate", "flip", "splice"]))
    if how == "truncate":
        return data[:draw(st.integers(0, max(0, len(data) - 1)))]
    if how == "flip":
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    if how == "splice":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(max_size=16)) + data[at:]
    return data


@st.composite
def bogus_png(draw: st.DrawFn) -> bytes:
    """A PNG whose IHDR holds any values (a good CRC or not), then a small IDAT."""
    w, h = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
    depth, color = draw(st.sampled_from([0, 1, 2, 4, 8, 16, 255])), draw(st.integers(0, 8))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, draw(st.integers(0, 2)),
                       draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    body = chunk(b"IHDR", ihdr)
    if draw(st.booleans()):
        body = body[:-4] + b"\0\0\0\0"  # a bad CRC
    idat = zlib.compress(draw(st.binary(max_size=200)))
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


small_bombs = st.builds(bomb_png, st.integers(1, 200_000), st.integers(1, 200_000))
not_images = st.sampled_from([
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10"/>',
    b"<!DOCTYPE html><html><body>Bad gateway</body></html>",
    b'{"error": {"message": "no"}}', b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff",
    b"RIFF\0\0\0\0WEBPVP8 ", b"GIF89a"])
inputs = st.one_of(damaged(pil_images()), bogus_png(), small_bombs, not_images,
                   st.binary(max_size=200))


def _req() -> ImageRequest:
    return ImageRequest(prompt="p", model="m")


@st.composite
def same_size_pairs(draw: st.DrawFn) -> tuple[bytes, bytes | None]:
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    return (draw(damaged(pil_images(size))),
            draw(st.one_of(st.none(), damaged(pil_images(size)))))


pairs = st.one_of(st.tuples(inputs, st.one_of(st.none(), inputs)), same_size_pairs())


@fuzz(300)
@given(pair=pairs, invert=st.booleans())
@example(pair=(bomb_png(), None), invert=False)
def test_inpaint_inputs_end_in_usage_error(pair: tuple[bytes, bytes | None],
                                           invert: bool) -> None:
    image, mask = pair
    Path("in.img").write_bytes(image)
    if mask is not None:
        Path("mask.img").write_bytes(mask)
    try:
        req = attach(_req(), [Path("in.img")], Path("mask.img") if mask is not None else None,
                     invert)
    except UsageError as exc:
        assert "\n" not in str(exc)
        event("refused (exit 2)")
        return
    event("accepted")
    assert req.mask is not None and req.images
    with Image.open(io.BytesIO(req.mask.data)) as m:
        assert m.size == (req.images[0].width, req.images[0].height)


answers = st.one_of(damaged(pil_images()), bogus_png(), small_bombs, not_images,
                    st.binary(max_size=300))


@fuzz(300)
@given(data=answers, fmt=st.sampled_from([None, "png", "jpeg", "webp"]),
       meta=st.booleans())
@example(data=bomb_png(), fmt=None, meta=True)
def test_answers_end_in_unavailable_or_a_whole_file(data: bytes, fmt: str | None,
                                                    meta: bool, tmp_path: Path) -> None:
    import tempfile

    out = Path(tempfile.mkdtemp(dir=tmp_path)) / "out"  # a fresh folder per example
    saver = Saver(plan=OutputPlan.from_option(f"{out}/{{index}}.{{ext}}"), provider="p",
                  model="m", request=_req(), count=1,
                  files=SaveOptions(format=fmt, metadata=meta))
    try:
        saved = saver.save(GeneratedImage(index=0, data=data), 1)
    except UnavailableError as exc:
        assert "\n" not in str(exc)
        assert not out.exists() or list(out.iterdir()) == []
        event("refused (exit 6)")
        return
    event("written")
    assert saved is not None
    with Image.open(saved.path) as im:
        im.load()  # the written file decodes whole
        assert im.size == (saved.width, saved.height)
    assert [p.name for p in out.iterdir()] == [Path(saved.path).name]


@st.composite
def tagged(draw: st.DrawFn) -> bytes:
    """An image carrying imagegen's metadata (any prompt), then maybe damaged."""
    from imagegen_cli.files.metadata import write as metadata

    data = draw(pil_images())
    fmt = images_fmt(data)
    if fmt in ("png", "jpeg", "webp"):
        meta = {"prompt": draw(st.text(max_size=50)), "seed": draw(st.integers()),
                "model": "m", "provider": "p"}
        data, _ = metadata.embed(data, fmt, meta, None)
    return draw(damaged(st.just(data)))


def images_fmt(data: bytes) -> str | None:
    from imagegen_cli.files.images import sniff

    return sniff(data)


@fuzz(300)
@given(data=st.one_of(tagged(), answers))
def test_info_reads_any_file_or_says_why_not(data: bytes) -> None:
    from imagegen_cli.cli.info import describe

    Path("f.img").write_bytes(data)
    try:
        report = describe(Path("f.img"))
    except UsageError as exc:
        assert "\n" not in str(exc)
        event("refused (exit 2)")
        return
    event("read")
    json.dumps(report)
