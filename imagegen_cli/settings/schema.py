"""The config file's text checked and read into a `Config`.

Owns the keys a config file may hold and their types (top level, [defaults],
[providers.NAME], [providers.NAME.defaults]), `parse` (TOML errors with their
line, unknown keys warned about and ignored, wrong types refused naming the file
and line, presets merged with the user's tables), and finding a key's line for
messages. Reading the file, and where it is, stay in config.py.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from imagegen_cli.errors import ConfigError
from imagegen_cli.pricing.table import check_config_prices
from imagegen_cli.registry import dialect_names
from imagegen_cli.secrets import register_url
from imagegen_cli.settings import options
from imagegen_cli.settings.precedence import Picked, Source
from imagegen_cli.settings.provider import ProviderConfig, preset_table


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


ConfigType = type | tuple[type, ...]

PROVIDER_KEYS: dict[str, ConfigType] = {
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
    "key_header": str,
    "api_version": str,
    "models": dict,
    "batch_api": bool,
}


def default_keys(*, per_provider: bool = False) -> dict[str, ConfigType]:
    """[defaults] keys and their types: the default values of the image commands'
    options (settings/options.py). With PER_PROVIDER, those
    [providers.NAME.defaults] may hold: not the provider (it is NAME), nor what caps
    a whole run whichever providers serve it (max_cost)."""
    keys = {o.config: o.config_type for o in options.config_keys(per_provider=per_provider)
            if o.config}
    return keys if per_provider else {**keys, **RUN_KEYS}


# [defaults] keys that are no image option: they shape every run, whatever its provider.
RUN_KEYS: dict[str, ConfigType] = {
    "history": bool,  # record each image written (engine/history.py); IMAGEGEN_HISTORY
}


# The most concurrency or rpm a provider's table may say: more is a typo (or inf).
MAX_RATE = 1_000_000

TOP_KEYS = {"default_provider", "defaults", "providers"}


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=", re.MULTILINE)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _line_in_table(text: str, table: str, key: str) -> int | None:
    """The line of KEY inside [TABLE] (or a dotted TABLE.KEY line), if any."""
    header = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")
    current = ""
    for number, line in enumerate(text.split("\n"), 1):  # (TOML ends lines at \n only)
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


def load_toml(text: str, path: Path) -> dict[str, Any]:
    """TEXT as TOML, or the one message every command gives for a file that is not
    (`Bad config file PATH, line N: ...`), whichever reads it."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if m:
            msg = msg[: m.start()].strip()
            raise ConfigError(f"Bad config file {path}, line {m.group(1)}: {msg}") from None
        raise ConfigError(f"Bad config file {path}: {msg}") from None


def parse(text: str, path: Path, env: Mapping[str, str]) -> Config:

    data = load_toml(text, path)

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

    providers = preset_table(env)
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
        _check_openai_keys(name, fields, path, text)
        base = providers.get(name)
        if base is None:
            if "type" not in fields:
                raise ConfigError(
                    f"Bad config file {_where(path, text, name)}: providers.{name} needs "
                    f"type = one of {', '.join(dialect_names())}"
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
            value = getattr(merged, key)
            if value is not None and not (options.finite(value) and 0 < value <= MAX_RATE):
                raise ConfigError(f"Bad config file {_where(path, text, key, f'providers.{name}')}"
                                  f": providers.{name}.{key} must be more than 0 (and "
                                  f"at most {MAX_RATE:,})")
        providers[name] = merged

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


# An HTTP header name (RFC 9110 token).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _check_openai_keys(name: str, fields: dict[str, Any], path: Path, text: str) -> None:
    """providers.NAME.key_header, .api_version and .models (deployment -> real model)."""
    table = f"providers.{name}"
    if "key_header" in fields:
        header = fields["key_header"]
        if not _HEADER_NAME.fullmatch(header):
            raise ConfigError(f"Bad config file {_where(path, text, 'key_header', table)}: "
                              f"{table}.key_header must be a header name, e.g. \"api-key\" "
                              "or \"Authorization\"")
        fields["key_header"] = header.lower()
    if "api_version" in fields and not re.fullmatch(r"[A-Za-z0-9._-]+",
                                                     fields["api_version"]):
        raise ConfigError(f"Bad config file {_where(path, text, 'api_version', table)}: "
                          f"{table}.api_version must look like 2025-04-01-preview")
    if "models" in fields:
        models = fields["models"]
        if not all(isinstance(k, str) and k and isinstance(v, str) and v
                   for k, v in models.items()):
            raise ConfigError(f"Bad config file {_where(path, text, 'models', table)}: "
                              f"{table}.models maps your deployment names to real models, "
                              'e.g. { my-deploy = "gpt-image-2.6-flare" }')
        fields["models"] = dict(models)
    if "base_url" in fields:
        fields["base_url_env"] = None  # the file's base_url is the one in use


def _check_defaults(table: Any, prefix: str, path: Path, text: str,
                    warnings: list[str]) -> dict[str, Any]:
    """A [defaults] or [providers.NAME.defaults] table: known keys, right types."""
    if not isinstance(table, dict):
        raise ConfigError(f"Bad config file {path}: [{prefix}] must be a table")
    out: dict[str, Any] = {}
    keys = default_keys(per_provider=prefix != "defaults")
    for key, value in table.items():
        line = _line_in_table(text, prefix, key)
        where = f"{path}, line {line}" if line else str(path)
        if key not in keys:
            warnings.append(f"{where}: unknown key '{prefix}.{key}' ignored")
            continue
        if not _check_type(value, keys[key]):
            raise ConfigError(
                f"Bad config file {where}: {prefix}.{key} must be {_type_name(keys[key])}")
        row = options.by_config(key)
        if row is not None and row.value in (int, float):
            try:
                options.typed(row, value)  # TOML reads nan, inf and unbounded integers
            except options.Wrong as exc:
                raise ConfigError(f"Bad config file {where}: {prefix}.{key} must be "
                                  f"{exc.want}") from None
        out[key] = value
    return out
