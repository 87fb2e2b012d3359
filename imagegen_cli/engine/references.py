"""The input images of `imagegen edit`: files or URLs, with an optional mask.

A URL stays a URL where the provider takes URLs (OpenAI's JSON edit body);
anywhere else it is downloaded first, with the same size cap as a provider's
answer and never with the provider's key.
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from urllib.parse import urlsplit

from imagegen_cli.errors import ProviderError, UsageError
from imagegen_cli.files.images import read_image_file, sniff
from imagegen_cli.files.masks import load_mask
from imagegen_cli.transport.client import Transport
from imagegen_cli.types import ImageRequest, InputImage

SENT_AS_IS = ("png", "jpeg", "webp")  # what OpenAI's edits take (image_edit_params.py)


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def attach_references(
    req: ImageRequest, sources: list[str], mask_path: Path | None, invert: bool, *,
    takes_urls: bool, timeout: float = 60.0, retries: int = 2, fetch: bool = True,
) -> ImageRequest:
    """REQ with its input images (and mask) read, checked and ready to send.
    FETCH false (--dry-run): URLs stay URLs, nothing is downloaded."""
    if not sources:
        raise UsageError("edit needs at least one -i IMAGE (a file or an https:// URL)")
    images: list[InputImage] = []
    for i, source in enumerate(sources):
        if "://" in source and not is_url(source):
            raise UsageError(f"-i {source}: only http(s) URLs and local files are accepted")
        if is_url(source):
            name = Path(urlsplit(source).path).name or "image"
            # The mask must match the first image's size: that one is needed here.
            if not fetch or (takes_urls and not (mask_path is not None and i == 0)):
                images.append(InputImage(Path(name), b"", 0, 0, url=source))
                continue
            image = _decoded(Path(name), _download(source, timeout, retries), source)
            # Fetched only to check the mask against its size: where URLs are taken it
            # still goes as its URL, as --dry-run (which fetches nothing) shows it.
            images.append(dataclasses.replace(image, url=source) if takes_urls else image)
        else:
            path = Path(os.path.expanduser(source))  # "~nouser" stays as typed
            images.append(_decoded(path, read_image_file(path), str(path)))
    mask = None
    if mask_path is not None:

        first = images[0]
        size = (first.width, first.height) if first.data else None  # None: not fetched
        mask = load_mask(Path(mask_path), size, first.path, invert)
    elif invert:
        raise UsageError("--invert-mask needs --mask")
    return req.with_(images=images, mask=mask, edit=True)


def _decoded(path: Path, data: bytes, shown: str) -> InputImage:
    """An InputImage of DATA: PNG, JPEG and WebP sent as they are, others as PNG."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            size = im.size
            if sniff(data) not in SENT_AS_IS:
                buf = io.BytesIO()
                im.convert("RGBA").save(buf, format="PNG")
                data = buf.getvalue()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UsageError(f"{shown} is not a readable image: {exc}") from None
    return InputImage(path=path, data=data, width=size[0], height=size[1])


def _download(url: str, timeout: float, retries: int) -> bytes:

    host = urlsplit(url).hostname or url
    try:
        with Transport(timeout=timeout, retries=retries, who=f"The image host {host}") as tr:
            data = tr.download_spooled(url).read()
    except ProviderError as exc:
        exc.message = f"Cannot fetch -i {url}: {exc.message}"
        raise
    if sniff(data) is None:
        raise UsageError(f"-i {url} is not an image (PNG, JPEG, WebP or GIF expected)")
    return data
