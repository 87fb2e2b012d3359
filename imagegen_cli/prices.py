"""Prices: what a run will cost before it is sent, and what it cost after.

The shipped table (``data/prices.toml``, read once) gives per-image prices by
size and quality, and per-million-token rates, with a source and date for each
group of figures. ``[providers.NAME.prices]`` in the config adds or overrides
entries in the same shape. A provider whose prices are not public stays
unknown: nothing here ever guesses, and nothing is ever assumed free but the
local provider.

Nothing here imports httpx, Pillow, typer or rich.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from imagegen_cli.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from imagegen_cli.config import ProviderConfig
    from imagegen_cli.requests import ImageRequest

OPENAI_HOST = "api.openai.com"
TOKEN_KEYS = ("text_in", "image_in", "image_out", "text_out")
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


# ------------------------------------------------------------------ the table

@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    """The shipped price table (package data)."""
    import tomllib
    from importlib.resources import files

    text = (files("imagegen_cli") / "data" / "prices.toml").read_text(encoding="utf-8")
    data: dict[str, Any] = tomllib.loads(text)
    return data


PerImage = float | dict[str, float | dict[str, float]]


@dataclass(frozen=True)
class Figures:
    """One model's prices, each group with where and when it was read."""

    per_image: PerImage | None = None
    per_image_source: str | None = None
    per_image_date: str | None = None
    tokens: dict[str, float] | None = None
    tokens_source: str | None = None
    tokens_date: str | None = None
    default_size: str | None = None
    default_quality: str | None = None
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v is not None}
        return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 \
        and math.isfinite(value)


def _check_per_image(value: Any, where: str) -> PerImage:
    bad = ConfigError(
        f"{where}.per_image must be a price in USD, or a table of sizes (\"1024x1024\", "
        "\"*\") each a price or a table of qualities (low = 0.011)")
    if _number(value):
        return float(value)
    if not isinstance(value, Mapping):
        raise bad
    out: dict[str, float | dict[str, float]] = {}
    for size, v in value.items():
        if _number(v):
            out[str(size)] = float(v)
        elif isinstance(v, Mapping) and v and all(_number(x) for x in v.values()):
            out[str(size)] = {str(q): float(x) for q, x in v.items()}
        else:
            raise bad
    return out


def _check_tokens(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, Mapping) or not value or any(
            k not in TOKEN_KEYS or not _number(v) for k, v in value.items()):
        raise ConfigError(
            f"{where}.tokens must be a table of USD per 1M tokens with keys "
            + ", ".join(TOKEN_KEYS) + " (e.g. { text_in = 5.0, image_out = 40.0 })")
    return {k: float(v) for k, v in value.items()}


ENTRY_KEYS = {"per_image", "per_image_source", "per_image_date", "tokens", "tokens_source",
              "tokens_date", "default_size", "default_quality", "note", "source", "date"}


def figures_from(raw: Any, where: str, *, source: str | None = None) -> Figures:
    """A model entry (table or config) as Figures; ConfigError names WHERE."""
    if _number(raw):
        raw = {"per_image": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table (per_image = ..., tokens = {{...}}) "
                          "or a price per image in USD")
    unknown = set(raw) - ENTRY_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}; use per_image, "
                          "tokens, source, date")
    for k in ENTRY_KEYS - {"per_image", "tokens"}:
        if k in raw and not isinstance(raw[k], str):
            raise ConfigError(f"{where}.{k} must be a string")
    per_image = _check_per_image(raw["per_image"], where) if "per_image" in raw else None
    tokens = _check_tokens(raw["tokens"], where) if "tokens" in raw else None
    src = raw.get("source") or source
    date = raw.get("date")
    return Figures(
        per_image=per_image,
        per_image_source=(raw.get("per_image_source") or src) if per_image is not None else None,
        per_image_date=(raw.get("per_image_date") or date) if per_image is not None else None,
        tokens=tokens,
        tokens_source=(raw.get("tokens_source") or src) if tokens is not None else None,
        tokens_date=(raw.get("tokens_date") or date) if tokens is not None else None,
        default_size=raw.get("default_size"),
        default_quality=raw.get("default_quality"),
        note=raw.get("note"),
    )


def check_config_prices(name: str, raw: Any) -> dict[str, Figures]:
    """Validate ``[providers.NAME.prices]`` (a table of model -> entry)."""
    where = f"providers.{name}.prices"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table of model = price entries")
    return {str(m): figures_from(v, f'{where}."{m}"', source="config file")
            for m, v in raw.items()}


# ------------------------------------------------------------------ lookup

def service_of(pcfg: ProviderConfig) -> str | None:
    """Which table entry prices this provider: its own name when the table has one
    (openai, yescale, ...), OpenAI's for any openai-type provider at api.openai.com,
    'local' for the local type; None otherwise (unknown)."""
    entries = table().get("providers", {})
    if pcfg.type == "local":
        return "local"
    if pcfg.name in entries:
        return pcfg.name
    if pcfg.type == "openai" and pcfg.base_url:
        from urllib.parse import urlsplit

        if (urlsplit(pcfg.base_url).hostname or "").lower() == OPENAI_HOST:
            return "openai"
    return None


def _model_keys(model: str) -> list[str]:
    m = model.lower()
    keys = [model, m]
    base = _SNAPSHOT.sub("", m)
    if base != m:
        keys.append(base)
    return keys


@dataclass(frozen=True)
class Pricing:
    """The prices in force for one provider and model, and why."""

    provider: str
    model: str
    service: str | None
    figures: Figures | None
    free: bool = False
    origin: str = "table"  # "table" | "config"
    reason: str | None = None  # why unknown

    @property
    def known(self) -> bool:
        return self.free or self.figures is not None

    def price(self, size: str | None, quality: str | None) -> float | None:
        """One output image at SIZE and QUALITY (both settled), or None."""
        per = self.figures.per_image if self.figures else None
        if per is None:
            return None
        if isinstance(per, float):
            return per
        by_size = per.get(size or "") if size else None
        if by_size is None:
            by_size = per.get("*")
        if by_size is None:
            return None
        if isinstance(by_size, float):
            return by_size
        got = by_size.get(quality or "") if quality else None
        return got if got is not None else by_size.get("*")

    def price_range(self, size: str | None, quality: str | None
                    ) -> tuple[float, float, list[str]] | str:
        """(low, high, assumptions) for one image, or the reason it is unknown.
        An unset or 'auto' size or quality spans every listed one."""
        f = self.figures
        per = f.per_image if f else None
        if f is None or per is None:
            if f is not None and f.tokens and "image_out" in f.tokens:
                return (f"no per-image price published (token-priced: "
                        f"${f.tokens['image_out']:g} per 1M image output tokens, but the "
                        "tokens an image takes are not; the cost after the run comes "
                        "from usage)")
            return "no per-image price"
        size = size or f.default_size
        quality = quality or f.default_quality
        notes: list[str] = []
        if isinstance(per, float):
            return per, per, notes
        if size in (None, "auto"):
            sizes = [s for s in per if s != "*"] or ["*"]
            notes.append(f"size {size or 'unset'}: any of {', '.join(sizes)}")
        elif size in per:
            sizes = [size]
        elif "*" in per:
            sizes = ["*"]
        else:
            return f"no per-image price for size {size}"
        values: list[float] = []
        for s in sizes:
            by = per[s]
            if isinstance(by, float):
                values.append(by)
            elif quality in (None, "auto"):
                values.extend(by.values())
                if len(set(by.values())) > 1 and not any("quality" in n for n in notes):
                    notes.append(f"quality {quality or 'unset'}: any of {', '.join(by)}")
            elif quality in by:
                values.append(by[quality])
            elif "*" in by:
                values.append(by["*"])
            else:
                return f"no per-image price for quality {quality} at {s}"
        return min(values), max(values), notes

    def usage_cost(self, usage: Mapping[str, Any] | None, *, input_images: bool = False
                   ) -> float | None:
        """The exact cost of one call from the `usage` it reported, or None."""
        rates = self.figures.tokens if self.figures else None
        if not usage or not rates:
            return None
        tin, tout = usage.get("input_tokens"), usage.get("output_tokens")
        if not (_number(tin) and _number(tout)):
            return None

        def rate(key: str) -> float | None:
            return rates.get(key)

        cost = 0.0
        det = usage.get("input_tokens_details")
        if isinstance(det, Mapping) and ("text_tokens" in det or "image_tokens" in det):
            parts = [("text_in", det.get("text_tokens") or 0),
                     ("image_in", det.get("image_tokens") or 0)]
        else:
            parts = [("image_in" if input_images else "text_in", tin)]
        odet = usage.get("output_tokens_details")
        if isinstance(odet, Mapping) and ("image_tokens" in odet or "text_tokens" in odet):
            parts += [("image_out", odet.get("image_tokens") or 0),
                      ("text_out" if "text_out" in rates else "image_out",
                       odet.get("text_tokens") or 0)]
        else:
            parts.append(("image_out", tout))
        for key, count in parts:
            if not _number(count):
                return None
            if not count:
                continue
            r = rate(key)
            if r is None:
                return None
            cost += float(count) * r / 1_000_000
        return cost

    def sources(self) -> list[str]:
        f = self.figures
        if self.free:
            return ["local: runs on this machine, no money spent"]
        if f is None:
            return []
        out = []
        if f.per_image is not None:
            out.append(f"per image: {f.per_image_source or self.origin}"
                       + (f" (read {f.per_image_date})" if f.per_image_date else ""))
        if f.tokens is not None:
            out.append(f"tokens: {f.tokens_source or self.origin}"
                       + (f" (read {f.tokens_date})" if f.tokens_date else ""))
        return out


def lookup(pcfg: ProviderConfig, model: str | None) -> Pricing:
    """The prices in force for PCFG's MODEL: config first, then the shipped table."""
    model = model or ""
    service = service_of(pcfg)
    config = getattr(pcfg, "prices", None) or {}
    if config:
        entries = check_config_prices(pcfg.name, config)
        for key in [*_model_keys(model), "*"]:
            if key in entries:
                return Pricing(pcfg.name, model, service, entries[key], origin="config")
    entry = table().get("providers", {}).get(service or "", None)
    if service == "local" or (entry and entry.get("free")):
        return Pricing(pcfg.name, model, service, None, free=True)
    if entry is None:
        return Pricing(pcfg.name, model, service, None,
                       reason=f"provider {pcfg.name} has no entry in the price table")
    if entry.get("known") is False:
        return Pricing(pcfg.name, model, service, None, reason=str(entry.get("note") or
                       f"{pcfg.name} publishes no prices"))
    models = entry.get("models", {})
    for key in _model_keys(model):
        if key in models:
            return Pricing(pcfg.name, model, service,
                           figures_from(models[key], f"price table {service}.{key}"))
    return Pricing(pcfg.name, model, service, None,
                   reason=f"the price table has no entry for {service} model {model}")


def provider_prices(pcfg: ProviderConfig) -> dict[str, Any]:
    """Everything that prices PCFG (for `providers show`): per model, the figures
    and their sources; config entries marked as such."""
    service = service_of(pcfg)
    entry = table().get("providers", {}).get(service or "", {}) if service else {}
    out: dict[str, Any] = {"service": service, "free": bool(entry.get("free")) or
                           service == "local",
                           "known": entry.get("known", bool(entry)), "note": entry.get("note"),
                           "models": {}}
    for m, raw in (entry.get("models") or {}).items():
        f = figures_from(raw, f"price table {service}.{m}")
        out["models"][m] = dict(f.as_json(), origin="table")
    config = getattr(pcfg, "prices", None) or {}
    for m, f in check_config_prices(pcfg.name, config).items() if config else ():
        out["models"][m] = dict(f.as_json(), origin="config")
    return out


# ------------------------------------------------------------------ estimate

@dataclass
class Estimate:
    """What a run should cost, before it is sent."""

    provider: str
    model: str
    requests: list[tuple[int, float, float]] = field(default_factory=list)  # (n, lo, hi)
    known: bool = True
    free: bool = False
    reason: str | None = None
    how: str = ""

    @property
    def low(self) -> float:
        return sum(r[1] for r in self.requests)

    @property
    def high(self) -> float:
        return sum(r[2] for r in self.requests)

    def text(self) -> str:
        if not self.known:
            return "unknown"
        return money_range(self.low, self.high)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"provider": self.provider, "model": self.model,
                               "known": self.known}
        if self.known:
            out["per_request"] = [{"n": n, "min_usd": _r(lo), "max_usd": _r(hi)}
                                  for n, lo, hi in self.requests]
            out["total_usd"] = {"min": _r(self.low), "max": _r(self.high)}
        else:
            out["reason"] = self.reason
        if self.free:
            out["free"] = True
        out["how"] = self.how
        return out


def _r(x: float) -> float:
    return round(x, 6)


def money(x: float) -> str:
    if x == 0:
        return "$0"
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
        est.requests = [(n, 0.0, 0.0) for n in batches]
        est.how = f"{pricing.provider} runs on this machine: no money is spent"
        return est
    got = pricing.price_range(req.size, req.quality)
    if isinstance(got, str):
        est.known = False
        est.reason = pricing.reason or got
        est.how = f"{got} for {pricing.provider} model {pricing.model}"
        return est
    lo, hi, notes = got
    est.requests = [(n, lo * n, hi * n) for n in batches]
    f = pricing.figures
    assert f is not None
    src = f.per_image_source or pricing.origin
    source = "your config" if pricing.origin == "config" else "the price table"
    how = (f"{sum(batches)} image(s) x {money_range(lo, hi)} per image "
           f"({pricing.model}, size {req.size or f.default_size or 'auto'}, quality "
           f"{req.quality or f.default_quality or 'auto'}) from {source}: "
           f"{_short_source(src)}")
    if notes:
        why = "the output tokens" if f.tokens else "the size and quality the provider picks"
        how += "; a range because the " + "; ".join(notes) + f" (the cost depends on {why})"
    if req.images:
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
                f"{est.model} is unknown ({est.reason or est.how}): set one in "
                f"[providers.{est.provider}.prices.\"{est.model}\"] (e.g. per_image = 0.04) "
                f"or drop {where}")
    if known_only:
        return
    worst = max(estimates, key=lambda e: e.high)
    if worst.high > cap + 1e-12:
        raise UsageError(
            f"Estimated cost {worst.text()} is over {where} {money(cap)}: {worst.how}. "
            "Nothing was sent; raise the cap or ask for fewer or cheaper images")


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


# ------------------------------------------------------------------ a batch's cap

class BatchBudget:
    """--max-cost over a whole batch: the scheduler's `admit` hook refuses a job whose
    estimate would take the batch over the cap (it is not started; jobs already
    written stay), and, as an event sink, replaces a finished job's estimate with
    what it actually cost. Every estimate must be known before the batch starts
    (see `check_cap`)."""

    def __init__(self, cap: float, where: str, estimate_of: Any) -> None:
        self.cap = cap
        self.where = where
        self.estimate_of = estimate_of  # job -> USD (the top of its estimate)
        self.committed = 0.0
        self.admitted: dict[int, float] = {}
        self.refused: dict[int, Exception] = {}

    def admit(self, job: Any) -> Any:
        from imagegen_cli.errors import OverBudget

        k = id(job)
        if k in self.admitted:
            return None
        if k in self.refused:
            return self.refused[k]
        high = float(self.estimate_of(job))
        if self.committed + high > self.cap + 1e-12:
            exc = OverBudget(
                f"not started: its estimated {money(high)} would take the batch over "
                f"{self.where} {money(self.cap)} ({money(self.committed)} spent or "
                "committed)")
            self.refused[k] = exc
            return exc
        self.admitted[k] = high
        self.committed += high
        return None

    def __call__(self, ev: Any) -> None:
        from imagegen_cli.events import JobFinished

        if isinstance(ev, JobFinished) and id(ev.job) in self.admitted:
            est = self.admitted.pop(id(ev.job))
            actual, _ = total_cost([(s.cost_usd, s.cost_source) for s in ev.outcome.saved])
            if actual is not None:
                self.committed += actual - est


def _short_source(src: str) -> str:
    """A source's name for one-line messages; `providers show` prints it whole."""
    import re

    return re.split(r" \(|: |; ", src, maxsplit=1)[0]
