"""The Provider interface and capability declarations.

Validation, error messages and the `providers` listing all read `Capabilities`.
Dialects are found through imagegen_cli.registry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from imagegen_cli.errors import UsageError
from imagegen_cli.settings.provider import ProviderConfig
from imagegen_cli.types import CallInfo, GeneratedImage, ImageRequest, Reporter

if TYPE_CHECKING:
    from imagegen_cli.transport.call import HttpCall
    from imagegen_cli.transport.client import Transport

SIZE_RE = re.compile(r"^(\d+)x(\d+)$")


@dataclass(frozen=True)
class SizeRule:
    """Which WxH a model accepts: an explicit list, or sides within bounds."""

    sizes: tuple[str, ...] = ()
    min_side: int = 1
    max_side: int | None = None
    multiple: int = 1
    max_ratio: float | None = None
    max_pixels: int | None = None
    allow_auto: bool = False

    def describe(self) -> str:
        if self.sizes:
            return ", ".join(self.sizes + (("auto",) if self.allow_auto else ()))
        parts = [f"sides {self.min_side}..{self.max_side or 'any'}"]
        if self.multiple > 1:
            parts.append(f"multiples of {self.multiple}")
        if self.max_ratio:
            parts.append(f"ratio up to {self.max_ratio:g}:1")
        if self.max_pixels:
            parts.append(f"at most {self.pixels()}")
        return ", ".join(parts)

    def pixels(self) -> str:
        """The pixel cap as a reader pictures it: `3840x2160 pixels` where the longest
        side divides it, else the count with separators."""
        side, cap = self.max_side, self.max_pixels or 0
        if side and cap % side == 0:
            return f"{side}x{cap // side} pixels ({cap:,})"
        return f"{cap:,} pixels"

    def check(self, size: str) -> str | None:
        """None when SIZE is accepted, else the reason."""
        if size == "auto":
            return None if self.allow_auto else "'auto' is not accepted"
        if self.sizes:
            return None if size in self.sizes else f"accepted sizes: {self.describe()}"
        m = SIZE_RE.match(size)
        if not m:
            return "expected WIDTHxHEIGHT, e.g. 1024x1024"
        w, h = int(m.group(1)), int(m.group(2))
        for side in (w, h):
            if side < self.min_side or (self.max_side and side > self.max_side):
                return f"accepted: {self.describe()}"
            if side % self.multiple:
                return f"sides must be multiples of {self.multiple}"
        if self.max_ratio and max(w, h) / min(w, h) > self.max_ratio:
            return f"aspect ratio must be within {self.max_ratio:g}:1"
        if self.max_pixels and w * h > self.max_pixels:
            return f"at most {self.pixels()}"
        return None

    def closest(self, ratio: float, target_pixels: int = 1024 * 1024) -> str:
        """The accepted size closest to RATIO (width/height), near TARGET_PIXELS."""
        if self.sizes:
            def score(s: str) -> tuple[float, float]:
                w, h = (int(x) for x in s.split("x"))
                return (abs(math.log((w / h) / ratio)), abs(math.log(w * h / target_pixels)))
            return min(self.sizes, key=score)
        pixels = target_pixels
        if self.max_side:
            pixels = min(pixels, self.max_side * self.max_side)
        if self.max_pixels:
            pixels = min(pixels, self.max_pixels)
        best: tuple[float, float, int, int] | None = None
        m = self.multiple
        h0 = math.sqrt(pixels / ratio)
        for h in range(max(m, int(h0 * 0.5) // m * m), int(h0 * 1.5) + m + 1, m):
            w = round(ratio * h / m) * m
            size = f"{w}x{h}"
            if w < 1 or self.check(size):
                continue
            cand = (abs(math.log((w / h) / ratio)), abs(math.log(w * h / pixels)), w, h)
            if best is None or cand < best:
                best = cand
        if best is None:
            raise UsageError(f"No accepted size is close to that aspect ({self.describe()})")
        return f"{best[2]}x{best[3]}"


@dataclass(frozen=True)
class Capabilities:
    """What a dialect (for one model) accepts. Read by validation and `providers`."""

    options: frozenset[str] = frozenset()  # flags honoured, e.g. "--quality"
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # allowed values
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    sizes: SizeRule | None = None  # None: the provider does not say
    max_n: int = 1  # images per request
    max_count: int = 10  # (unused: -n is no longer capped; calls fan out by max_n)
    prompt_max: int | None = None
    formats: tuple[str, ...] = ()  # output formats the provider produces on request
    inpaint: bool = False
    multi_image: bool = False  # inpaint takes several --image
    # `imagegen edit`: reference images without a mask (img2img for the local model)
    edit: bool = False
    max_images: int = 1  # input images per edit
    image_urls: bool = False  # takes -i https://... as references (no download first)
    stream: bool = False
    async_jobs: bool = False
    # flags taken on generations but not on edits (OpenAI's edit endpoint has no
    # `moderation`): refused on an edit, a config default dropped with a note
    generate_only: frozenset[str] = frozenset()
    # The aspect ratios a model takes by name ("1:1", "16:9", ...), for a model sized
    # by ratio (and --resolution) rather than by WxH: --aspect is sent as the nearest
    # of them (ImageRequest.aspect_ratio). Empty: --aspect picks a WxH from `sizes`.
    aspect_ratios: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()



class Provider:
    """A dialect instance bound to one provider config."""

    type_name: ClassVar[str] = ""
    needs_key: ClassVar[bool] = True
    lists_models_live: ClassVar[bool] = False  # list_models asks the API
    runs_jobs: ClassVar[bool] = False  # get_job fetches a job submitted earlier
    max_concurrency: ClassVar[int | None] = None  # calls at once, whatever -j says
    in_process: ClassVar[bool] = False  # runs the model here (local), not over HTTP

    def __init__(self, cfg: ProviderConfig, env: Mapping[str, str]) -> None:
        self.cfg = cfg
        self.env = env
        self.name = cfg.name

    # -- declared once -------------------------------------------------
    def capabilities(self, model: str | None) -> Capabilities:
        raise NotImplementedError

    def default_model(self) -> str | None:
        return self.cfg.model

    def inpaint_model(self) -> str | None:
        """The model `inpaint` uses when none is named; None: this provider cannot."""
        model = self.default_model()
        return model if model and self.capabilities(model).inpaint else None

    def known_models(self) -> list[str]:
        return [self.cfg.model] if self.cfg.model else []

    def public_model(self, model: str) -> str:
        """MODEL as recorded in the images: nothing of the user's disk (see local)."""
        return model

    def model_status(self, model: str) -> str | None:
        """Where MODEL is in its lifecycle ('active', 'deprecated: ...'), if known."""
        return None

    def model_lifecycle(self, model: str) -> dict[str, Any] | None:
        """MODEL's lifecycle entry (status, shutdown, replacement, source, read), if known."""
        return None

    def model_table_read(self) -> str | None:
        """The day imagegen's model table for this dialect was last checked against the
        provider's documentation (YYYY-MM-DD), where it ships one."""
        return None

    # -- the work ------------------------------------------------------
    def resolve_model(self, req: ImageRequest, *, inpaint: bool = False) -> ImageRequest:
        model = req.model or (self.inpaint_model() if inpaint else None) or self.default_model()
        if not model:
            raise UsageError(
                f"Provider {self.name} has no default model: pass -m MODEL "
                f"(or set providers.{self.name}.model)"
            )
        return req.with_(model=model)

    def validate(self, req: ImageRequest, *, inpaint: bool = False) -> ImageRequest:
        """Check REQ against the declared capabilities; raise UsageError (exit 2).

        Must not read the prompt beyond `Capabilities.prompt_max`: a batch settles the
        records that differ only in their prompt once (engine/stream.py), checking
        each prompt's length against that limit alone."""
        req = self.resolve_model(req, inpaint=inpaint)
        caps = self.capabilities(req.model)
        where = f"provider {self.name} (model {req.model})"
        if len(req.images) > 1 and not caps.multi_image:
            raise UsageError(f"Several --image are not accepted by {where}: pass one")
        if req.edit and not caps.edit:
            raise UsageError(f"Editing with reference images is not supported by {where}")
        if len(req.images) > max(caps.max_images, 1):
            raise UsageError(f"{len(req.images)} input images: {where} takes at most "
                             f"{caps.max_images}; pass fewer -i")
        if inpaint and not caps.inpaint:
            raise UsageError(f"Inpainting is not supported by {where}")
        for flag, value in req.options_set().items():
            if flag not in caps.options:
                raise UsageError(f"{req.named(flag)} is not supported by {where}: drop "
                                 f"{flag} (`imagegen providers show {self.name}` lists "
                                 "what each model takes)")
            allowed = caps.values.get(flag)
            if allowed and str(value) not in allowed:
                raise UsageError(
                    f"{req.named(flag, value)} is not accepted by {where}: use one of "
                    + ", ".join(allowed)
                )
            bounds = caps.ranges.get(flag)
            if bounds and not (bounds[0] <= float(value) <= bounds[1]):
                raise UsageError(
                    f"{req.named(flag, value)} is out of range for {where}: "
                    f"{bounds[0]:g}..{bounds[1]:g}"
                )
        for flag, value in req.options_set().items():
            if req.images and flag in caps.generate_only:
                raise UsageError(f"{req.named(flag, value)} applies to generations only: "
                                 f"{where} takes no {flag} on an edit (the edit endpoint "
                                 f"has no such field): drop {flag}")
        if req.stream and not caps.stream:
            raise UsageError(f"--stream is not supported by {where}: drop --stream "
                             "(and --partial-images)")
        if req.n < 1:
            raise UsageError(f"{req.named('-n', req.n)} is out of range: 1 or more")
        if req.stream and req.n > caps.max_n:
            raise UsageError(f"--stream takes at most -n {caps.max_n} with {where}")
        if caps.prompt_max and len(req.prompt) > caps.prompt_max:
            raise UsageError(
                f"Prompt is {len(req.prompt)} characters; {where} takes at most "
                f"{caps.prompt_max}"
            )
        if not req.prompt.strip():
            raise UsageError("Prompt is empty: pass the text, '-' for stdin or @FILE")
        if req.size and caps.sizes:
            reason = caps.sizes.check(req.size)
            if reason:
                raise UsageError(f"{req.named('--size', req.size)} is not accepted by "
                                 f"{where}: {reason}")
        return req

    def offers_batch_api(self) -> bool:
        """Whether this provider's service takes OpenAI's Batch API (`imagegen batch
        --batch-api`): the jobs go as one file, answered within 24 h at half price."""
        return False

    def prepare(self, req: ImageRequest, key: str | None) -> list[HttpCall]:
        """The exact HTTP calls one batch makes first (for --dry-run)."""
        raise NotImplementedError

    def run(
        self, req: ImageRequest, key: str | None, transport: Transport, reporter: Reporter
    ) -> Iterator[tuple[GeneratedImage, CallInfo]]:
        """Make the images of one batch (req.n <= max_n); yield them as they arrive."""
        raise NotImplementedError

    def get_job(
        self, job_id: str, key: str | None, transport: Transport, reporter: Reporter,
        where: str | None = None,
    ) -> Iterator[tuple[GeneratedImage, CallInfo]]:
        """The images of a job submitted earlier (`imagegen job get`), waiting for it
        to finish within the transport's timeout. WHERE: the URL the provider gave for
        the job's status when it was submitted (`Reporter.job`), if it gave one."""
        raise UsageError(f"Provider {self.name} runs no jobs to look up: `imagegen job get` "
                         "is for providers with async jobs (distribute, bfl)")

    def check(self, key: str | None, transport: Transport) -> str:
        """The cheapest authenticated call; returns a short description."""
        raise NotImplementedError

    def list_models(self, key: str | None, transport: Transport) -> list[str]:
        return self.known_models()


def opt(*flags: str) -> frozenset[str]:
    return frozenset(flags)


# Raw fields that change what is billed (how many images, how big, how good, which
# model, extra partial frames): sent raw they would bypass the count, the estimate,
# --max-cost and the writer (8 billed, 1 written). Refused, naming the typed option.
BILLED_PARAMS: Mapping[str, str] = {
    "n": "-n", "size": "--size", "quality": "--quality", "model": "-m",
    "partial_images": "--partial-images",
}


def check_params(params: Mapping[str, Any]) -> None:
    """Refuse (exit 2) a raw field that changes what is billed: its flag must say it."""
    for key, flag in BILLED_PARAMS.items():
        if key in params:
            value = params[key]
            shown = value if isinstance(value, str) else repr(value)
            raise UsageError(
                f"--param {key}={shown} changes what is billed and is not sent raw: pass "
                f"{flag} {shown} instead (in a batch record or --from file: the \"{key}\" "
                "field, not params)")


def param_merge(body: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """--param KEY=VALUE fields win over what the flags built (never a billed field:
    `check_params`)."""
    check_params(params)
    out = dict(body)
    out.update(params)
    return out
