"""The rules a value must follow, shared by the flags, `config set` and config files.

`parse_size`, `parse_aspect` and `FORMATS` read what a user typed; `check_default`
applies the same rules to a `[defaults]` (or `[providers.NAME.defaults]`) value, so
`config set defaults.quality ultra` fails the way `--quality ultra` would.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from imagegen_cli.errors import ConfigError, ImagegenError, UsageError
from imagegen_cli.files.naming import OutputPlan
from imagegen_cli.registry import create
from imagegen_cli.settings import options

if TYPE_CHECKING:
    from imagegen_cli.settings.schema import Config

# gif and svg: as drawn by the models that make them (gpt-image-2.6), never converted to.
FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "webp": "webp", "gif": "gif",
           "svg": "svg"}


def parse_size(size: str | None) -> str | None:
    if size is None:
        return None
    s = size.strip().lower().replace("×", "x")
    if s == "auto":
        return s
    w, sep, h = s.partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
        raise UsageError(f"--size '{size}' is not WIDTHxHEIGHT (e.g. 1024x1024) or auto")
    return f"{int(w)}x{int(h)}"


MAX_ASPECT = 100


def parse_aspect(aspect: str) -> float:
    w, sep, h = aspect.partition(":")
    try:
        ratio = float(w) / float(h)
    except (ValueError, ZeroDivisionError, OverflowError):
        ratio = 0
    if not sep or not math.isfinite(ratio) or ratio <= 0:
        raise UsageError(f"--aspect '{aspect}' is not W:H (e.g. 16:9)")
    if not 1 / MAX_ASPECT <= ratio <= MAX_ASPECT:
        raise UsageError(f"--aspect '{aspect}' is beyond {MAX_ASPECT}:1 either way")
    return ratio


def parse_format(value: str) -> str:
    fmt = FORMATS.get(value.lower())
    if fmt is None:
        raise UsageError(f"-f/--format '{value}' is not one of png, jpeg, webp, gif, svg")
    return fmt


def _accepted_values(flag: str, cfg: Config, provider: str | None) -> set[str] | None:
    """Every value some model of PROVIDER (or of any provider) accepts for FLAG;
    None when one of them takes any value."""

    names = [provider] if provider else list(cfg.providers)
    out: set[str] = set()
    for name in names:
        try:
            prov = create(cfg.providers[name], {})
        except (ImagegenError, KeyError):
            continue
        # Across all providers only the declared models count: a gateway's unknown
        # model passes anything through, which would make every value "accepted".
        models: list[str | None] = list(prov.known_models())
        if provider and not models:
            models = [None]
        for model in models:
            caps = prov.capabilities(model)
            if flag not in caps.options:
                continue
            allowed = caps.values.get(flag)
            if not allowed:
                if provider:
                    return None
                continue
            out.update(allowed)
    return out


def check_default(key: str, value: Any, cfg: Config, provider: str | None = None) -> None:
    """UsageError (exit 2) when VALUE for defaults KEY would be refused as its flag
    would: the option's bounds and rule (settings/options.py), with the same parsers,
    and for enumerated options the values some provider (PROVIDER when given)
    accepts."""
    row = options.by_config(key)
    if row is None:
        return
    flag = row.flag
    if row.bounds is not None and not row.bounds.holds(value):
        raise UsageError(f"{flag} must be {row.bounds}, not {value}")
    check = row.check
    if check == options.SIZE:
        parse_size(str(value))
    elif check == options.ASPECT:
        parse_aspect(str(value))
    elif check == options.FORMAT:
        parse_format(str(value))
    elif check == options.OUTPUT:
        plan = OutputPlan.from_option(str(value))
        if plan.stdout:
            raise UsageError(f"defaults.{key} cannot be '-': stdout is for one command, "
                             "pass -o - there")
        plan.check_extension()
    elif check == options.PROVIDER:
        if value not in cfg.providers:
            raise UsageError(f"No provider '{value}': known providers are "
                             + ", ".join(sorted(cfg.providers)))
    elif check == options.ONE_OF and value not in row.values:
        raise UsageError(f"{flag} {value} is not one of {', '.join(row.values)}")
    elif check == options.NOT_EMPTY and not str(value).strip():
        raise UsageError(f"{flag} must not be empty")
    elif check == options.ACCEPTED:
        allowed = _accepted_values(row.long, cfg, provider)
        if allowed is not None and str(value) not in allowed:
            who = f"provider {provider}" if provider else "any provider"
            hint = f": use one of {', '.join(sorted(allowed))}" if allowed else ""
            raise UsageError(f"{flag} {value} is not accepted by {who}{hint}")


def check_base_url(url: str, provider: str) -> str:
    """URL without its trailing slash; ConfigError unless it is http(s)://HOST/...."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"Bad base_url '{url}' for provider {provider}: expected http(s)://HOST/..."
        )
    return url.rstrip("/")
