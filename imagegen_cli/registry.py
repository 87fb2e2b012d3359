"""The provider registry: dialect names -> Provider classes, loaded by "module:Class".

Built-in dialects and plugins (entry-point group ``imagegen.providers``) go
through the same `register` call; a dialect's module is imported only when a
provider of its type is used, so nothing here imports a provider.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from imagegen_cli.errors import ConfigError

if TYPE_CHECKING:
    from imagegen_cli.providers.base import Provider
    from imagegen_cli.settings.provider import ProviderConfig

BUILTINS = {
    "openai": "imagegen_cli.providers.openai:OpenAIProvider",
    "xai": "imagegen_cli.providers.xai:XAIProvider",
    "distribute": "imagegen_cli.providers.distribute:DistributeProvider",
    "nebula": "imagegen_cli.providers.nebula:NebulaProvider",
    "gemini": "imagegen_cli.providers.gemini:GeminiProvider",
    "bfl": "imagegen_cli.providers.bfl:BFLProvider",
    "local": "imagegen_cli.providers.local:LocalProvider",
}
ENTRY_POINT_GROUP = "imagegen.providers"

_registry: dict[str, str | type[Provider]] = {}
_loaded = False


def register(type_name: str, target: str | type[Provider]) -> None:
    """Make a dialect available under TYPE_NAME ('module:Class' or the class)."""
    _registry[type_name] = target


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for name, target in BUILTINS.items():
        register(name, target)
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        # A built-in name keeps meaning the built-in dialect: installing a package
        # never reroutes the key set for `openai` to someone else's code.
        if ep.name not in BUILTINS:
            register(ep.name, ep.value)
    _loaded = True


def dialect_names() -> list[str]:
    _load()
    return sorted(_registry)


def dialect(type_name: str) -> type[Provider]:
    # A built-in type needs no look at the installed packages' entry points (importing
    # importlib.metadata and reading every distribution costs a one-image run ~30 ms).
    target = _registry.get(type_name) or BUILTINS.get(type_name)
    if target is None:
        _load()
        target = _registry.get(type_name)
    if target is None:
        raise ConfigError(
            f"Unknown provider type '{type_name}': known types are "
            + ", ".join(dialect_names())
        )
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            # A plugin installed broken (or half uninstalled) is the user's setup to fix,
            # not an internal error: say which entry point and why.
            raise ConfigError(
                f"Provider type '{type_name}' cannot be loaded from {target}: {exc} "
                f"(reinstall the package that provides it, or use another type)"
            ) from None
        _registry[type_name] = cls
        return cls  # type: ignore[no-any-return]
    return target


def create(cfg: ProviderConfig, env: Mapping[str, str]) -> Provider:
    return dialect(cfg.type)(cfg, env)
