"""Find, read and resolve the TOML config.

Owns finding and reading the config file (`load`, `config_path`), the file's
permission check, and which provider a command uses (`resolve_provider`). Beside
it: schema.py (the keys a file may hold, `parse`, and the `Config` it becomes),
precedence.py (`Source`, `Picked`, and precedence, flag > environment > config
file > built-in default, written once in `pick_from`), provider.py
(`ProviderConfig`, keys, presets).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from imagegen_cli.errors import ConfigError
from imagegen_cli.settings.precedence import Picked, Source, env_source, pick_from
from imagegen_cli.settings.provider import ProviderConfig, preset_table
from imagegen_cli.settings.schema import Config, parse

ENV_CONFIG = "IMAGEGEN_CONFIG"
ENV_PROVIDER = "IMAGEGEN_PROVIDER"
ENV_MODEL = "IMAGEGEN_MODEL"
ENV_OUTPUT = "IMAGEGEN_OUTPUT"
ENV_MAX_COST = "IMAGEGEN_MAX_COST"


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(ENV_CONFIG):
        return Path(os.path.expanduser(env[ENV_CONFIG]))  # "~nouser" stays as typed
    import platformdirs

    return Path(platformdirs.user_config_dir("imagegen", appauthor=False)) / "config.toml"


def load(env: Mapping[str, str] | None = None, *, missing_ok: bool = False) -> Config:
    """The config in force. MISSING_OK: a file named by IMAGEGEN_CONFIG that does not
    exist yet is empty (for `config` commands, which create it)."""
    env = os.environ if env is None else env
    path = config_path(env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if env.get(ENV_CONFIG) and not missing_ok:
            raise ConfigError(
                f"Config file {path} (from {ENV_CONFIG}) does not exist: create it or "
                f"unset {ENV_CONFIG}"
            ) from None
        return Config(path, False, {}, preset_table(env), {}, None)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc}") from None
    cfg = parse(text, path, env)
    cfg.warnings.extend(permission_warnings(path, cfg))
    return cfg


def permission_warnings(path: Path, cfg: Config) -> list[str]:
    """A file holding a key must not be readable by group or others."""
    if os.name != "posix":
        return []
    if not any(p.api_key for p in cfg.providers.values()):
        return []
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if mode & 0o077:
        return [
            f"{path} holds an API key and is readable by others (mode {mode & 0o777:o}): "
            f"run `chmod 600 {path}`"
        ]
    return []


def resolve_provider(
    cfg: Config, flag: str | None, env: Mapping[str, str]
) -> tuple[ProviderConfig, str | None]:
    """The provider to use, and a notice when it was chosen automatically."""
    picked = pick_from(
        Picked(flag, Source("flag", "-p")),
        Picked(env.get(ENV_PROVIDER), env_source(ENV_PROVIDER)),
        Picked(cfg.defaults.get("provider"), cfg.source_of("defaults.provider")),
        Picked(cfg.default_provider, cfg.source_of("default_provider")),
    )
    name = picked.value
    if name is not None:
        if name not in cfg.providers:
            where = (f" (set by {picked.source.describe()})"
                     if picked.source is not None and picked.source.kind != "flag" else "")
            raise unknown_provider(cfg, name, where)
        return cfg.providers[name], None
    keyed = [p for p in cfg.providers.values() if p.needs_key and p.key(env)]
    if keyed:
        p = keyed[0]
        if p.name == "openai" and len(keyed) == 1:
            return p, None  # the Quick start: OPENAI_API_KEY alone means OpenAI
        # Any other pick is a guess worth a line (a stray DISTRIBUTE_API_KEY).
        var = p.key_var(env)
        why = f"{var} is set" if var else f"providers.{p.name}.api_key is in {cfg.path}"
        also = (f" (the first of {len(keyed)} providers with a key: "
                + ", ".join(k.name for k in keyed) + ")" if len(keyed) > 1 else "")
        return p, (f"using provider {p.name}: no provider was named (-p, {ENV_PROVIDER}, "
                   f"default_provider) and {why}{also}; pass -p NAME or run `imagegen "
                   "config set default_provider NAME` to choose")
    local = cfg.providers.get("local")
    if local is not None and _local_available():
        return local, "No provider configured and no API key set: using the local model"
    lines = ", ".join(
        f"{p.api_key_env} ({p.name})" for p in cfg.providers.values() if p.api_key_env
    )
    raise ConfigError(
        "No provider configured: set one of " + lines + ", or pass -p NAME, or set "
        f"default_provider in {cfg.path}, or install the local model: {install_local()}"
    )


def unknown_provider(cfg: Config, name: str, where: str = "") -> ConfigError:
    """The error for a provider NAME the config does not know: the closest known name,
    and how to add one."""
    import difflib

    known = sorted(cfg.providers)
    close = difflib.get_close_matches(name.strip().lower(), known, n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(
        f"Unknown provider '{name}'{where}.{hint} Known providers: {', '.join(known)}; "
        f"add one with `imagegen providers add {name or 'NAME'} --type openai --base-url URL`")


def install_local() -> str:
    """The command that adds the `local` extra for how imagegen was installed: from
    a checkout (its folder), from a git URL (that URL), else from a checkout. The
    package is not on PyPI yet, so `pip install 'imagegen-cli[local]'` would fail."""
    import json
    from importlib import metadata

    try:
        raw = metadata.distribution("imagegen-cli").read_text("direct_url.json")
        info = json.loads(raw) if raw else {}
    except (metadata.PackageNotFoundError, ValueError):
        info = {}
    url = str(info.get("url") or "")
    vcs = info.get("vcs_info")
    if url.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        folder = unquote(urlsplit(url).path)
        return f"pip install '{folder}[local]'"
    if isinstance(vcs, dict) and url:
        return f"pip install 'imagegen-cli[local] @ {vcs.get('vcs', 'git')}+{url}'"
    return "pip install '.[local]' (in a checkout of imagegen)"


def _local_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("diffusers") is not None
