"""The price table: the shipped prices, and checking any price entry.

Owns reading ``data/prices.toml`` (once), `Figures` (one model's per-image
prices by size and quality, per-million-token rates, each group with where and
when it was read), and checking an entry's shape, from the table or from
``[providers.NAME.prices]`` in the config (`figures_from`, `check_config_prices`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from imagegen_cli.errors import ConfigError

TOKEN_KEYS = ("text_in", "image_in", "image_out", "text_out")


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
    # USD by the megapixel (of 1024 x 1024 pixels): `first` for the first megapixel of
    # output, `additional` for each one after it, `input` for each of the input images
    # (Black Forest Labs' FLUX.2). An image's price is worked out from its size.
    per_megapixel: dict[str, float] | None = None
    per_megapixel_source: str | None = None
    per_megapixel_date: str | None = None
    default_size: str | None = None
    default_quality: str | None = None
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v is not None}
        return out


# The most a price may say (USD per image, or per 1M tokens): a larger one is a typo,
# and one near 1e308 overflows to infinity once multiplied by the images of a run.
MAX_PRICE = 1_000_000


def number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 \
        and math.isfinite(value) and value <= MAX_PRICE


def _check_per_image(value: Any, where: str) -> PerImage:
    bad = ConfigError(
        f"{where}.per_image must be a price in USD (up to {MAX_PRICE:,}), or a table of "
        "sizes (\"1024x1024\", \"*\") each a price or a table of qualities (low = 0.011)")
    if number(value):
        return float(value)
    if not isinstance(value, Mapping):
        raise bad
    out: dict[str, float | dict[str, float]] = {}
    for size, v in value.items():
        if number(v):
            out[str(size)] = float(v)
        elif isinstance(v, Mapping) and v and all(number(x) for x in v.values()):
            out[str(size)] = {str(q): float(x) for q, x in v.items()}
        else:
            raise bad
    return out


def _check_tokens(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, Mapping) or not value or any(
            k not in TOKEN_KEYS or not number(v) for k, v in value.items()):
        raise ConfigError(
            f"{where}.tokens must be a table of USD per 1M tokens (up to {MAX_PRICE:,}) "
            "with keys "
            + ", ".join(TOKEN_KEYS) + " (e.g. { text_in = 5.0, image_out = 40.0 })")
    return {k: float(v) for k, v in value.items()}


ENTRY_KEYS = {"per_image", "per_image_source", "per_image_date", "tokens", "tokens_source",
              "tokens_date", "per_megapixel", "per_megapixel_source", "per_megapixel_date",
              "default_size", "default_quality", "note", "source", "date"}
MEGAPIXEL_KEYS = ("first", "additional", "input")


def _check_per_megapixel(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, Mapping) or "first" not in value or any(
            k not in MEGAPIXEL_KEYS or not number(v) for k, v in value.items()):
        raise ConfigError(
            f"{where}.per_megapixel must be a table of USD per megapixel with keys "
            + ", ".join(MEGAPIXEL_KEYS) + " (first required; e.g. { first = 0.03, "
            "additional = 0.015, input = 0.015 })")
    return {k: float(v) for k, v in value.items()}


def figures_from(raw: Any, where: str, *, source: str | None = None) -> Figures:
    """A model entry (table or config) as Figures; ConfigError names WHERE."""
    if number(raw):
        raw = {"per_image": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table (per_image = ..., tokens = {{...}}) "
                          f"or a price per image in USD (up to {MAX_PRICE:,})")
    unknown = set(raw) - ENTRY_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}; use per_image, "
                          "tokens, per_megapixel, source, date")
    for k in ENTRY_KEYS - {"per_image", "tokens", "per_megapixel"}:
        if k in raw and not isinstance(raw[k], str):
            raise ConfigError(f"{where}.{k} must be a string")
    per_image = _check_per_image(raw["per_image"], where) if "per_image" in raw else None
    tokens = _check_tokens(raw["tokens"], where) if "tokens" in raw else None
    per_mp = (_check_per_megapixel(raw["per_megapixel"], where) if "per_megapixel" in raw
              else None)
    src = raw.get("source") or source
    date = raw.get("date")
    return Figures(
        per_image=per_image,
        per_image_source=(raw.get("per_image_source") or src) if per_image is not None else None,
        per_image_date=(raw.get("per_image_date") or date) if per_image is not None else None,
        tokens=tokens,
        tokens_source=(raw.get("tokens_source") or src) if tokens is not None else None,
        tokens_date=(raw.get("tokens_date") or date) if tokens is not None else None,
        per_megapixel=per_mp,
        per_megapixel_source=(raw.get("per_megapixel_source") or src) if per_mp else None,
        per_megapixel_date=(raw.get("per_megapixel_date") or date) if per_mp else None,
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
