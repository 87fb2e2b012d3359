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
ENV_MAX_COST = "IMAGEGEN_MAX_COST"


@dataclass(frozen=True)
class Source:
    """Where a setting's value came from, so every message about it can say so.

    kind: "flag" (name is the flag), "env" (the variable), "config" (the dotted key,
    with the file and line), or "default" (built in).
    """

    kind: str
    name: str = ""
    path: Path | None = None
    line: int | None = None

    def describe(self) -> str:
        if self.kind == "flag":
            return f"flag {self.name}"
        if self.kind == "env":
            return f"environment variable {self.name}"
        if self.kind == "config":
            where = f"{self.path}, line {self.line}" if self.line else str(self.path)
            return f"{self.name} in {where}"
        return "the built-in default"

    @property
    def global_default(self) -> bool:
        """A [defaults] value: meant for every provider, so skippable for one."""
        return self.kind == "config" and self.name.startswith("defaults.")


@dataclass(frozen=True)
class Picked:
    """A resolved setting: its value and where it came from (None: nowhere)."""

    value: Any
    source: Source | None = None

    @property
    def is_set(self) -> bool:
        return self.source is not None and self.source.kind != "default"


def flag(name: str) -> Source:
    return Source("flag", name)


def env_source(name: str) -> Source:
    return Source("env", name)


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
    # [providers.NAME.prices] (see prices.py) and the providers to try when this one is down
    prices: dict[str, Any] | None = field(default=None, compare=False)
    fallback: list[str] | None = field(default=None, compare=False)
    concurrency: int | None = None  # calls in flight at once (caps -j)
    rpm: float | None = None  # requests per minute

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

    def key_origin(self, env: Mapping[str, str]) -> str:
        """Where the key in use came from, for messages (never the key)."""
        if self.api_key_env and env.get(self.api_key_env):
            return f"environment variable {self.api_key_env}"
        if self.api_key:
            return f"providers.{self.name}.api_key in the config file"
        return "nowhere (no key set)"

    def key_clash(self, env: Mapping[str, str]) -> str | None:
        """A note when a stored key and the key variable are both set and differ."""
        if not (self.api_key and self.api_key_env and env.get(self.api_key_env)):
            return None
        if env[self.api_key_env] == self.api_key:
            return None
        return (f"{self.name}: the key in {self.api_key_env} differs from "
                f"providers.{self.name}.api_key in the config file; using {self.api_key_env} "
                "(the environment wins)")

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
                       model="gpt-image-2.6-flare"),
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
    "prices": dict,
    "fallback": list,
    "concurrency": int,
    "rpm": (int, float),
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
    "max_cost": (int, float),
    "preview": bool,
}

# [providers.NAME.defaults]: the same keys, less the provider (it is NAME).
# max_cost caps a whole run, whichever providers serve it: not per provider.
PROVIDER_DEFAULT_KEYS = {k: v for k, v in DEFAULT_KEYS.items()
                         if k not in ("provider", "max_cost")}

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
    # [providers.NAME.defaults]: the same keys as [defaults], for one provider.
    provider_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    text: str = ""

    def source_of(self, dotted: str) -> Source:
        """A config Source for DOTTED (e.g. defaults.size), with its line when found."""
        leaf = dotted.rsplit(".", 1)[-1]
        line = _line_in_table(self.text, dotted.rsplit(".", 1)[0], leaf) if self.text else None
        return Source("config", dotted, self.path, line)

    def default(self, key: str, provider: str | None = None) -> Picked:
        """KEY's config value for PROVIDER: [providers.NAME.defaults] first, then
        [defaults]. Picked(None) when neither sets it."""
        if provider is not None:
            table = self.provider_defaults.get(provider, {})
            if table.get(key) is not None:
                return Picked(table[key], self.source_of(f"providers.{provider}.defaults.{key}"))
        if self.defaults.get(key) is not None:
            return Picked(self.defaults[key], self.source_of(f"defaults.{key}"))
        return Picked(None)


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(ENV_CONFIG):
        return Path(os.path.expanduser(env[ENV_CONFIG]))  # "~nouser" stays as typed
    import platformdirs

    return Path(platformdirs.user_config_dir("imagegen", appauthor=False)) / "config.toml"


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=", re.MULTILINE)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _line_in_table(text: str, table: str, key: str) -> int | None:
    """The line of KEY inside [TABLE] (or a dotted TABLE.KEY line), if any."""
    header = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        m = header.match(line)
        if m:
            current = m.group(1).strip().replace(" ", "").replace('"', "")
            continue
        k = re.match(r"^\s*([A-Za-z0-9_.\-\"]+)\s*=", line)
        if not k:
            continue
        full = ".".join(p for p in (current, k.group(1).replace('"', "")) if p)
        if full == f"{table}.{key}" if table else full == key:
            return number
    return None


def _where(path: Path, text: str, key: str, table: str | None = None) -> str:
    # In a table, the key's own line: the same key in another table is not it.
    line = _line_of(text, key) if table is None else _line_in_table(text, table, key)
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

    defaults = _check_defaults(data.get("defaults", {}), "defaults", path, text, warnings)
    provider_defaults: dict[str, dict[str, Any]] = {}

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
            if key == "defaults":
                provider_defaults[name] = _check_defaults(
                    value, f"providers.{name}.defaults", path, text, warnings)
                continue
            if key not in PROVIDER_KEYS:
                warnings.append(
                    f"{_where(path, text, key, f'providers.{name}')}: unknown key "
                    f"'providers.{name}.{key}' ignored"
                )
                continue
            if not _check_type(value, PROVIDER_KEYS[key]):
                raise ConfigError(
                    f"Bad config file {_where(path, text, key, f'providers.{name}')}: "
                    f"providers.{name}.{key} "
                    f"must be {_type_name(PROVIDER_KEYS[key])}"
                )
            fields[key] = value
        _check_cost_keys(name, fields, path, text)
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
                f"Bad config file {_where(path, text, 'mode', f'providers.{name}')}: "
                f"providers.{name}.mode "
                "must be \"sync\" or \"async\""
            )
        for key in ("concurrency", "rpm"):
            if getattr(merged, key) is not None and getattr(merged, key) <= 0:
                raise ConfigError(f"Bad config file {_where(path, text, key, f'providers.{name}')}"
                                  f": providers.{name}.{key} must be more than 0")
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
        provider_defaults=provider_defaults,
        text=text,
    )


def _check_cost_keys(name: str, fields: dict[str, Any], path: Path, text: str) -> None:
    """providers.NAME.prices (checked here, so a bad table fails at load) and .fallback."""
    if "prices" in fields:
        from imagegen_cli.prices import check_config_prices

        raw = fields["prices"]
        for model in raw:
            try:
                check_config_prices(name, {model: raw[model]})
            except ConfigError as exc:
                where = next((_where(path, text, k) for k in (f'"{model}"', model, "per_image",
                                                              "tokens", "prices")
                              if _line_of(text, k)), str(path))
                raise ConfigError(f"Bad config file {where}: {exc}") from None
    if "fallback" in fields:
        chain = fields["fallback"]
        if not all(isinstance(x, str) and x for x in chain):
            raise ConfigError(
                f"Bad config file {_where(path, text, 'fallback')}: providers.{name}.fallback "
                'must be a list of provider names, e.g. ["nebula", "local"]')
        fields["fallback"] = list(chain)


def _check_defaults(table: Any, prefix: str, path: Path, text: str,
                    warnings: list[str]) -> dict[str, Any]:
    """A [defaults] or [providers.NAME.defaults] table: known keys, right types."""
    if not isinstance(table, dict):
        raise ConfigError(f"Bad config file {path}: [{prefix}] must be a table")
    out: dict[str, Any] = {}
    keys = DEFAULT_KEYS if prefix == "defaults" else PROVIDER_DEFAULT_KEYS
    for key, value in table.items():
        line = _line_in_table(text, prefix, key)
        where = f"{path}, line {line}" if line else str(path)
        if key not in keys:
            warnings.append(f"{where}: unknown key '{prefix}.{key}' ignored")
            continue
        if not _check_type(value, keys[key]):
            raise ConfigError(
                f"Bad config file {where}: {prefix}.{key} must be {_type_name(keys[key])}")
        out[key] = value
    return out


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


def pick_from(*candidates: Picked, default: Any = None) -> Picked:
    """Precedence, written once: the first candidate that is set wins. Callers pass
    them in the order flag > environment > config file; DEFAULT comes last."""
    for c in candidates:
        if c.value is not None and c.value != "":
            return c
    return Picked(default, Source("default") if default is not None else None)


def pick(flag: Any, env_value: Any, config_value: Any, default: Any) -> Any:
    """`pick_from` for plain values, when the source is not needed."""
    return pick_from(Picked(flag), Picked(env_value), Picked(config_value),
                     default=default).value


def setting(
    cfg: Config,
    key: str,
    flag_value: Any,
    flag_name: str,
    env: Mapping[str, str] | None = None,
    env_var: str | None = None,
    *,
    provider: str | None = None,
    default: Any = None,
) -> Picked:
    """One option's value and source: the flag, then ENV_VAR, then
    [providers.PROVIDER.defaults], then [defaults], then DEFAULT."""
    env_value = env.get(env_var) if env is not None and env_var else None
    return pick_from(
        Picked(flag_value, flag(flag_name)),
        Picked(env_value, env_source(env_var) if env_var else None),
        cfg.default(key, provider),
        default=default,
    )


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
            known = ", ".join(sorted(cfg.providers))
            where = (f" (set by {picked.source.describe()})"
                     if picked.source is not None and picked.source.kind != "flag" else "")
            raise ConfigError(
                f"Unknown provider '{name}'{where}: known providers are {known}; add one "
                f"with a [providers.{name}] table in {cfg.path}"
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
        f"default_provider in {cfg.path}, or install the local model: {install_local()}"
    )


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
