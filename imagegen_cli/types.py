"""Provider-neutral request and result objects.

Data flows one way: CLI flags -> ImageRequest -> a provider -> GeneratedImage
-> output files -> a report. Nothing here imports httpx, Pillow or typer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload


@dataclass
class InputImage:
    """An image handed to a provider (inpaint): PNG bytes plus where it came from."""

    path: Path
    data: bytes
    width: int
    height: int
    # `-i https://...` sent as a reference where the API takes URLs (data is then empty).
    url: str | None = None


@dataclass(frozen=True, kw_only=True)
class ImageSettings:
    """The settings of an image that a provider reads, declared once: as given on the
    command line (engine.options.ImageOptions, None: not given) and as sent
    (`ImageRequest`, resolved). settings/options.py is the table of the flags that set
    them."""

    size: str | None = None
    quality: str | None = None
    style: str | None = None
    background: str | None = None
    moderation: str | None = None
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    negative_prompt: str | None = None
    stream: bool = False
    partial_images: int | None = None
    output_compression: int | None = None
    complexity: str | None = None
    input_fidelity: str | None = None
    user: str | None = None
    strength: float | None = None
    # How an edit of an image URL is sent (OpenAI): "json" (the URL itself), "multipart"
    # (downloaded first), "auto" or None (JSON, then multipart once on a 400 refusal).
    edit_body: str | None = None
    # The image size as a named tier ("1K", "2K", "4K"; xAI "1k", "2k") where a model
    # chooses its size by tier rather than by WxH (Gemini, xAI): --resolution.
    resolution: str | None = None
    # local provider
    device: str | None = None
    dtype: str | None = None
    fast_vae: bool = False
    lora: tuple[str, ...] = ()  # PATH_OR_REPO[:WEIGHT], as given


@dataclass(frozen=True)
class ImageRequest(ImageSettings):
    prompt: str
    model: str | None = None
    n: int = 1
    output_format: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    # inpaint and edit
    images: list[InputImage] = field(default_factory=list)
    mask: InputImage | None = None
    edit: bool = False  # `imagegen edit`: reference images, mask optional
    # A documented aspect ratio ("16:9") for a model that takes one instead of WxH
    # (Capabilities.aspect_ratios): --aspect mapped to the nearest of them.
    aspect_ratio: str | None = None
    # What validation adjusted, for the user to read on stderr.
    notices: list[str] = field(default_factory=list)
    # What the user must see even with -q (a deprecated model).
    warnings: list[str] = field(default_factory=list)
    # Where a value not typed as a flag came from, by flag: "--steps" ->
    # "defaults.steps in /home/u/.config/imagegen/config.toml, line 4".
    origins: dict[str, str] = field(default_factory=dict)

    def with_(self, **changes: Any) -> ImageRequest:
        return dataclasses.replace(self, **changes)

    def named(self, flag: str, value: Any = None) -> str:
        """FLAG (and VALUE) as an error should name it, with where it was set when that
        was not the command line."""
        text = flag if value is None else f"{flag} {value}"
        origin = self.origins.get(flag)
        if not origin:
            return text
        key, sep, where = origin.partition(" in ")
        if sep and value is not None and key.replace("_", "").replace(".", "").isalnum():
            # A config key or a --from field: named as the user wrote it, where they did.
            return f"{key} = {value} (in {where})"
        return f"{text} (set by {origin})"

    def options_set(self) -> dict[str, Any]:
        """The user-visible options that carry a value (for capability checks)."""
        names = {
            "quality": "--quality",
            "style": "--style",
            "background": "--background",
            "moderation": "--moderation",
            "seed": "--seed",
            "steps": "--steps",
            "guidance": "--guidance",
            "negative_prompt": "--negative-prompt",
            "stream": "--stream",
            "partial_images": "--partial-images",
            "output_compression": "--output-compression",
            "complexity": "--complexity",
            "input_fidelity": "--input-fidelity",
            "user": "--user",
            "strength": "--strength",
            "resolution": "--resolution",
            "device": "--device",
            "dtype": "--dtype",
            "fast_vae": "--fast-vae",
            "lora": "--lora",
        }
        out: dict[str, Any] = {}
        for attr, flag in names.items():
            value = getattr(self, attr)
            if value is not None and value is not False and value != ():
                out[flag] = value
        return out


@dataclass
class GeneratedImage:
    """One image as a provider returned it: bytes or a URL still to fetch.

    ``partial`` is set for a streaming preview frame (1-based), None for a final image.
    ``index`` is 0-based within the request that produced it.
    """

    index: int
    data: bytes | None = None
    url: str | None = None
    revised_prompt: str | None = None
    seed: int | None = None
    partial: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # What the provider actually used where the request left it open, recorded in
    # the image: {"sampler": "Euler", "steps": 2, "guidance": 0.0}.
    settings: dict[str, Any] = field(default_factory=dict)
    # What the provider says it chose (quality, size, background, output_format,
    # created...), e.g. when `auto` was asked.
    resolved: dict[str, Any] = field(default_factory=dict)
    # Bytes parked on disk (a spooled answer or download), read when the image is
    # written: big buffers then live on the writing thread only.
    loader: Callable[[], bytes] | None = None

    def load(self) -> bytes:
        if self.data is None and self.loader is not None:
            self.data = self.loader()
            self.loader = None
        if self.data is None:
            raise ValueError("image has no data")
        return self.data


@dataclass
class CallInfo:
    """What one provider call reports besides its images."""

    request_id: str | None = None
    usage: dict[str, Any] | None = None
    job_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Filled by the fallback chain: who made the images, how many the call asked for,
    # and the provider it stood in for.
    provider: str | None = None
    model: str | None = None
    images: int | None = None
    fallback_from: str | None = None


class Reporter:
    """Progress sink; the CLI subclasses it with a rich display. Default: silent."""

    def __init__(self) -> None:
        self.jobs: list[str] = []
        # Where a job is asked about, when the provider said (BFL's polling_url): kept
        # with its request so `imagegen job get` asks the same place.
        self.job_where: dict[str, str] = {}
        self.job_hooks: list[Callable[[str, ImageRequest], None]] = []

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        """A display to take down (the rich one); nothing by default."""

    def job(self, job_id: str, where: str | None = None) -> None:
        """A provider-side job was submitted (so Ctrl-C can say which); WHERE is the
        URL its status is read from, when the provider gave one."""
        self.jobs.append(job_id)
        if where:
            self.job_where[job_id] = where

    def status(self, text: str) -> None:
        """A coarse phase: 'waiting for provider', 'job QUEUED', ..."""

    def note(self, text: str) -> None:
        """A one-line notice the user should see (stderr), e.g. a size adjustment."""

    def step(self, done: int, total: int) -> None:
        """Fine-grained progress (denoising steps, bytes downloaded)."""

    def retry(self, text: str) -> None:
        """A request is being retried: '429 from X, retrying in 58 s (attempt 2 of 3)'."""
        self.note(text)

    def job_request(self, job_id: str, req: ImageRequest) -> None:
        """The request a job was submitted for (so it can be fetched later by id)."""
        for hook in self.job_hooks:
            hook(job_id, req)

    def job_status(self, job_id: str, status: str) -> None:
        """A provider-side job changed status (several may run at once)."""
        self.status(f"job {job_id[:8]} {status}")

    def download(self, done: int, total: int) -> None:
        """Bytes of an image download so far (TOTAL 0: unknown)."""
        self.step(done, total)

    def written(self, done: int, total: int) -> None:
        """DONE of TOTAL images are written."""


class Batches(Sequence[int]):
    """The image counts of the requests that make N images, at most MAX_N each: worked
    out when read, never listed, so `-n 100000000000` plans (and prices) at once."""

    def __init__(self, n: int, max_n: int) -> None:
        self.n, self.max_n = max(0, n), max(1, max_n)

    def __len__(self) -> int:
        return -(-self.n // self.max_n)

    @overload
    def __getitem__(self, i: int) -> int: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[int]: ...

    def __getitem__(self, i: int | slice) -> int | Sequence[int]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return min(self.max_n, self.n - i * self.max_n)
