"""`imagegen config`: the user's settings and keys."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from imagegen_cli.cli.completion import (
    complete_config_key,
    complete_config_value,
    complete_provider,
)
from imagegen_cli.cli.console import note, out, warn
from imagegen_cli.errors import ConfigError, UsageError

app = typer.Typer(help="Show and change settings and keys (config.toml).",
                  no_args_is_help=True, rich_markup_mode=None)


def _path() -> os.PathLike[str]:
    from imagegen_cli.settings.config import config_path

    return config_path(os.environ)


@app.command("path")
def path_cmd() -> None:
    """Print the config file's path (IMAGEGEN_CONFIG or the platform's config folder)."""

    out(str(_path()))


@app.command("show")
def show(json_out: Annotated[bool, typer.Option("--json", help="As JSON.")] = False) -> None:
    """Print the config file, stored keys redacted."""
    from pathlib import Path

    from imagegen_cli.settings import edit as configfile

    path = Path(_path())
    doc = configfile.read_document(path)
    if path.exists():
        from imagegen_cli.settings import config

        for w in config.load(os.environ, missing_ok=True).warnings:
            warn(w)
    if json_out:
        import json

        out(json.dumps(configfile.plain(doc), indent=2))
        return
    if not path.exists():
        note(f"{path} does not exist yet: `imagegen config init` writes a starter file")
        return
    sys.stdout.write(configfile.redacted(doc))


@app.command("get")
def get(
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. defaults.size.",
                                       autocompletion=complete_config_key)],
    effective: Annotated[bool, typer.Option(
        "--effective", help="The value in force (environment, file or built-in default) "
        "and where it comes from, even when the file does not set it.")] = False,
    provider: Annotated[str | None, typer.Option(
        "-p", "--provider", metavar="NAME", autocompletion=complete_provider,
        help="With --effective: the value for this provider ([providers.NAME.defaults]).")]
    = None,
) -> None:
    """Print one value (stored keys are shown as ***); exit 2 when unset."""
    from pathlib import Path

    from imagegen_cli.settings import edit as configfile

    parts = configfile.split_key(key)
    configfile.schema_type(parts)
    if effective:
        from imagegen_cli.settings.effective import effective_value

        value, source = effective_value(parts, os.environ, provider)
        out(f"{_shown(parts, value)}\t{source}")
        return
    value = configfile.get_value(configfile.read_document(Path(_path())), parts)
    if value is None:
        raise UsageError(f"{key} is not set in {_path()} (`imagegen config get {key} "
                         "--effective` shows the value in force)")
    plain = value.unwrap() if hasattr(value, "unwrap") else value
    out(_shown(parts, plain))


def _shown(parts: list[str], value: object) -> str:
    import json

    from imagegen_cli.settings import edit as configfile

    if value is None:
        return "(unset)"
    if parts[-1] in configfile.SECRET_KEYS:
        return "***"
    return value if isinstance(value, str) else json.dumps(value)


@app.command("set")
def set_cmd(
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. providers.nebula.model.",
                                       autocompletion=complete_config_key)],
    value: Annotated[str | None, typer.Argument(
        help="The value (numbers and true/false are typed). Omit for api_key: it is read "
             "from a hidden prompt, or from stdin when piped.",
        autocompletion=complete_config_value)] = None,
) -> None:
    """Set a value; the file keeps its comments and is written 0600."""
    from pathlib import Path

    from imagegen_cli.settings import edit as configfile

    parts = configfile.split_key(key)
    expected = configfile.schema_type(parts)
    if value is None:
        if parts[-1] not in configfile.SECRET_KEYS:
            raise UsageError(f"config set {key} needs a VALUE")
        value = _read_secret(key)
    parsed = configfile.parse_value(value, expected, key)
    configfile.check_value(parts, parsed, os.environ)
    path = Path(_path())
    with configfile.locked(path):  # read-modify-write: a concurrent one waits its turn
        doc = configfile.read_document(path)
        if parts[0] == "providers" and parts[2] != "type":
            _require_known_provider(doc, parts[1])
        if path.exists():  # a file already bad stays a config error (exit 3), named so
            import tomlkit

            configfile.validate_text(tomlkit.dumps(doc), path, os.environ)
        configfile.set_value(doc, parts, parsed)
        if parts[0] == "providers" and parts[2] == "prices":
            # A price entry is checked as a whole, as loading the file will check it.
            import tomlkit

            from imagegen_cli.errors import ConfigError

            try:
                configfile.validate_text(tomlkit.dumps(doc), path, os.environ)
            except ConfigError as exc:
                why = exc.message.split(": ", 1)[-1]
                raise UsageError(f"{key} = {parsed!r} not stored: {why}") from None
        configfile.save(doc, path, os.environ, changed=f"{key} = {parsed!r}")
    note(f"{key} set in {path}" if parts[-1] not in configfile.SECRET_KEYS
         else f"{key} stored in {path} (mode 600)")


def _require_known_provider(doc: object, name: str) -> None:
    from imagegen_cli.settings import config

    presets = config.load({"XDG_CONFIG_HOME": "/nonexistent", "IMAGEGEN_CONFIG": ""})
    existing = getattr(doc, "get", lambda k: None)("providers") or {}
    if name not in presets.providers and name not in existing:
        raise UsageError(f"No provider '{name}': add it first with `imagegen providers add "
                         f"{name} --type openai --base-url URL`")


def _read_secret(key: str) -> str:
    if sys.stdin is not None and sys.stdin.isatty():
        import getpass

        secret = getpass.getpass(f"{key}: ")
    else:
        secret = sys.stdin.readline().strip() if sys.stdin else ""
    if not secret:
        raise UsageError(f"No value given for {key}")
    from imagegen_cli.secrets import register_secret

    register_secret(secret)
    return secret


@app.command("unset")
def unset(key: Annotated[str, typer.Argument(help="Dotted key.",
                                             autocompletion=complete_config_key)]) -> None:
    """Remove a value from the file."""
    from pathlib import Path

    from imagegen_cli.settings import edit as configfile

    parts = configfile.split_key(key)
    configfile.schema_type(parts)
    path = Path(_path())
    with configfile.locked(path):
        doc = configfile.read_document(path)
        if not configfile.unset_value(doc, parts):
            # The wanted end state holds already: not an error (scripts may run it twice).
            note(f"{key} was not set in {path}; nothing to do")
            return
        configfile.save(doc, path, os.environ)
    note(f"{key} removed from {path}")


@app.command("init")
def init(force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")]
         = False) -> None:
    """Write a commented starter config file."""
    from pathlib import Path

    from imagegen_cli.settings.edit import STARTER, write_private

    path = Path(_path())
    if path.exists() and not force:
        raise UsageError(f"{path} exists: pass --force to replace it")
    write_private(path, STARTER)
    out(str(path))


@app.command("edit")
def edit() -> None:
    """Open the file in $VISUAL or $EDITOR, then check it."""
    from pathlib import Path

    import click

    from imagegen_cli.settings.edit import STARTER, validate_text, write_private

    path = Path(_path())
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise UsageError("Set $VISUAL or $EDITOR to the editor to use")
    if not path.exists():
        write_private(path, STARTER)
    # click runs the editor the way each platform's shell would (Windows paths with
    # spaces included); an EDITOR naming an existing file is quoted as one word.
    command = f'"{editor}"' if os.path.isfile(editor) and not editor.startswith('"') \
        else editor
    try:
        click.edit(filename=str(path), editor=command)
    except click.ClickException as exc:
        raise UsageError(f"Editor '{editor}' failed: {exc.format_message()}") from None
    try:
        cfg = validate_text(path.read_text(encoding="utf-8"), path, os.environ)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (the file was saved; run `imagegen config edit` again)")\
            from None
    if any(p.api_key for p in cfg.providers.values()):
        _keep_private(path)
    note(f"{path} is valid")


def _keep_private(path: Path) -> None:
    """A file holding a key goes back to 0600 after the editor (many save a new file
    with the umask's 0644); where that fails, say so loudly, never just "valid"."""
    import stat

    mode = None
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
            note(f"{path} holds a key: mode set back to 600 (the editor left it "
                 f"{mode:o})")
    except OSError as exc:
        shown = f"mode {mode:o}" if mode is not None else "of unknown mode"
        warn(f"{path} holds a key and is {shown}, and could not be made 600 "
             f"({exc.strerror or exc}): others may read it; run `chmod 600 {path}`")
