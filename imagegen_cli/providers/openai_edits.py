"""The inputs of an OpenAI edit call: data URLs, multipart form values, dall-e-2's limits.

Owns turning image bytes into a data URL (the JSON edit body), a request field
into a multipart form value, and fitting a dall-e-2 edit to its one square PNG
under 4 MB (shrunk, with its mask, when that is enough). Pillow is imported only
when an image must be shrunk.
"""

from __future__ import annotations

import json
from typing import Any

from imagegen_cli.files.images import sniff
from imagegen_cli.files.masks import load_area
from imagegen_cli.providers import ImageRequest, InputImage, Transport, UsageError
from imagegen_cli.transport import b64


def data_url(data: bytes) -> str:

    return f"data:image/{sniff(data) or 'png'};base64," + b64.encode(data)


def form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def downloaded_inputs(req: ImageRequest, transport: Transport) -> ImageRequest:
    """REQ with each URL input downloaded (through TRANSPORT's download, which never
    sends the provider's key, capped as any answer is) into bytes for multipart: PNG,
    JPEG and WebP as they are, anything else as PNG."""
    import dataclasses
    import io

    from PIL import Image, UnidentifiedImageError

    images = []
    for im in req.images:
        if not im.url:
            images.append(im)
            continue
        data = transport.download_spooled(im.url).read()
        try:
            with Image.open(io.BytesIO(data)) as pil:
                pil.load()
                size = pil.size
                if sniff(data) not in ("png", "jpeg", "webp"):
                    buf = io.BytesIO()
                    pil.convert("RGBA").save(buf, format="PNG")
                    data = buf.getvalue()
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            raise UsageError(f"-i {im.url} is not a readable image") from None
        images.append(dataclasses.replace(im, data=data, width=size[0], height=size[1],
                                          url=None))
    return req.with_(images=images)


DALLE2_EDIT_MAX = 4 * 1024 * 1024


def dalle2_edit_inputs(req: ImageRequest) -> ImageRequest:
    """dall-e-2 edits take one square PNG under 4 MB: shrink when that is enough."""
    import io

    from PIL import Image

    im = req.images[0]
    if im.width != im.height:
        raise UsageError(f"{im.path} is {im.width}x{im.height}; dall-e-2 edits need a square "
                         "image: crop it, or use a gpt-image model")
    if len(im.data) < DALLE2_EDIT_MAX:
        return req
    side = min(im.width, 1024)
    while True:
        with Image.open(io.BytesIO(im.data)) as pil:
            buf = io.BytesIO()
            pil.resize((side, side), Image.Resampling.LANCZOS).save(buf, format="PNG",
                                                                   optimize=True)
        if buf.tell() < DALLE2_EDIT_MAX:
            break
        if side <= 256:
            raise UsageError(f"{im.path} stays over dall-e-2's 4 MB limit even at 256x256")
        side //= 2
    assert req.mask is not None

    area = load_area(req.mask).resize((side, side), Image.Resampling.NEAREST)
    mbuf = io.BytesIO()
    area.save(mbuf, format="PNG")
    req.notices.append(f"{im.path} is over dall-e-2's 4 MB limit: sent at {side}x{side}")
    return req.with_(
        images=[InputImage(im.path, buf.getvalue(), side, side)],
        mask=InputImage(req.mask.path, mbuf.getvalue(), side, side))
