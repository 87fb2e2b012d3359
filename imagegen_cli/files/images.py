"""Image bytes: sniff, measure and convert (metadata lives in metadata.py).

Pillow is imported only where pixels must change.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from typing import Any

from imagegen_cli.errors import ImagegenError, UnavailableError, UsageError

PNG_SIG = b"\x89PNG\r\n\x1a\n"
# The most pixels an image may declare: above 8K UHD (33 MP) and every provider's
# largest size, far below what a decompression bomb declares (a tiny PNG can claim
# 100000x100000, 10 GP). Checked from the header, before Pillow allocates anything.
MAX_PIXELS = 40_000_000
# The most of a user's file read as an image (as much as a provider's answer may be).
MAX_FILE_BYTES = 64 * 1024 * 1024


def sniff(data: bytes) -> str | None:
    if data.startswith(PNG_SIG):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def dimensions(data: bytes) -> tuple[int, int]:
    """Width and height from the header alone; raises on a damaged image."""
    fmt = sniff(data)
    try:
        if fmt == "png":
            if data[12:16] != b"IHDR":
                raise ValueError("no IHDR")
            w, h = struct.unpack(">II", data[16:24])
            return w, h
        if fmt == "jpeg":
            return _jpeg_dimensions(data)
        if fmt == "webp":
            return webp_info(data)[0:2]
        if fmt == "gif":
            w, h = struct.unpack("<HH", data[6:10])
            return w, h
    except (struct.error, ValueError, IndexError):
        pass
    raise ValueError("not a readable image")


def _jpeg_dimensions(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("bad JPEG marker")
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    raise ValueError("no JPEG frame header")


def webp_info(data: bytes) -> tuple[int, int, bool]:
    """(width, height, has_alpha) of a WebP file."""
    chunk = data[12:16]
    body = data[20:]
    if chunk == b"VP8X":
        w = int.from_bytes(body[4:7], "little") + 1
        h = int.from_bytes(body[7:10], "little") + 1
        return w, h, bool(body[0] & 0x10)
    if chunk == b"VP8 ":
        if body[3:6] != b"\x9d\x01\x2a":
            raise ValueError("bad VP8 start code")
        w, h = struct.unpack("<HH", body[6:10])
        return w & 0x3FFF, h & 0x3FFF, False
    if chunk == b"VP8L":
        if body[0] != 0x2F:
            raise ValueError("bad VP8L signature")
        bits = int.from_bytes(body[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)
    raise ValueError("unknown WebP chunk")


# Formats written exactly as received, and only when the user asked for them: the
# gpt-image-2.6 family draws SVG and animated GIF on request.
AS_RECEIVED = ("gif", "svg")


def verify(data: bytes, expect: str | None = None) -> tuple[str, int, int]:
    """Format and size of a complete image; UnavailableError for anything else.

    A truncated or corrupt answer must never reach the output path. SVG is accepted
    only when EXPECT is "svg" (it is text, not pixels: never sniffed by default).
    """
    if expect == "svg":
        return "svg", *svg_dimensions(data)
    fmt = sniff(data)
    if expect is not None and fmt != expect:
        raise UnavailableError(f"Asked for {expect.upper()} but the provider answered with "
                               f"{fmt.upper() if fmt else 'something else'}")
    if fmt is None:
        raise UnavailableError("The provider answered with data that is not an image")
    whose = f"The provider's {fmt.upper()} image"
    measured(data, UnavailableError, f"{whose} is damaged", lambda why: f"{whose} {why}")
    if not _complete(data, fmt):
        raise UnavailableError(f"The provider's {fmt.upper()} image is truncated")
    try:
        w, h = decode_check(data)  # the size the pixels have, whatever a header claims
    except ValueError as exc:
        raise UnavailableError(f"The provider's {fmt.upper()} image cannot be decoded "
                               f"({exc})") from None
    return fmt, w, h


def pixel_problem(w: int, h: int) -> str | None:
    """Why a W x H image (as its header declares it) must not be decoded, or None."""
    if w < 1 or h < 1:
        return f"declares {w}x{h} pixels"
    if w * h > MAX_PIXELS:
        return (f"declares {w}x{h} pixels, over the limit of {MAX_PIXELS:,} (a "
                "decompression bomb?)")
    return None


def decode_check(data: bytes) -> tuple[int, int]:
    """Decode every pixel of DATA (at most MAX_PIXELS); ValueError saying why not.
    Returns the decoded size."""
    with open_checked(data) as im:
        size: tuple[int, int] = im.size
        return size


def open_checked(data: bytes) -> Any:
    """DATA decoded by Pillow (a loaded PIL image), or ValueError saying why not: never
    more than MAX_PIXELS decoded, never an exception of Pillow's own."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        try:
            im = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ValueError("its data is damaged or truncated") from None
        too_big = pixel_problem(*im.size)
        if too_big:
            im.close()
            raise ValueError(too_big)
        try:
            im.load()
        except BaseException:
            im.close()
            raise
        return im
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many unrelated
        # types on hostile input (OSError, SyntaxError, struct.error, EOFError, ...).
        raise ValueError(str(exc) or type(exc).__name__) from None


def svg_dimensions(data: bytes) -> tuple[int, int]:
    """Width and height of a whole SVG document (0 where it declares none);
    UnavailableError when it is not one. Parsed with expat, which refuses external
    entities and entity expansion bombs."""
    import re
    import xml.etree.ElementTree as ET

    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith((b"<svg", b"<?xml", b"<!--", b"<!DOCTYPE svg")):
        raise UnavailableError("Asked for SVG but the provider answered with something else")
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        raise UnavailableError("The provider's SVG is damaged or truncated") from None
    if root.tag.rsplit("}", 1)[-1] != "svg":
        raise UnavailableError("Asked for SVG but the provider answered with another XML")

    def number(value: str | None) -> int:
        m = re.match(r"\s*([0-9.]+)\s*(px)?\s*$", value or "")
        return round(float(m.group(1))) if m else 0

    w, h = number(root.get("width")), number(root.get("height"))
    box = (root.get("viewBox") or "").replace(",", " ").split()
    if (not w or not h) and len(box) == 4:
        with contextlib.suppress(ValueError):
            w, h = w or round(float(box[2])), h or round(float(box[3]))
    return w, h


def _complete(data: bytes, fmt: str) -> bool:
    if fmt == "png":
        return _png_complete(data)
    if fmt == "gif":
        return data.rstrip(b"\x00").endswith(b"\x3b")  # the GIF trailer
    if fmt == "jpeg":
        return data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if fmt == "webp":
        riff_size: int = struct.unpack("<I", data[4:8])[0]
        return riff_size + 8 <= len(data)
    return True


def _png_complete(data: bytes) -> bool:
    i = 8
    while i + 12 <= len(data):
        length = struct.unpack(">I", data[i : i + 4])[0]
        ctype = data[i + 4 : i + 8]
        end = i + 12 + length
        if end > len(data):
            return False
        if ctype == b"IEND":
            return True
        i = end
    return False


def convert(data: bytes, fmt: str, *, quality: int = 95) -> bytes:
    """Re-encode to FMT with Pillow (only when the received format differs)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        return _convert(Image.open(io.BytesIO(data)), fmt, quality)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        # Structurally whole but undecodable pixels: a bad answer, not our bug.
        raise UnavailableError(f"The provider's image cannot be decoded ({exc})") from None


def _convert(im: Any, fmt: str, quality: int) -> bytes:
    import io

    from PIL import Image

    with im:
        im.load()
        if fmt == "jpeg" and im.mode not in ("RGB", "L"):
            rgba = im.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            im2 = flat
        elif fmt == "png" or fmt == "webp":
            im2 = im if im.mode in ("RGB", "RGBA", "L", "LA") else im.convert("RGBA")
        else:
            im2 = im
        out = io.BytesIO()
        kwargs: dict[str, Any] = {}
        if fmt in ("jpeg", "webp"):
            kwargs["quality"] = quality
        im2.save(out, format=fmt.upper(), **kwargs)
        return out.getvalue()


def resize(data: bytes, size: tuple[int, int]) -> bytes:
    """DATA as a PNG of SIZE (unchanged when it already is that size)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.size == size:
            return data
        buf = io.BytesIO()
        im.resize(size, Image.Resampling.LANCZOS).save(buf, format="PNG")
        return buf.getvalue()


def read_image_file(path: Any) -> bytes:
    """Bytes of a user-named image, or a UsageError naming the file."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)  # /dev/zero would never end
    except OSError as exc:
        raise UsageError(f"Cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"{path} is over {MAX_FILE_BYTES >> 20} MB: not an image this reads "
                         "(pass a smaller file)")
    if sniff(data) is None:
        raise UsageError(f"{path} is not an image (PNG, JPEG, WebP or GIF expected)")
    measured(data, UsageError, f"{path} is not a readable image: its header is damaged",
             lambda why: f"{path} {why}: pass a smaller image")
    return data


def measured(data: bytes, error: type[ImagegenError], damaged: str,
             too_big: Callable[[str], str]) -> tuple[int, int]:
    """WIDTH, HEIGHT from the header of an image already sniffed; ERROR(DAMAGED) for a
    header that cannot be read, ERROR(TOO_BIG(problem)) for one we refuse to
    decode (a decompression bomb)."""
    try:
        w, h = dimensions(data)
    except ValueError:
        raise error(damaged) from None
    problem = pixel_problem(w, h)
    if problem:
        raise error(too_big(problem))
    return w, h
