"""One provider's configuration, and the built-in presets.

Owns `ProviderConfig` (type, base URL, where its key comes from, model, prices,
fallback, limits) with the rules for its API key: the environment variable wins
over a stored key, a key that cannot be sent in a header is refused naming where
it came from (never showing it), and where a key came from is said in words.
`preset_table` holds the providers known without a config file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from imagegen_cli.errors import ConfigError
from imagegen_cli.registry import dialect
from imagegen_cli.secrets import register_secret, register_url


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


def preset_table(env: Mapping[str, str]) -> dict[str, ProviderConfig]:
    tfy_base = env.get("TFY_BASE_URL") or "https://gateway.truefoundry.ai"

    register_url(tfy_base)
    presets = [
        ProviderConfig("openai", "openai", "https://api.openai.com/v1", "OPENAI_API_KEY",
                       model="gpt-image-2.6-flare"),
        ProviderConfig("distribute", "distribute", "https://api.distribute.ai",
                       "DISTRIBUTE_API_KEY", model="Flux.1 [dev]"),
        ProviderConfig("nebula", "nebula", "https://api.nebulablock.com/api/v1",
                       "NEBULA_API_KEY", model="black-forest-labs/FLUX.1-schnell"),
        # BFL's recommended default model (docs.bfl.ai API reference, read 2026-12-05).
        ProviderConfig("bfl", "bfl", "https://api.bfl.ai", "BFL_API_KEY", model="flux-2-pro"),
        ProviderConfig("truefoundry", "openai", tfy_base, "TFY_API_KEY", model=None),
        ProviderConfig("yescale", "openai", "https://api.yescale.io/v1", "YESCALE_API_KEY",
                       model="flux-pro"),
        ProviderConfig("local", "local", None, None, model="stabilityai/sd-turbo"),
    ]
    return {p.name: replace(p, preset=True) for p in presets}
