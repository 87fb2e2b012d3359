"""One mask convention for the user, converted per provider.

The user's convention: white (luminance >= 128) marks the area to repaint,
black is kept; a mask with transparent pixels uses transparency instead (the
OpenAI convention), detected automatically; without a mask, the image's own
transparent pixels mark the area. Internally a mask is an 8-bit grey PNG,
255 = repaint, the size of the image.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from imagegen_cli.errors import UsageError
from imagegen_cli.files.images import open_checked, read_image_file
from imagegen_cli.types import ImageRequest, InputImage

if TYPE_CHECKING:
    from PIL import Image

THRESHOLD = 128


def _open(path: Path) -> Image.Image:

    data = read_image_file(path)
    try:
        im: Image.Image = open_checked(data)
    except ValueError as exc:
        raise UsageError(f"{path} is not a readable image: {exc}") from None
    return im


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _transparent_area(im: Image.Image) -> Image.Image | None:
    """255 where IM is transparent (alpha < 128), or None when nothing is."""
    if im.mode not in ("RGBA", "LA", "PA") and not (im.mode == "P" and
                                                     "transparency" in im.info):
        return None
    alpha = im.convert("RGBA").getchannel("A")
    low = alpha.getextrema()[0]
    if isinstance(low, (int, float)) and low >= THRESHOLD:
        return None
    return alpha.point(lambda a: 255 if a < THRESHOLD else 0)


def area_from_mask(mask: Image.Image) -> Image.Image:
    """255 where the user's MASK says repaint: transparency if any, else white."""
    transparent = _transparent_area(mask)
    if transparent is not None:
        return transparent
    return mask.convert("L").point(lambda v: 255 if v >= THRESHOLD else 0)


def attach(
    req: ImageRequest, image_paths: list[Path], mask_path: Path | None, invert: bool
) -> ImageRequest:
    """Read and check the inpaint inputs; return REQ with images and a normalised mask."""
    if not image_paths:
        raise UsageError("inpaint needs --image IMG")
    opened = [(Path(p), _open(Path(p))) for p in image_paths]
    first_path, first = opened[0]
    images = []
    for path, im in opened:
        rgb = im.convert("RGBA") if im.mode in ("RGBA", "LA", "P") else im.convert("RGB")
        images.append(InputImage(path=path, data=_png(rgb), width=im.size[0],
                                 height=im.size[1]))
    if mask_path is not None:
        return req.with_(images=images,
                         mask=load_mask(Path(mask_path), first.size, first_path, invert))
    area = _transparent_area(first)
    if area is None:
        raise UsageError(
            f"{first_path} has no transparent pixels and no --mask was given: pass "
            "--mask MASK (white marks the area to repaint)"
        )
    if invert:
        area = area.point(lambda v: 255 - v)
    if area.getbbox() is None:
        raise UsageError(f"The mask from {first_path} marks nothing to repaint"
                         + (" (drop --invert-mask?)" if invert else ""))
    mask = InputImage(path=first_path, data=_png(area), width=area.size[0],
                      height=area.size[1])
    return req.with_(images=images, mask=mask)


def load_mask(mask_path: Path, size: tuple[int, int] | None, image_path: Path,
              invert: bool) -> InputImage:
    """The user's mask file as an internal mask (grey PNG, 255 = repaint) for an image
    of SIZE (None: not known here); UsageError when it does not fit or marks nothing."""
    mask_im = _open(mask_path)
    if size is not None and mask_im.size != size:
        raise UsageError(
            f"Mask {mask_path} is {mask_im.size[0]}x{mask_im.size[1]} but image "
            f"{image_path} is {size[0]}x{size[1]}: they must be the same size"
        )
    area = area_from_mask(mask_im)
    if invert:
        area = area.point(lambda v: 255 - v)
    if area.getbbox() is None:
        raise UsageError(f"The mask from {mask_path} marks nothing to repaint"
                         + (" (drop --invert-mask?)" if invert else ""))
    return InputImage(path=mask_path, data=_png(area), width=area.size[0],
                      height=area.size[1])


def load_area(mask: InputImage) -> Image.Image:
    from PIL import Image

    im = Image.open(io.BytesIO(mask.data))
    im.load()
    return im.convert("L")


def openai_mask(mask: InputImage) -> bytes:
    """An RGBA PNG whose alpha is 0 where to repaint (OpenAI's convention)."""
    from PIL import Image

    area = load_area(mask)
    rgba = Image.new("RGBA", area.size, (0, 0, 0, 255))
    rgba.putalpha(area.point(lambda v: 0 if v >= THRESHOLD else 255))
    return _png(rgba)


def white_mask(mask: InputImage, size: tuple[int, int] | None = None) -> bytes:
    """A grey PNG, white = repaint (Nebula/diffusers convention), optionally resized."""
    area = load_area(mask)
    if size and area.size != size:
        from PIL import Image

        area = area.resize(size, Image.Resampling.NEAREST)
    return _png(area)
