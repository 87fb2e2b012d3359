"""Load, validate and resolve the TOML config.

Precedence (flag > environment > config file > built-in default) lives in
`pick` and nowhere else.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from imagegen_cli.errors import ConfigError

ENV_CONFIG = "IMAGEGEN_CONFIG"
ENV_PROVIDER = "IMAGEGEN_PROVIDER"
ENV_MODEL = "IMAGEGEN_MODEL"
ENV_OUTPUT = "IMAGEGEN_OUTPUT"


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    type: str
    base_url: str | None = None
    api_key_env: str | None = None
    api_key: str | None = field(default=None, repr=False)
    model: str | None = None
    mode: str | None = None  # distribute: "sync" | "async" | None (auto)
    preset: bool = False

    @property
    def needs_key(self) -> bool:
        """Declared by the dialect (Provider.needs_key), not guessed here."""
        from imagegen_cli.providers.base import dialect

        try:
            return dialect(self.type).needs_key
        except ConfigError:
            return True

    def key(self, env: Mapping[str, str]) -> str | None:
        """The API key: the environment variable wins over a stored key. A key that
        cannot be sent as is (a stray line break from a paste or a file) is a
        ConfigError naming where it came from, never showing it."""
        if self.api_key_env and env.get(self.api_key_env):
            var = self.api_key_env
            return _checked_key(env[var], f"The variable {var}",
                                f"export {var}=\"$(printf %s \"${var}\" | tr -d '\\r\\n')\"")
        if self.api_key:
            return _checked_key(self.api_key, f"providers.{self.name}.api_key in the config",
                                f"imagegen config set providers.{self.name}.api_key")
        return None

    def key_source(self, env: Mapping[str, str]) -> str:
        if self.api_key_env and env.get(self.api_key_env):
            return f"set via {self.api_key_env}"
        if self.api_key:
            return "stored in config"
        if not self.needs_key:
            return "not needed"
        return "missing"

    def require_key(self, env: Mapping[str, str]) -> str:
        key = self.key(env)
        if key:
            return key
        how = f"set {self.api_key_env} or run" if self.api_key_env else "run"
        raise ConfigError(
            f"No key for {self.name}: {how} "
            f"`imagegen config set providers.{self.name}.api_key`"
        )


def _checked_key(key: str, where: str, fix: str) -> str:
    from imagegen_cli.secrets import register_secret

    register_secret(key)
    if "\n" in key or "\r" in key:
        core = key.rstrip("\r\n")
        at = "holds" if "\n" in core or "\r" in core else "ends with"
        raise ConfigError(
            f"{where} {at} a line break, which cannot be sent in a header: remove it "
            f"(a key pasted or read from a file often carries one), e.g. `{fix}`")
    bad = next((c for c in key if not ("!" <= c <= "~")), None)
    if bad is not None:
        what = "a space" if bad == " " else f"the character U+{ord(bad):04X}"
        raise ConfigError(f"{where} holds {what}, which an API key cannot contain: set it "
                          "to the key alone")
    return key


def _preset_table(env: Mapping[str, str]) -> dict[str, ProviderConfig]:
    tfy_base = env.get("TFY_BASE_URL") or "https://gateway.truefoundry.ai"
    from imagegen_cli.secrets import register_url

    register_url(tfy_base)
    presets = [
        ProviderConfig("openai", "openai", "https://api.openai.com/v1", "OPENAI_API_KEY",
                       model="gpt-image-1"),
        ProviderConfig("distribute", "distribute", "https://api.distribute.ai",
                       "DISTRIBUTE_API_KEY", model="Flux.1 [dev]"),
        ProviderConfig("nebula", "nebula", "https://api.nebulablock.com/api/v1",
                       "NEBULA_API_KEY", model="black-forest-labs/FLUX.1-schnell"),
        ProviderConfig("truefoundry", "openai", tfy_base, "TFY_API_KEY", model=None),
        ProviderConfig("yescale", "openai", "https://api.yescale.io/v1", "YESCALE_API_KEY",
                       model="flux-pro"),
        ProviderConfig("local", "local", None, None, model="stabilityai/sd-turbo"),
    ]
    return {p.name: replace(p, preset=True) for p in presets}


PROVIDER_KEYS: dict[str, type | tuple[type, ...]] = {
    "type": str,
    "base_url": str,
    "api_key_env": str,
    "api_key": str,
    "model": str,
    "mode": str,
}

# [defaults] keys and their types: the default values of generate options.
DEFAULT_KEYS: dict[str, type | tuple[type, ...]] = {
    "provider": str,
    "model": str,
    "size": str,
    "aspect": str,
    "output": str,
    "count": int,
    "quality": str,
    "style": str,
    "background": str,
    "moderation": str,
    "format": str,
    "steps": int,
    "guidance": (int, float),
    "negative_prompt": str,
    "timeout": (int, float),
    "retries": int,
    "metadata": bool,
    "sidecar": bool,
}

TOP_KEYS = {"default_provider", "defaults", "providers"}
KNOWN_TYPES = ("openai", "distribute", "nebula", "local")


@dataclass
class Config:
    path: Path
    exists: bool
    data: dict[str, Any]
    providers: dict[str, ProviderConfig]
    defaults: dict[str, Any]
    default_provider: str | None
    warnings: list[str] = field(default_factory=list)


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("imagegen", appauthor=False)) / "config.toml"


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=", re.MULTILINE)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _where(path: Path, text: str, key: str) -> str:
    line = _line_of(text, key)
    return f"{path}, line {line}" if line else str(path)


def _type_name(t: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if isinstance(t, tuple):
        return "a number"
    return names.get(t, t.__name__)


def _check_type(value: Any, expected: type | tuple[type, ...]) -> bool:
    if (expected is int or expected == (int, float)) and isinstance(value, bool):
        return False
    return isinstance(value, expected)


def parse(text: str, path: Path, env: Mapping[str, str]) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if m:
            msg = msg[: m.start()].strip()
            raise ConfigError(f"Bad config file {path}, line {m.group(1)}: {msg}") from None
        raise ConfigError(f"Bad config file {path}: {msg}") from None

    warnings: list[str] = []
    for key in data:
        if key not in TOP_KEYS:
            warnings.append(f"{_where(path, text, key)}: unknown key '{key}' ignored")

    default_provider = data.get("default_provider")
    if default_provider is not None and not isinstance(default_provider, str):
        raise ConfigError(
            f"Bad config file {_where(path, text, 'default_provider')}: "
            "default_provider must be a string"
        )

    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"Bad config file {path}: [defaults] must be a table")
    for key, value in defaults.items():
        if key not in DEFAULT_KEYS:
            warnings.append(f"{_where(path, text, key)}: unknown key 'defaults.{key}' ignored")
            continue
        if not _check_type(value, DEFAULT_KEYS[key]):
            raise ConfigError(
                f"Bad config file {_where(path, text, key)}: defaults.{key} must be "
                f"{_type_name(DEFAULT_KEYS[key])}"
            )

    providers = _preset_table(env)
    tables = data.get("providers", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"Bad config file {path}: [providers] must hold tables")
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"Bad config file {_where(path, text, name)}: providers.{name} must be a table"
            )
        fields: dict[str, Any] = {}
        for key, value in table.items():
            if key not in PROVIDER_KEYS:
                warnings.append(
                    f"{_where(path, text, key)}: unknown key 'providers.{name}.{key}' ignored"
                )
                continue
            if not _check_type(value, PROVIDER_KEYS[key]):
                raise ConfigError(
                    f"Bad config file {_where(path, text, key)}: providers.{name}.{key} "
                    f"must be {_type_name(PROVIDER_KEYS[key])}"
                )
            fields[key] = value
        base = providers.get(name)
        if base is None:
            if "type" not in fields:
                raise ConfigError(
                    f"Bad config file {_where(path, text, name)}: providers.{name} needs "
                    f"type = one of {', '.join(KNOWN_TYPES)}"
                )
            base = ProviderConfig(name=name, type=fields["type"])
        merged = replace(base, **fields)
        if merged.mode not in (None, "sync", "async"):
            raise ConfigError(
                f"Bad config file {_where(path, text, 'mode')}: providers.{name}.mode "
                "must be \"sync\" or \"async\""
            )
        providers[name] = merged

    from imagegen_cli.secrets import register_url

    for p in providers.values():
        register_url(p.base_url)  # a key in userinfo or the query is a secret too
    return Config(
        path=path,
        exists=True,
        data=data,
        providers=providers,
        defaults=dict(defaults),
        default_provider=default_provider,
        warnings=warnings,
    )


def load(env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    path = config_path(env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if env.get(ENV_CONFIG):
            raise ConfigError(
                f"Config file {path} (from {ENV_CONFIG}) does not exist: create it or "
                f"unset {ENV_CONFIG}"
            ) from None
        return Config(path, False, {}, _preset_table(env), {}, None)
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


def pick(flag: Any, env_value: Any, config_value: Any, default: Any) -> Any:
    """Precedence, written once: flag > environment > config file > built-in default."""
    for value in (flag, env_value, config_value):
        if value is not None and value != "":
            return value
    return default


def resolve_provider(
    cfg: Config, flag: str | None, env: Mapping[str, str]
) -> tuple[ProviderConfig, str | None]:
    """The provider to use, and a notice when it was chosen automatically."""
    name = pick(flag, env.get(ENV_PROVIDER), cfg.defaults.get("provider") or cfg.default_provider,
                None)
    if name is not None:
        if name not in cfg.providers:
            known = ", ".join(sorted(cfg.providers))
            raise ConfigError(
                f"Unknown provider '{name}': known providers are {known}; add one with "
                f"a [providers.{name}] table in {cfg.path}"
            )
        return cfg.providers[name], None
    for p in cfg.providers.values():
        if p.needs_key and p.key(env):
            return p, None
    local = cfg.providers.get("local")
    if local is not None and _local_available():
        return local, "No provider configured and no API key set: using the local model"
    lines = ", ".join(
        f"{p.api_key_env} ({p.name})" for p in cfg.providers.values() if p.api_key_env
    )
    raise ConfigError(
        "No provider configured: set one of " + lines + ", or pass -p NAME, or set "
        f"default_provider in {cfg.path}, or install the local model: "
        "pip install 'imagegen-cli[local]'"
    )


def _local_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("diffusers") is not None
