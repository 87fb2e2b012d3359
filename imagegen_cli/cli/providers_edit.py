"""`imagegen providers add` and `remove`: a provider's table in the config file.

Owns adding a provider (an OpenAI-compatible gateway, say: name, dialect, base
URL, key variable, model; a built-in preset is replaced only with --force) and
removing one, each an in-place edit of the config file that keeps the user's
comments. Registered on providers.py's app.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from imagegen_cli.cli.console import note, warn
from imagegen_cli.cli.providers import NameArg, load_config
from imagegen_cli.errors import ConfigError, UsageError


def add(
    name: Annotated[str, typer.Argument(help="A new provider name.")],
    type_: Annotated[str, typer.Option(
        "--type", help="Dialect: openai, xai, gemini, bfl, distribute, nebula, local, or one a "
        "plugin registers.")],
    base_url: Annotated[str, typer.Option("--base-url", help="The API's base URL.")],
    api_key_env: Annotated[str | None, typer.Option(
        "--api-key-env", help="Environment variable holding the key.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Default model.")] = None,
    key_header: Annotated[str | None, typer.Option(
        "--key-header", help="Header the key goes in: Authorization (Bearer, the default) "
        "or e.g. api-key (Azure OpenAI).")] = None,
    api_version: Annotated[str | None, typer.Option(
        "--api-version", help="Azure's deployment path: "
        ".../openai/deployments/MODEL/...?api-version=VERSION.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing table.")]
    = False,
) -> None:
    """Add a provider, e.g. an OpenAI-compatible gateway."""
    import re
    from pathlib import Path

    import tomlkit

    from imagegen_cli.registry import dialect_names
    from imagegen_cli.settings import edit as configfile
    from imagegen_cli.settings.config import config_path
    from imagegen_cli.settings.rules import check_base_url

    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise UsageError(f"Provider name '{name}' may hold letters, digits, - and _ only")
    if type_ not in dialect_names():
        raise UsageError(f"--type {type_} is not one of {', '.join(dialect_names())}")
    try:
        check_base_url(base_url, name)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    path = Path(config_path(os.environ))
    with configfile.locked(path):  # read-modify-write, one run at a time
        doc = configfile.read_document(path)
        if name in (doc.get("providers") or {}) and not force:
            raise UsageError(f"Provider {name} is already in {path}: pass --force to replace it")
        from imagegen_cli.settings.config import load

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
        if key_header:
            table["key_header"] = key_header
        if api_version:
            table["api_version"] = api_version
        if "providers" not in doc:
            doc["providers"] = tomlkit.table(is_super_table=True)
        doc["providers"][name] = table
        configfile.save(doc, path, os.environ)
    for text in _doubts(name, type_, base_url, model, api_version):
        warn(text)
    if api_key_env and os.environ.get(api_key_env):
        hint = f"; {api_key_env} is set: `imagegen providers check {name}` tries it"
    elif api_key_env:
        hint = f"; set {api_key_env} to its key"
    else:
        hint = f"; store a key with `imagegen config set providers.{name}.api_key`"
    note(f"added {name} to {path}{hint}")


def _doubts(name: str, type_: str, base_url: str, model: str | None,
            api_version: str | None) -> list[str]:
    """What `providers add` can tell at once will fail later."""
    from urllib.parse import urlsplit

    out = []
    if type_ == "openai" and not api_version and urlsplit(base_url).path.strip("/") == "":
        out.append(f"{base_url} has no path: OpenAI-compatible APIs are usually served under "
                   f"/v1 (requests go to {base_url.rstrip('/')}/images/generations); if "
                   f"they get a 404, run `imagegen providers add {name} --force --type "
                   f"{type_} --base-url {base_url.rstrip('/')}/v1 ...`")
    if not model:
        cfg = load_config()
        default = None
        if name in cfg.providers:
            from imagegen_cli.registry import create

            default = create(cfg.providers[name], os.environ).default_model()
        uses = (f"requests will ask for {type_}'s default model, {default}, which {name} "
                "may not serve" if default else "every request will need -m MODEL")
        out.append(f"no --model: {uses}; set one with `imagegen config set "
                   f"providers.{name}.model MODEL`")
    return out


def remove(name: NameArg) -> None:
    """Remove a provider's table from the config file."""
    from pathlib import Path

    from imagegen_cli.settings import edit as configfile
    from imagegen_cli.settings.config import config_path

    path = Path(config_path(os.environ))
    with configfile.locked(path):  # read-modify-write, one run at a time
        doc = configfile.read_document(path)
        if name not in (doc.get("providers") or {}):
            raise UsageError(f"Provider {name} is not in {path}")
        del doc["providers"][name]
        configfile.save(doc, path, os.environ)
    cfg = load_config()
    if name in cfg.providers:
        note(f"removed {name}'s table from {path}; the built-in preset remains")
    else:
        note(f"removed {name} from {path}")


def register(app: typer.Typer) -> None:
    app.command("add")(add)
    app.command("remove")(remove)
