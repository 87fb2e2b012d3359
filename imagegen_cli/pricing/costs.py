"""Costs: the estimate before a run, the cost after it, and a batch's cap.

Owns `Estimate` and `estimate` (what a request will cost, as a range when the
provider picks the size or quality), `check_cap` and `parse_max_cost`
(--max-cost), `money` and `money_range`, `image_cost` and `total_cost` (what
was spent, from usage or the table), and `BatchBudget`, which holds a batch
under its cap. Prices come from a `Pricing` (prices.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imagegen_cli.errors import UsageError
from imagegen_cli.types import Batches

if TYPE_CHECKING:
    from imagegen_cli.pricing.lookup import Pricing
    from imagegen_cli.types import ImageRequest


# ------------------------------------------------------------------ estimate

@dataclass
class Estimate:
    """What a run should cost, before it is sent."""

    provider: str
    model: str
    # The image counts of the requests (types.Batches: never listed) and the price range
    # of one image: each request costs n x (lo, hi).
    calls: Sequence[int] = ()
    each: tuple[float, float] = (0.0, 0.0)
    known: bool = True
    free: bool = False
    reason: str | None = None
    how: str = ""
    # The flags that would narrow a range (--quality, --size): what the user can do.
    narrow: tuple[str, ...] = ()

    def advice(self) -> str:
        """How to narrow the range, for the end of a message ('' when exact)."""
        if not self.narrow:
            return ""
        return f"pass {' or '.join(self.narrow)} to narrow it"

    @property
    def images(self) -> int:
        return self.calls.n if isinstance(self.calls, Batches) else sum(self.calls)

    @property
    def low(self) -> float:
        return self.each[0] * self.images

    @property
    def high(self) -> float:
        return self.each[1] * self.images

    def text(self) -> str:
        if not self.known:
            return "unknown"
        return money_range(self.low, self.high)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"provider": self.provider, "model": self.model,
                               "known": self.known}
        if self.known:
            lo, hi = self.each
            out["per_request"] = [{"n": n, "min_usd": _r(lo * n), "max_usd": _r(hi * n)}
                                  for n in self.calls[:SHOWN_REQUESTS]]
            if len(self.calls) > SHOWN_REQUESTS:
                out["requests"] = len(self.calls)  # per_request: the first SHOWN_REQUESTS
            out["total_usd"] = {"min": _r(self.low), "max": _r(self.high)}
        else:
            out["reason"] = self.reason
        if self.free:
            out["free"] = True
        out["how"] = self.how
        return out


# The requests a --dry-run's estimate lists one by one (-n 100000000000 makes 10^10).
SHOWN_REQUESTS = 100


def _r(x: float) -> float:
    return round(x, 6)


def money(x: float) -> str:
    if x == 0:
        return "$0"
    if not math.isfinite(x):  # (prices are capped: only a sum past 1e308 gets here)
        return "$(too large to say)"
    text = f"{x:.4f}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{x:.2f}"
    return f"${text}"


def money_range(lo: float, hi: float) -> str:
    return money(lo) if math.isclose(lo, hi, abs_tol=1e-12) else f"{money(lo)}-{money(hi)}"


def estimate(pricing: Pricing, req: ImageRequest, batches: Sequence[int]) -> Estimate:
    """The cost of REQ (validated, model settled) sent as BATCHES requests."""
    est = Estimate(pricing.provider, pricing.model)
    if pricing.free:
        est.free = True
        est.calls = batches
        est.how = f"{pricing.provider} runs on this machine: no money is spent"
        return est
    # A model sized by tier (--resolution: Gemini's 1K/2K/4K) is priced by its tier.
    got = pricing.price_range(req.resolution or req.size, req.quality)
    if isinstance(got, str):
        est.known = False
        est.reason = pricing.reason or got
        est.how = f"{got} for {pricing.provider} model {pricing.model}"
        return est
    lo, hi, notes = got
    f = pricing.figures
    assert f is not None
    inputs = pricing.input_price([(i.width, i.height) for i in req.images if i.width])
    if inputs:  # input images billed by the megapixel, in every call
        lo, hi = lo + inputs, hi + inputs
    est.calls, est.each = batches, (lo, hi)
    src = f.per_image_source or f.per_megapixel_source or pricing.origin
    source = "your config" if pricing.origin == "config" else "the price table"
    how = (f"{est.images} image(s) x {money_range(lo, hi)} per image "
           f"({pricing.model}, size {req.resolution or req.size or f.default_size or 'auto'}, "
           "quality "
           f"{req.quality or f.default_quality or 'auto'}) from {source}: "
           f"{_short_source(src)}")
    if notes:
        # Which settings were left open, not every value they might take: short enough
        # to read; `--dry-run --json` and `providers show` have the figures.
        open_ = [n.split()[0] for n in notes if ", " in n] or [n.split()[0] for n in notes]
        why = ("the output tokens" if f.tokens
               else "whether a started megapixel is billed whole" if f.per_megapixel
               else "what the provider picks")
        how += (f"; a range: {' and '.join(open_)} not set or auto (the cost depends on "
                f"{why})")
        est.narrow = tuple(f"--{o}" for o in open_ if o in ("quality", "size"))
    if req.images and f.per_megapixel is not None:
        how += (f"; input images {money(inputs or 0.0)} a call" if inputs is not None else "")
        if any(not i.width for i in req.images):
            how += "; input images given as URLs are not included (their size is not known)"
    elif req.images:
        how += "; input-image tokens are not included"
    est.how = how
    return est


def parse_max_cost(value: Any, where: str) -> float | None:
    """--max-cost / IMAGEGEN_MAX_COST / [defaults] max_cost: a USD amount >= 0."""
    if value is None or value == "":
        return None
    text = str(value).strip().lstrip("$")
    try:
        amount = float(text)
    except ValueError:
        amount = -1.0
    if not math.isfinite(amount) or amount < 0:
        raise UsageError(f"{where} '{value}' is not an amount in USD (e.g. 0.50)")
    return amount


def check_cap(estimates: Sequence[Estimate], cap: float, where: str, *,
              known_only: bool = False) -> None:
    """Exit 2 (UsageError) when a run could cost more than CAP, or its cost is unknown.

    With fallback, any provider of the chain may serve the run: the dearest counts."""
    for est in estimates:
        if not est.known:
            raise UsageError(
                f"{where} {money(cap)} needs a price, and the price of {est.provider} model "
                f"{est.model} is unknown ({est.reason or est.how}): set one with `imagegen "
                f"config set providers.{est.provider}.prices.\"{est.model}\" USD` (per "
                f"image, any size; see README, Costs) or drop {where}")
    if known_only:
        return
    worst = max(estimates, key=lambda e: e.high)
    if worst.high > cap + 1e-12:
        narrow = f"{worst.advice()}, " if worst.advice() else ""
        raise UsageError(
            f"Estimated cost {worst.text()} is over {where} {money(cap)}: {worst.how}. "
            f"Nothing was sent: {narrow}raise the cap, or ask for fewer or cheaper images")


# ------------------------------------------------------------------ after the run

def image_cost(pricing: Pricing, usage: Mapping[str, Any] | None, images_in_call: int,
               size: str | None, quality: str | None, *, actual_size: str | None = None,
               input_images: bool = False) -> tuple[float | None, str | None]:
    """(USD, 'usage' | 'table') for one image written, or (None, None) when unknown.
    SIZE is the one asked for (None/'auto': the model's default, else the image's own
    ACTUAL_SIZE)."""
    if pricing.free:
        return 0.0, "table"
    exact = pricing.usage_cost(usage, input_images=input_images)
    if exact is not None:
        return exact / max(images_in_call, 1), "usage"
    f = pricing.figures
    if size in (None, "auto"):
        size = (f.default_size if f else None) or actual_size
    got = pricing.price_range(size, quality)
    if isinstance(got, str) and size == actual_size:
        got = pricing.price_range(None, quality)
    if isinstance(got, str):
        return None, None
    # An 'auto' setting the answer did not resolve: the dearest, never the cheapest.
    return got[1], "table"


def total_cost(costs: Sequence[tuple[float | None, str | None]]
               ) -> tuple[float | None, str | None]:
    """Sum per-image costs: None when any is unknown; the source when they agree."""
    if not costs or any(c is None for c, _ in costs):
        return None, None
    sources = {s for _, s in costs}
    source = sources.pop() if len(sources) == 1 else "mixed"
    return round(sum(c for c, _ in costs if c is not None), 6), source


def _short_source(src: str) -> str:
    """A source's name for one-line messages; `providers show` prints it whole."""
    import re

    return re.split(r" \(|: |; ", src, maxsplit=1)[0]
