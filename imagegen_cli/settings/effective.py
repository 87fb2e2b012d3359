"""`config get --effective`: the value in force for a key, and where it comes from,
through the same precedence (`pick_from`) that `generate` uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imagegen_cli.errors import ConfigError
from imagegen_cli.settings import config, options
from imagegen_cli.settings.precedence import Picked, Source, env_source, pick_from
from imagegen_cli.settings.schema import Config

ENV_OF = {"provider": config.ENV_PROVIDER, "model": config.ENV_MODEL,
          "output": config.ENV_OUTPUT}


def effective_value(parts: list[str], env: Mapping[str, str],
                    provider: str | None = None) -> tuple[Any, str]:
    """(value, where it comes from) for the dotted key PARTS."""
    cfg = config.load(env, missing_ok=True)
    if parts == ["default_provider"] or parts == ["defaults", "provider"]:
        return _provider(cfg, env)
    if parts[0] == "defaults" or (len(parts) == 4 and parts[2] == "defaults"):
        key = parts[-1]
        scope = parts[1] if len(parts) == 4 else provider
        env_var = ENV_OF.get(key) if len(parts) == 2 else None
        row = options.by_config(key)
        picked = pick_from(
            Picked(env.get(env_var) if env_var else None,
                   env_source(env_var) if env_var else None),
            cfg.default(key, scope) if len(parts) == 2 else _only_provider(cfg, key, scope),
            default=row.builtin if row else None,
        )
        if picked.source is None:
            return None, f"not set: {row.unset if row else 'the provider decides'}"
        return picked.value, _describe(picked.source)
    name, key = parts[1], parts[2]
    if name not in cfg.providers:
        raise config.unknown_provider(cfg, name)
    p = cfg.providers[name]
    if key == "api_key":
        return ("***" if p.key(env) else None), f"key {p.key_origin(env)}"
    value = getattr(p, key, None)
    for part in parts[3:]:  # into a table: providers.NAME.prices."MODEL".per_image
        value = value.get(part) if isinstance(value, dict) else None
    table = cfg.data.get("providers", {}).get(name, {})
    if key in table:
        return value, _describe(cfg.source_of(f"providers.{name}.{key}"))
    if p.preset:
        return value, f"built-in preset {name}"
    return value, "not set"


def _only_provider(cfg: Config, key: str, scope: str | None) -> Picked:
    picked = cfg.default(key, scope)
    if picked.source is not None and picked.source.name.startswith("providers."):
        return picked
    return Picked(None)


def _provider(cfg: Config, env: Mapping[str, str]) -> tuple[Any, str]:
    if env.get(config.ENV_PROVIDER):
        return env[config.ENV_PROVIDER], _describe(env_source(config.ENV_PROVIDER))
    for key in ("defaults.provider", "default_provider"):
        section, _, leaf = key.rpartition(".")
        value = cfg.defaults.get(leaf) if section else cfg.default_provider
        if value:
            return value, _describe(cfg.source_of(key))
    try:
        chosen, _ = config.resolve_provider(cfg, None, env)
    except ConfigError:
        return None, "not set: no key is set and the local extra is not installed"
    why = "no key set, local extra installed" if not chosen.needs_key else (
        f"the first preset whose key is set ({chosen.api_key_env})")
    return chosen.name, f"chosen automatically: {why}"


def _describe(source: Source) -> str:
    return "from " + source.describe() if source.kind != "default" else "built-in default"
