"""`imagegen providers models` and `check`: the provider commands that call the provider.

Owns asking a provider for its model list (falling back to the models imagegen
knows when the API has none) and checking a key and reachability without
generating an image, for one provider or every one with a key; the short-timeout
Transport these use, and the key each sends. Registered on providers.py's app.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imagegen_cli.cli.completion import complete_provider
from imagegen_cli.cli.console import err, note, out
from imagegen_cli.cli.providers import JsonOpt, NameArg, get, load_config
from imagegen_cli.cli.state import debug_enabled
from imagegen_cli.errors import AuthError, ConfigError, ImagegenError, RefusedError, UsageError
from imagegen_cli.secrets import redact

if TYPE_CHECKING:
    from imagegen_cli.providers.base import Provider
    from imagegen_cli.settings.provider import ProviderConfig


def _transport(prov: Provider, timeout: float = 30.0) -> Any:
    from imagegen_cli.transport.client import Transport

    log = (lambda line: err(line, prefix="debug")) if debug_enabled() else None
    return Transport(timeout=timeout, retries=1, who=prov.name, log=log)


def _key(p: ProviderConfig, prov: Provider) -> str | None:
    from imagegen_cli.secrets import register_secret

    if not prov.needs_key:
        return None
    key = p.require_key(os.environ)
    register_secret(key)
    return key


def models(name: NameArg, json_out: JsonOpt = False) -> None:
    """The models a provider knows; fetched live where the API lists them."""

    cfg = load_config()
    p, prov = get(cfg, name)
    live = prov.lists_models_live
    names: list[str] = []
    if live:

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
    read = prov.model_table_read()
    if json_out:
        lives = {n: prov.model_lifecycle(n) for n in names}
        out(json.dumps({"provider": p.name, "live": live, "models": names,
                        "status": status, "table_checked": read,
                        "lifecycle": {n: v for n, v in lives.items() if v}}, indent=2))
        return
    if read:
        from imagegen_cli import clock

        note(f"statuses from imagegen's model table, checked against {p.type}'s docs on "
             f"{read}, as of {clock.today().isoformat()}; a newer imagegen has a newer "
             "table (see README, Models)")
    width = max((len(n) for n in names if status[n]), default=0)
    for n in names:
        # NAME, then its lifecycle status where known: `cut -d' ' -f1` gives the names.
        out(f"{n:<{width}}  {status[n]}" if status[n] else n)


def check(
    name: Annotated[str | None, typer.Argument(help="Provider name.",
                                               autocompletion=complete_provider)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every provider that has a key.")]
    = False,
    json_out: JsonOpt = False,
) -> None:
    """Verify a key and reachability without generating an image."""

    if bool(name) == all_:
        raise UsageError("Pass a provider NAME or --all")
    cfg = load_config()
    names = [name] if name else list(cfg.providers)
    results: list[dict[str, Any]] = []
    first_error: ImagegenError | None = None
    checked = 0
    for n in names:
        assert n is not None
        p, prov = get(cfg, n)
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


def register(app: typer.Typer) -> None:
    app.command("models")(models)
    app.command("check")(check)
