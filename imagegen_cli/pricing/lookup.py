"""Prices: what a run will cost before it is sent, and what it cost after.

The shipped table (``data/prices.toml``, read once) gives per-image prices by
size and quality, and per-million-token rates, with a source and date for each
group of figures. ``[providers.NAME.prices]`` in the config adds or overrides
entries in the same shape. A provider whose prices are not public stays
unknown: nothing here ever guesses, and nothing is ever assumed free but the
local provider.

This module owns finding the prices in force for a provider and model
(`lookup`, `Pricing`) and listing them (`provider_prices`). The table and its
checks live in pricetable.py; estimates, costs and the batch cap in costs.py;
their names are re-exported here.

Nothing here imports httpx, Pillow, typer or rich.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# `NAME`: re-exported, callers have always found these here.
from imagegen_cli.pricing.table import Figures, check_config_prices, figures_from, number, table

if TYPE_CHECKING:
    from imagegen_cli.settings.provider import ProviderConfig

OPENAI_HOST = "api.openai.com"
MEGAPIXEL = 1024 * 1024  # as BFL counts them: a 1024x1024 image is "1MP"
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


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
        if f is not None and f.per_megapixel is not None:
            return self._by_megapixel(f, size or f.default_size)
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

    @staticmethod
    def _by_megapixel(f: Figures, size: str | None) -> tuple[float, float, list[str]] | str:
        """One output image at SIZE priced by the megapixel (1024 x 1024 pixels): the
        first megapixel, then each further one. Whether a started megapixel is billed
        whole is not published: low counts it in part, high whole."""
        rates = f.per_megapixel or {}
        m = re.match(r"^(\d+)x(\d+)$", size or "")
        if not m:
            return f"no per-megapixel price without a size (size {size or 'unset'})"
        mp = int(m.group(1)) * int(m.group(2)) / MEGAPIXEL
        more = max(0.0, mp - 1)
        add = rates.get("additional", rates["first"])
        lo = rates["first"] + more * add
        hi = rates["first"] + math.ceil(more - 1e-9) * add
        notes = [f"size {size} is {mp:.2f} MP"] if lo != hi else []
        return lo, hi, notes

    def input_price(self, sizes: list[tuple[int, int]]) -> float | None:
        """What input images of SIZES (w, h) add to each call, where priced by the
        megapixel; None when not priced so."""
        rates = self.figures.per_megapixel if self.figures else None
        if not rates or "input" not in rates:
            return None
        return sum(w * h / MEGAPIXEL for w, h in sizes) * rates["input"]

    def usage_cost(self, usage: Mapping[str, Any] | None, *, input_images: bool = False
                   ) -> float | None:
        """The exact cost of one call from the `usage` it reported, or None."""
        reported = usage.get("cost_usd") if usage else None
        if reported is not None and number(reported):
            return float(reported)  # the provider's own word on the call's cost (BFL `cost`)
        rates = self.figures.tokens if self.figures else None
        if not usage or not rates:
            return None
        tin, tout = usage.get("input_tokens"), usage.get("output_tokens")
        if not (number(tin) and number(tout)):
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
            if not number(count):
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
        if f.per_megapixel is not None:
            out.append(f"per megapixel: {f.per_megapixel_source or self.origin}"
                       + (f" (read {f.per_megapixel_date})" if f.per_megapixel_date else ""))
        return out


def lookup(pcfg: ProviderConfig, model: str | None) -> Pricing:
    """The prices in force for PCFG's MODEL: config first, then the shipped table."""
    model = model or ""
    # A deployment (providers.NAME.models) is priced as its real model: the config may
    # price the deployment itself, else the real model's entry applies.
    real = pcfg.real_model(model) or model
    keys = _model_keys(model) + ([k for k in _model_keys(real) if k not in _model_keys(model)]
                                 if real != model else [])
    service = service_of(pcfg)
    config = getattr(pcfg, "prices", None) or {}
    if config:
        entries = check_config_prices(pcfg.name, config)
        for key in [*keys, "*"]:
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
    for key in keys:
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


# ------------------------------------------------------------------ batch API

@dataclass(frozen=True)
class BatchPrice:
    """The Batch API's price: FACTOR times the live price, and where that was read."""

    factor: float
    source: str
    date: str | None = None


def batch_price(pcfg: ProviderConfig) -> BatchPrice | None:
    """The Batch API's share of the live price for PCFG's service (prices.toml
    `batch_api`), or None where the table has none."""
    service = service_of(pcfg)
    entry = table().get("providers", {}).get(service or "", {}).get("batch_api")
    if not isinstance(entry, dict) or not number(entry.get("factor")):
        # A gateway that offers batches is priced as OpenAI's (its `prices` say otherwise).
        entry = table().get("providers", {}).get("openai", {}).get("batch_api") \
            if pcfg.type == "openai" else None
        if not isinstance(entry, dict) or not number(entry.get("factor")):
            return None
    return BatchPrice(float(entry["factor"]), str(entry.get("source") or ""),
                      str(entry["date"]) if entry.get("date") else None)
