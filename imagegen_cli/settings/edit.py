"""Edit the config file in place: dotted keys, typed and validated values, the
user's comments and layout kept (tomlkit), written atomically with mode 0600."""

from __future__ import annotations

import contextlib
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from imagegen_cli.errors import ConfigError, OutputError, UsageError
from imagegen_cli.files.atomic import open_nofollow, rewrite
from imagegen_cli.registry import dialect_names
from imagegen_cli.secrets import redact
from imagegen_cli.settings import config, schema
from imagegen_cli.settings.rules import check_base_url, check_default
from imagegen_cli.settings.schema import Config

STARTER = """\
# imagegen configuration (README: Configuration).
# Precedence: command-line flag > environment variable > this file > built-in default.

# The provider used when -p is not given (else the first preset whose key is set).
# default_provider = "openai"

[defaults]
# size = "1024x1024"
# output = "{date}-{time}-{prompt}-{index}.{ext}"
# format = "png"
# timeout = 300
# retries = 2

# Presets (openai, distribute, nebula, truefoundry, yescale) work without a table;
# a table overrides their fields. Keys: prefer api_key_env over a stored api_key.
# [providers.openai]
# model = "gpt-image-2.6-flare"

# An OpenAI-compatible gateway:
# [providers.mygateway]
# type = "openai"
# base_url = "https://gateway.example.com/v1"
# api_key_env = "MYGATEWAY_API_KEY"
# model = "gpt-image-2.6-flare"
"""

SECRET_KEYS = {"api_key"}


def read_document(path: Path) -> Any:
    import tomlkit

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.document()
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror or exc}") from None
    schema.load_toml(text, path)  # a broken file: the message every command gives
    try:
        return tomlkit.parse(text)
    except Exception as exc:  # noqa: BLE001 - tomlkit's ParseError has no common base
        raise ConfigError(f"Bad config file {path}: {exc}") from None


# What a price entry holds (pricing/table.py ENTRY_KEYS), to find where a model id
# with dots in it ends in an unquoted key.
PRICE_FIELDS = ("per_image", "tokens", "source", "date", "per_image_source",
                "per_image_date", "tokens_source", "tokens_date")


def split_key(key: str) -> list[str]:
    """A dotted key's parts. A part may be "double-quoted", as in TOML, to hold dots or
    slashes (`providers.tfy.prices."openai-main/gpt-image-2".per_image`); in a price
    key the model id may also go unquoted: everything between `prices.` and the entry's
    field (per_image, tokens, source) is the model."""
    parts: list[str] = []
    quoted: list[bool] = []
    i, n = 0, len(key)
    while i <= n:
        if i < n and key[i] == '"':
            end = key.find('"', i + 1)
            if end < 0 or (end + 1 < n and key[end + 1] != "."):
                raise UsageError(f"Bad key '{key}': a quoted part must end with \" before "
                                 "the next dot")
            parts.append(key[i + 1:end])
            quoted.append(True)
            i = end + 2
            continue
        end = key.find(".", i)
        end = n if end < 0 else end
        parts.append(key[i:end])
        quoted.append(False)
        i = end + 1
    if not all(parts):
        raise UsageError(f"Bad key '{key}': use dotted names like defaults.size or "
                         "providers.nebula.model")
    if len(parts) > 4 and parts[0] == "providers" and parts[2] == "prices" \
            and not quoted[3]:
        stop = next((j for j in range(4, len(parts)) if parts[j] in PRICE_FIELDS and
                     not quoted[j]), len(parts))
        parts = [*parts[:3], ".".join(parts[3:stop]), *parts[stop:]]
    return parts


def schema_type(parts: list[str]) -> schema.ConfigType:
    """The type a dotted key holds, or UsageError naming the known keys."""
    if parts == ["default_provider"]:
        return str
    if len(parts) == 2 and parts[0] == "defaults":
        keys = schema.default_keys()
        if parts[1] in keys:
            return keys[parts[1]]
        raise UsageError(f"Unknown key 'defaults.{parts[1]}'; known: "
                         + ", ".join(sorted(keys)))
    if len(parts) == 4 and parts[0] == "providers" and parts[2] == "defaults":
        keys = schema.default_keys(per_provider=True)
        if parts[3] in keys:
            return keys[parts[3]]
        raise UsageError(f"Unknown key '{'.'.join(parts)}'; known: "
                         + ", ".join(sorted(keys)))
    if len(parts) >= 3 and parts[0] == "providers" and parts[2] == "prices":
        return object  # a number, a string or an inline table: checked once set
    if len(parts) == 3 and parts[0] == "providers":
        if parts[2] in schema.PROVIDER_KEYS:
            return schema.PROVIDER_KEYS[parts[2]]
        raise UsageError(f"Unknown key 'providers.{parts[1]}.{parts[2]}'; known: "
                         + ", ".join(sorted(schema.PROVIDER_KEYS)))
    raise UsageError(f"Unknown key '{'.'.join(parts)}': keys are default_provider, "
                     "defaults.KEY, providers.NAME.KEY and providers.NAME.defaults.KEY")


def parse_value(raw: str, expected: type | tuple[type, ...], key: str) -> Any:
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if expected is str:
        return raw if not isinstance(value, str) else value
    if expected is list:  # providers.NAME.fallback: "b,c" or ["b", "c"]
        items = value if isinstance(value, list) else [
            x.strip() for x in raw.split(",") if x.strip()]
        if items and all(isinstance(x, str) and x for x in items):
            return items
        raise UsageError(f"{key} takes provider names, e.g. nebula,local")
    if expected is object:  # providers.NAME.prices...: as TOML (a number, {...}), or text
        if key.count(".") == 2 and key.endswith(".prices") and not isinstance(value, dict):
            raise UsageError(f"{key} is a table of model = price: set one model's with "
                             f"`imagegen config set {key}.\"MODEL\" USD`")
        return value
    if expected is bool:
        if isinstance(value, bool):
            return value
        raise UsageError(f"{key} takes true or false, not '{raw}'")
    if expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UsageError(f"{key} takes a whole number, not '{raw}'")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise UsageError(f"{key} takes a number, not '{raw}'")


def get_value(doc: Any, parts: list[str]) -> Any:
    node = doc
    for p in parts:
        if not hasattr(node, "get") or p not in node:
            return None
        node = node[p]
    return node


def set_value(doc: Any, parts: list[str], value: Any) -> None:
    import tomlkit

    node = doc
    for i, p in enumerate(parts[:-1]):
        if p not in node:
            # providers.NAME becomes [providers.NAME], not an inline table.
            super_table = parts[0] == "providers" and (
                i == 0 or (i == 1 and len(parts) == 4)
                or (parts[2] == "prices" and i < len(parts) - 2))
            node[p] = tomlkit.table(is_super_table=super_table)
        node = node[p]
        if not hasattr(node, "get"):
            raise UsageError(f"'{'.'.join(parts[: i + 1])}' is a value, not a table")
    node[parts[-1]] = value


def unset_value(doc: Any, parts: list[str]) -> bool:
    node = doc
    for p in parts[:-1]:
        if p not in node:
            return False
        node = node[p]
    if parts[-1] not in node:
        return False
    del node[parts[-1]]
    # Drop tables left empty by the removal (providers.NAME after its last key).
    if len(parts) >= 4 and parts[0] == "providers":
        for depth in range(len(parts) - 1, 2, -1):
            table = get_value(doc, parts[:depth])
            if table is not None and hasattr(table, "get") and not table:
                del get_value(doc, parts[:depth - 1])[parts[depth - 1]]
    if len(parts) >= 3 and parts[0] == "providers" and not doc["providers"][parts[1]]:
        del doc["providers"][parts[1]]
    return True


def check_value(parts: list[str], value: Any, env: Mapping[str, str]) -> None:
    """UsageError (exit 2) for a value the matching flag would refuse: `config set`
    checks before it writes."""
    try:
        _check_value(parts, value, env)
    except UsageError as exc:
        raise UsageError(f"{'.'.join(parts)} = {value!r} not stored: {exc.message}") from None


def _check_value(parts: list[str], value: Any, env: Mapping[str, str]) -> None:

    if parts[0] == "defaults":
        check_default(parts[1], value, config.load(env, missing_ok=True))
    elif len(parts) == 4:
        cfg = config.load(env, missing_ok=True)
        check_default(parts[3], value, cfg, provider=parts[1] if parts[1] in cfg.providers
                      else None)
    elif parts[-1] == "mode" and value not in ("sync", "async"):
        raise UsageError(f"{'.'.join(parts)} takes \"sync\" or \"async\", not '{value}'")
    elif parts[-1] == "base_url":

        try:
            check_base_url(str(value), parts[1])
        except ConfigError as exc:
            raise UsageError(str(exc)) from None


def validate_text(text: str, path: Path, env: Mapping[str, str]) -> Config:
    cfg = schema.parse(text, path, env)

    for p in cfg.providers.values():
        if p.type not in dialect_names():
            raise ConfigError(f"Bad config file {path}: providers.{p.name}.type '{p.type}' "
                              f"is not one of {', '.join(dialect_names())}")
    if cfg.default_provider and cfg.default_provider not in cfg.providers:
        raise ConfigError(f"Bad config file {path}: default_provider '{cfg.default_provider}'"
                          " is not a known provider: use one of "
                          + ", ".join(sorted(cfg.providers)))
    return cfg


def save(doc: Any, path: Path, env: Mapping[str, str], changed: str | None = None) -> None:
    """Check the whole new text, then write it. CHANGED ("KEY = VALUE", from `config
    set`): the file read was fine, so a problem is that value's, exit 2 (not stored)."""
    import tomlkit

    text = tomlkit.dumps(doc)
    try:
        validate_text(text, path, env)
    except ConfigError as exc:
        if changed is None:
            raise
        why = re.sub(rf"^Bad config file {re.escape(str(path))}(, line \d+)?: ", "",
                     exc.message)
        raise UsageError(f"{changed} not stored: {why}") from None
    write_private(path, text)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the config file PATH across a read-modify-write, so
    concurrent `config set` / `providers add` runs each see the others' changes (none
    is lost). The lock is a flock on `.NAME.lock` beside the file (beside a symlink's
    target: every path to one file shares one lock), never followed if a symlink."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; writes stay atomic, just not serialised
        yield
        return
    target = Path(os.path.realpath(path))
    lock = target.with_name(f".{target.name}.lock")
    try:
        _make_folder(target.parent)
        fd = open_nofollow(lock, os.O_RDWR | os.O_CREAT, 0o600, "config lock",
                           "remove it and run the command again")
    except OSError as exc:
        raise ConfigError(f"Cannot lock the config file {path} ({lock}): "
                          f"{exc.strerror or exc}") from None
    except OutputError as exc:
        raise ConfigError(str(exc)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _make_folder(folder: Path) -> None:
    """FOLDER, made 0700 if missing (a folder the user chose keeps its mode)."""
    if not folder.exists():
        try:
            folder.mkdir(parents=True, mode=0o700)
        except FileExistsError:
            return  # made by a concurrent run a moment ago (it sets the mode)
        folder.chmod(0o700)


def write_private(path: Path, text: str) -> None:
    """Write a file that may hold keys: mode 0600 (or stricter, as it was), in a folder
    made 0700 when we create it (a folder the user chose keeps its mode); a symlinked
    file is written through to its target (the link stays)."""

    try:
        _make_folder(path.parent)
        rewrite(path, text.encode("utf-8"), mode=0o600)
    except OSError as exc:
        raise ConfigError(f"Cannot create the folder {path.parent}: "
                          f"{exc.strerror or exc}") from None
    except OutputError as exc:
        raise ConfigError(str(exc)) from None


def redacted(doc: Any) -> str:
    """The file's text with every stored key replaced by ***."""
    import tomlkit

    copy = tomlkit.parse(tomlkit.dumps(doc))
    for table in (copy.get("providers") or {}).values():
        if hasattr(table, "get"):
            for k in SECRET_KEYS:
                if k in table:
                    table[k] = "***"

    return redact(str(tomlkit.dumps(copy)))  # and keys inside URLs (base_url userinfo)


def plain(doc: Any) -> Any:
    """A JSON-able copy, stored keys redacted."""
    data = doc.unwrap() if hasattr(doc, "unwrap") else dict(doc)
    for table in (data.get("providers") or {}).values():
        if isinstance(table, dict):
            for k in SECRET_KEYS:
                if k in table:
                    table[k] = "***"
    return _redact_strings(data)


def _redact_strings(value: Any) -> Any:

    if isinstance(value, dict):
        return {k: _redact_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_strings(v) for v in value]
    return redact(value) if isinstance(value, str) else value
