"""`imagegen providers`: what is configured, what each can do, is it up.

This module owns the sub-app, the arguments its commands share, and `list` and
`show`. `models` and `check` (which call the provider) live in
providers_check.py, `add` and `remove` (which edit the config file) in
providers_edit.py; app.py registers them on this sub-app after list and show.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imagegen_cli.cli.completion import complete_provider
from imagegen_cli.cli.console import out, warn

if TYPE_CHECKING:
    from imagegen_cli.providers.base import Provider
    from imagegen_cli.settings.provider import ProviderConfig
    from imagegen_cli.settings.schema import Config

app = typer.Typer(help="List, inspect, check, add and remove providers.",
                  no_args_is_help=True, rich_markup_mode=None)

JsonOpt = Annotated[bool, typer.Option("--json", help="As JSON.")]


NameArg = Annotated[str, typer.Argument(help="Provider name.",
                                        autocompletion=complete_provider)]


def load_config() -> Config:
    from imagegen_cli.settings import config

    cfg = config.load(os.environ)
    for w in cfg.warnings:
        warn(w)
    return cfg


def get(cfg: Config, name: str) -> tuple[ProviderConfig, Provider]:
    from imagegen_cli.registry import create
    from imagegen_cli.settings import config as cfgmod

    if name not in cfg.providers:
        raise cfgmod.unknown_provider(cfg, name)
    p = cfg.providers[name]
    return p, create(p, os.environ)


def _caps_short(prov: Provider) -> str:
    model = prov.default_model()
    caps = prov.capabilities(model)
    feats = [f"n<={caps.max_n}/req"]
    if prov.inpaint_model():
        feats.append("inpaint")
    if caps.edit:
        feats.append("edit")
    feats += [f for f, on in (("stream", caps.stream), ("async", caps.async_jobs)) if on]
    return ", ".join(feats)


def _summary(p: ProviderConfig, prov: Provider) -> dict[str, Any]:
    from imagegen_cli.secrets import redact

    return {
        "name": p.name, "type": p.type, "base_url": redact(p.base_url) if p.base_url else None,
        "key": p.key_source(os.environ), "key_env": p.api_key_env,
        "model": p.model or prov.default_model(), "preset": p.preset,
        "capabilities": _caps_short(prov),
    }


@app.command("list")
def list_cmd(json_out: JsonOpt = False) -> None:
    """Every provider, preset or configured: type, URL, key status, model."""

    cfg = load_config()
    rows = [_summary(*get(cfg, n)) for n in cfg.providers]
    import json

    if json_out:
        out(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    headers = ("name", "type", "base url", "key", "default model", "capabilities")
    cells = [(r["name"], r["type"], r["base_url"] or "", r["key"],
              r["model"] or "(pass -m)", r["capabilities"]) for r in rows]
    import sys

    from rich.cells import cell_len

    # Piped: one row per line, however long, so grep and cut work.
    width = None if sys.stdout.isatty() else 1000
    console = Console(no_color=bool(os.environ.get("NO_COLOR")), width=width)
    widths = [max(cell_len(row[i]) for row in [headers, *cells]) for i in range(len(headers))]
    # Name, type and key are never cut; base URL, model and capabilities wrap (fold)
    # when the row does not fit, down to 20 cells each (two spaces between columns).
    wraps = {2, 4, 5}
    narrowest = sum(w if i not in wraps else min(w, 20) for i, w in enumerate(widths))
    if narrowest + 2 * (len(headers) - 1) <= console.width:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for i, col in enumerate(headers):
            if i in wraps:
                table.add_column(col, overflow="fold", min_width=min(widths[i], 20))
            else:
                table.add_column(col, no_wrap=True, min_width=widths[i])
        for row in cells:
            # Text, not markup: model ids like "Flux.1 [dev]" hold brackets.
            table.add_row(*(Text(v) for v in row))
        console.print(table)
        return
    # Too narrow for a row per provider: one block each, the name on its own line and
    # nothing cut (a long value wraps as the terminal wraps it).
    blocks = []
    for row in cells:
        name, *rest = row
        blocks.append("\n".join([name] + [f"  {h}: {v}" for h, v in
                                           zip(headers[1:], rest, strict=True) if v]))
    out("\n".join(blocks))


@app.command("show")
def show(name: NameArg, json_out: JsonOpt = False) -> None:
    """Everything about one provider: sizes, options and models it accepts."""

    cfg = load_config()
    p, prov = get(cfg, name)
    info = _summary(p, prov)
    models: dict[str, dict[str, Any]] = {}
    known: list[str | None] = list(prov.known_models()) or [None]
    for m in known:
        caps = prov.capabilities(m)
        models[m or "(any)"] = {
            "options": sorted(caps.options),
            "values": {k: list(v) for k, v in caps.values.items()},
            "ranges": {k: list(v) for k, v in caps.ranges.items()},
            "sizes": caps.sizes.describe() if caps.sizes else "not declared",
            "aspect_ratios": list(caps.aspect_ratios),
            "n_per_request": caps.max_n,
            "prompt_max": caps.prompt_max, "inpaint": caps.inpaint, "stream": caps.stream,
            "async": caps.async_jobs, "notes": list(caps.notes),
            "edit": caps.edit, "max_images": caps.max_images,
            "formats": list(caps.formats), "status": prov.model_status(m) if m else None,
            "lifecycle": prov.model_lifecycle(m) if m else None,
        }
        if m and p.real_model(m) != m:
            models[m]["real_model"] = p.real_model(m)  # a deployment (providers.NAME.models)
    info["models"] = models
    from imagegen_cli.pricing.lookup import provider_prices

    info["prices"] = provider_prices(p)
    import json

    if json_out:
        out(json.dumps(info, indent=2))
        return
    lines = [f"{p.name}  ({p.type}{', preset' if p.preset else ''})",
             f"  base url : {info['base_url'] or '(none: runs on this machine)'}",
             f"  key      : {info['key']}" + (
                 "" if info["key"].startswith("set via ") and len(p.key_vars()) == 1 else
                 f" (variable {p.api_key_env})" if len(p.key_vars()) == 1 else
                 f" (variables {', '.join(p.key_vars())}: the first one set wins)"
                 if p.key_vars() else ""),
             f"  model    : {p.model or prov.default_model() or '(none: pass -m)'}"]
    if p.key_header and p.key_header != "authorization":
        lines.insert(3, f"  key header: {p.key_header}")
    if p.api_version:
        lines.append(f"  api-version: {p.api_version} (deployment path)")
    default = p.model or prov.default_model()
    first = default if default in models else next(iter(models))
    lines.extend(_model_lines(first, models[first]))
    others = [m for m in models if m != first]
    if others:
        # One line each: what differs from the model shown in full (--json has all).
        lines.append(f"  other models (as {first} except as said; --json for each in full):")
        lines.extend(f"    {m}{_status(models[m])}: {_model_diff(models[first], models[m])}"
                     for m in others)
    lines.extend(_price_lines(p.name, info["prices"], default))
    out("\n".join(lines))


def _status(c: dict[str, Any]) -> str:
    return ((f" -> {c['real_model']}" if c.get("real_model") else "")
            + (f" ({c['status']})" if c["status"] else ""))


_FEATURES = ("inpaint", "edit", "stream", "async")


def _model_lines(m: str, c: dict[str, Any]) -> list[str]:
    lines = [f"  model {m}:{_status(c)}", "    options : " + (" ".join(c["options"]) or "-")]
    for flag, vals in c["values"].items():
        lines.append(f"    {flag} : {', '.join(vals)}")
    for flag, (lo, hi) in c["ranges"].items():
        lines.append(f"    {flag} : {lo:g}..{hi:g}")
    lines.append(f"    sizes   : {c['sizes']}")
    if c["aspect_ratios"]:
        lines.append("    ratios  : " + ", ".join(c["aspect_ratios"])
                     + " (--aspect goes to the nearest)")
    lines.append(f"    n       : {c['n_per_request']} per request (more: several "
                 "requests, -j at once)")
    if c["prompt_max"]:
        lines.append(f"    prompt  : up to {c['prompt_max']} characters")
    feats = [k for k in _FEATURES if c[k]]
    if feats:
        lines.append("    features: " + ", ".join(feats))
    if c["formats"]:
        lines.append("    formats : " + ", ".join(c["formats"]))
    for n in c["notes"]:
        lines.append(f"    note    : {n}")
    return lines


def _model_diff(base: dict[str, Any], c: dict[str, Any]) -> str:
    """What model C accepts differently from BASE, in one line."""
    parts = []
    gone = [o for o in base["options"] if o not in c["options"]]
    added = [o for o in c["options"] if o not in base["options"]]
    if gone:
        parts.append("no " + " ".join(gone))
    if added:
        parts.append("also " + " ".join(added))
    for flag, vals in c["values"].items():
        if base["values"].get(flag) != vals:
            parts.append(f"{flag} {', '.join(vals)}")
    for flag, (lo, hi) in c["ranges"].items():
        if base["ranges"].get(flag) != [lo, hi]:
            parts.append(f"{flag} {lo:g}..{hi:g}")
    if c["sizes"] != base["sizes"]:
        parts.append(f"sizes {c['sizes']}")
    if c["aspect_ratios"] != base["aspect_ratios"]:
        parts.append("ratios " + (", ".join(c["aspect_ratios"]) or "none"))
    if c["n_per_request"] != base["n_per_request"]:
        parts.append(f"n {c['n_per_request']} per request")
    if c["prompt_max"] != base["prompt_max"]:
        parts.append(f"prompt up to {c['prompt_max']} characters")
    feats = [k for k in _FEATURES if c[k]]
    if feats != [k for k in _FEATURES if base[k]]:
        parts.append("features " + (", ".join(feats) or "none"))
    if c["formats"] != base["formats"]:
        parts.append("formats " + ", ".join(c["formats"]))
    if c["notes"] != base["notes"]:
        parts.extend(f"note: {n}" for n in c["notes"] if n not in base["notes"])
    return "; ".join(parts) or "the same"


def _price_lines(name: str, prices: dict[str, Any], default: str | None) -> list[str]:
    """The prices in force (table, then config overrides) and where each came from."""
    if prices["free"] and not prices["models"]:
        return ["  prices   : none: runs on this machine, no money spent (runs report "
                "seconds of compute instead)"]
    lines = []
    if not prices["models"]:
        why = prices["note"] or "no entry in the price table"
        return [f"  prices   : unknown ({why})",
                f"             set them with `imagegen config set providers.{name}.prices."
                '"MODEL" USD` (see README, Costs)']
    lines.append("  prices   : USD; per image by size and quality, tokens per 1M")
    hidden = False
    for model, f in prices["models"].items():
        mine = f["origin"] == "config"
        figures = []
        per = f.get("per_image")
        if isinstance(per, (int, float)):
            figures.append(f"per image {per:g} (any size)")
        elif isinstance(per, dict):
            for size, by in per.items():
                figures.append(f"{size}: " + (f"{by:g}" if isinstance(by, (int, float))
                                              else ", ".join(f"{q} {v:g}"
                                                             for q, v in by.items())))
        mp = f.get("per_megapixel")
        if mp:
            figures.append("per megapixel: " + ", ".join(f"{k} {v:g}" for k, v in mp.items()))
        tok = f.get("tokens")
        if tok:
            figures.append("tokens: " + ", ".join(f"{k} {v:g}" for k, v in tok.items()))
        lines.append(f"    {model} ({'your config' if mine else 'table'}): "
                     + "; ".join(figures))
        # Sources are long: shown for the model in use and your own entries only.
        if model != default and not mine:
            hidden = True
            continue
        if per is not None:
            lines.append(f"      source: {f.get('per_image_source') or 'config'}"
                         + (f", read {f['per_image_date']}" if f.get("per_image_date") else ""))
        mp = f.get("per_megapixel")
        if mp:
            lines.append(f"      source: {f.get('per_megapixel_source') or 'config'}"
                         + (f", read {f['per_megapixel_date']}"
                            if f.get("per_megapixel_date") else ""))
        if tok:
            lines.append(f"      tokens source: {f.get('tokens_source') or 'config'}"
                         + (f", read {f['tokens_date']}" if f.get("tokens_date") else ""))
    if hidden:
        lines.append(f"    sources of the others: imagegen providers show {name} --json")
    if prices["note"]:
        lines.append(f"    note: {prices['note']}")
    return lines
