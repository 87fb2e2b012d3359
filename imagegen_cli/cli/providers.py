"""`imagegen providers`: what is configured, what each can do, is it up."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imagegen_cli.cli.completion import complete_provider
from imagegen_cli.errors import AuthError, ConfigError, ImagegenError, UsageError
from imagegen_cli.http import redact

if TYPE_CHECKING:
    from imagegen_cli.config import Config, ProviderConfig
    from imagegen_cli.providers.base import Provider

app = typer.Typer(help="List, inspect, check, add and remove providers.",
                  no_args_is_help=True, rich_markup_mode=None)

JsonOpt = Annotated[bool, typer.Option("--json", help="As JSON.")]


NameArg = Annotated[str, typer.Argument(help="Provider name.",
                                        autocompletion=complete_provider)]


def _load() -> Config:
    from imagegen_cli import config
    from imagegen_cli.cli.console import warn

    cfg = config.load(os.environ)
    for w in cfg.warnings:
        warn(w)
    return cfg


def _get(cfg: Config, name: str) -> tuple[ProviderConfig, Provider]:
    from imagegen_cli.providers.base import create

    if name not in cfg.providers:
        raise ConfigError(f"Unknown provider '{name}': known providers are "
                          + ", ".join(sorted(cfg.providers)))
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
        "model": p.model, "preset": p.preset, "capabilities": _caps_short(prov),
    }


@app.command("list")
def list_cmd(json_out: JsonOpt = False) -> None:
    """Every provider, preset or configured: type, URL, key status, model."""
    from imagegen_cli.cli.console import out

    cfg = _load()
    rows = [_summary(*_get(cfg, n)) for n in cfg.providers]
    import json

    if json_out:
        out(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("name", "type", "base url", "key", "default model", "capabilities"):
        table.add_column(col, no_wrap=True)
    from rich.text import Text

    for r in rows:
        # Text, not markup: model ids like "Flux.1 [dev]" hold brackets.
        table.add_row(*(Text(v) for v in (r["name"], r["type"], r["base_url"] or "", r["key"],
                                          r["model"] or "(pass -m)", r["capabilities"])))
    import sys

    # Piped: one row per line, however long, so grep and cut work.
    width = None if sys.stdout.isatty() else 1000
    Console(no_color=bool(os.environ.get("NO_COLOR")), width=width).print(table)


@app.command("show")
def show(name: NameArg, json_out: JsonOpt = False) -> None:
    """Everything about one provider: sizes, options and models it accepts."""
    from imagegen_cli.cli.console import out

    cfg = _load()
    p, prov = _get(cfg, name)
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
            "n_per_request": caps.max_n,
            "prompt_max": caps.prompt_max, "inpaint": caps.inpaint, "stream": caps.stream,
            "async": caps.async_jobs, "notes": list(caps.notes),
            "edit": caps.edit, "max_images": caps.max_images,
            "formats": list(caps.formats), "status": prov.model_status(m) if m else None,
            "lifecycle": prov.model_lifecycle(m) if m else None,
        }
    info["models"] = models
    import json

    if json_out:
        out(json.dumps(info, indent=2))
        return
    lines = [f"{p.name}  ({p.type}{', preset' if p.preset else ''})",
             f"  base url : {info['base_url'] or '(none: runs on this machine)'}",
             f"  key      : {info['key']}" + (f" (variable {p.api_key_env})"
                                              if p.api_key_env else ""),
             f"  model    : {p.model or '(none: pass -m)'}"]
    for m, c in models.items():
        lines.append(f"  model {m}:" + (f" ({c['status']})" if c["status"] else ""))
        lines.append("    options : " + (" ".join(c["options"]) or "-"))
        for flag, vals in c["values"].items():
            lines.append(f"    {flag} : {', '.join(vals)}")
        for flag, (lo, hi) in c["ranges"].items():
            lines.append(f"    {flag} : {lo:g}..{hi:g}")
        lines.append(f"    sizes   : {c['sizes']}")
        lines.append(f"    n       : {c['n_per_request']} per request (more: several "
                     "requests, -j at once)")
        if c["prompt_max"]:
            lines.append(f"    prompt  : up to {c['prompt_max']} characters")
        feats = [k for k in ("inpaint", "edit", "stream", "async") if c[k]]
        if feats:
            lines.append("    features: " + ", ".join(feats))
        if c["formats"]:
            lines.append("    formats : " + ", ".join(c["formats"]))
        for n in c["notes"]:
            lines.append(f"    note    : {n}")
    out("\n".join(lines))


def _transport(prov: Provider, timeout: float = 30.0) -> Any:
    from imagegen_cli.cli.app import debug_enabled
    from imagegen_cli.cli.console import err
    from imagegen_cli.http import Transport

    log = (lambda line: err(line, prefix="debug")) if debug_enabled() else None
    return Transport(timeout=timeout, retries=1, who=prov.name, log=log)


def _key(p: ProviderConfig, prov: Provider) -> str | None:
    from imagegen_cli.http import register_secret

    if not prov.needs_key:
        return None
    key = p.require_key(os.environ)
    register_secret(key)
    return key


@app.command("models")
def models(name: NameArg, json_out: JsonOpt = False) -> None:
    """The models a provider knows; fetched live where the API lists them."""
    from imagegen_cli.cli.console import out

    cfg = _load()
    p, prov = _get(cfg, name)
    live = prov.lists_models_live
    names: list[str] = []
    if live:
        from imagegen_cli.cli.console import note
        from imagegen_cli.errors import RefusedError

        key = _key(p, prov)
        with _transport(prov) as tr:
            try:
                names = prov.list_models(key, tr)
            except RefusedError as exc:
                if exc.status not in (404, 405):
                    raise
                live = False
                note(f"{p.name} has no model list at {redact(tr.last_url or '')} (HTTP "
                     f"{exc.status}): showing the models imagegen knows for it")
    if not live:
        names = prov.known_models()
    import json

    status = {n: prov.model_status(n) for n in names}
    if json_out:
        lives = {n: prov.model_lifecycle(n) for n in names}
        out(json.dumps({"provider": p.name, "live": live, "models": names,
                        "status": status,
                        "lifecycle": {n: v for n, v in lives.items() if v}}, indent=2))
        return
    width = max((len(n) for n in names if status[n]), default=0)
    for n in names:
        # NAME, then its lifecycle status where known: `cut -d' ' -f1` gives the names.
        out(f"{n:<{width}}  {status[n]}" if status[n] else n)


@app.command("check")
def check(
    name: Annotated[str | None, typer.Argument(help="Provider name.",
                                               autocompletion=complete_provider)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every provider that has a key.")]
    = False,
    json_out: JsonOpt = False,
) -> None:
    """Verify a key and reachability without generating an image."""
    from imagegen_cli.cli.console import err, out

    if bool(name) == all_:
        raise UsageError("Pass a provider NAME or --all")
    cfg = _load()
    names = [name] if name else list(cfg.providers)
    results: list[dict[str, Any]] = []
    first_error: ImagegenError | None = None
    checked = 0
    for n in names:
        assert n is not None
        p, prov = _get(cfg, n)
        if all_ and prov.needs_key and not p.key(os.environ):
            # Not set up is not a failure of --all: say so, and check the others.
            how = f"set {p.api_key_env}" if p.api_key_env else (
                f"`imagegen config set providers.{n}.api_key`")
            results.append({"provider": n, "ok": None, "detail": f"no key ({how})"})
            if not json_out:
                out(f"{n}: no key ({how})")
            continue
        tr = _transport(prov)
        try:
            key = _key(p, prov)
            with tr:
                detail = prov.check(key, tr)
            checked += 1
            results.append({"provider": n, "ok": True, "detail": detail})
            if not json_out:
                out(f"{n}: ok ({detail})")
        except ConfigError as exc:
            if not (all_ and not prov.needs_key):
                raise
            # --all and a keyless provider that is not installed (the local extra).
            results.append({"provider": n, "ok": None, "detail": f"not set up: {exc}"})
            if not json_out:
                out(f"{n}: not set up ({exc})")
        except ImagegenError as exc:
            checked += 1
            if isinstance(exc, AuthError):
                exc.message += f" (the key came from {p.key_origin(os.environ)})"
            first_error = first_error or exc
            url = f" (at {redact(tr.last_url)})" if tr.last_url else ""
            results.append({"provider": n, "ok": False, "detail": f"{exc}{url}",
                            "url": redact(tr.last_url) if tr.last_url else None,
                            "exit_code": int(exc.exit_code)})
            if not json_out:
                out(f"{n}: failed")
                err(f"{n}: {exc}{url}", prefix="error")
    if all_ and not checked and first_error is None:
        if json_out:
            import json

            out(json.dumps(results, indent=2))
        raise ConfigError("No provider has a key set: nothing to check (set one of the key "
                          "variables above)")
    if json_out:
        import json

        out(json.dumps(results, indent=2))
    if first_error is not None:
        raise typer.Exit(int(first_error.exit_code))


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A new provider name.")],
    type_: Annotated[str, typer.Option("--type", help="Dialect: openai, distribute, nebula.")],
    base_url: Annotated[str, typer.Option("--base-url", help="The API's base URL.")],
    api_key_env: Annotated[str | None, typer.Option(
        "--api-key-env", help="Environment variable holding the key.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Default model.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing table.")]
    = False,
) -> None:
    """Add a provider, e.g. an OpenAI-compatible gateway."""
    import re
    from pathlib import Path

    import tomlkit

    from imagegen_cli import configfile
    from imagegen_cli.cli.console import note
    from imagegen_cli.config import config_path
    from imagegen_cli.http import check_base_url
    from imagegen_cli.providers.base import dialect_names

    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise UsageError(f"Provider name '{name}' may hold letters, digits, - and _ only")
    if type_ not in dialect_names():
        raise UsageError(f"--type {type_} is not one of {', '.join(dialect_names())}")
    try:
        check_base_url(base_url, name)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    path = Path(config_path(os.environ))
    doc = configfile.read_document(path)
    if name in (doc.get("providers") or {}) and not force:
        raise UsageError(f"Provider {name} is already in {path}: pass --force to replace it")
    from imagegen_cli.config import load

    existing = load(os.environ, missing_ok=True).providers.get(name)
    if not force and existing is not None and existing.preset:
        raise UsageError(f"{name} is a built-in preset: pass --force to override it, or "
                         "choose another name")
    table = tomlkit.table()
    table["type"] = type_
    table["base_url"] = base_url
    if api_key_env:
        table["api_key_env"] = api_key_env
    if model:
        table["model"] = model
    if "providers" not in doc:
        doc["providers"] = tomlkit.table(is_super_table=True)
    doc["providers"][name] = table
    configfile.save(doc, path, os.environ)
    if api_key_env and os.environ.get(api_key_env):
        hint = f"; {api_key_env} is set: `imagegen providers check {name}` tries it"
    elif api_key_env:
        hint = f"; set {api_key_env} to its key"
    else:
        hint = f"; store a key with `imagegen config set providers.{name}.api_key`"
    note(f"added {name} to {path}{hint}")


@app.command("remove")
def remove(name: NameArg) -> None:
    """Remove a provider's table from the config file."""
    from pathlib import Path

    from imagegen_cli import configfile
    from imagegen_cli.cli.console import note
    from imagegen_cli.config import config_path

    path = Path(config_path(os.environ))
    doc = configfile.read_document(path)
    if name not in (doc.get("providers") or {}):
        raise UsageError(f"Provider {name} is not in {path}")
    del doc["providers"][name]
    configfile.save(doc, path, os.environ)
    cfg = _load()
    if name in cfg.providers:
        note(f"removed {name}'s table from {path}; the built-in preset remains")
    else:
        note(f"removed {name} from {path}")
