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
    # Variables that also hold this provider's key and win over api_key_env when set,
    # in this order: a vendor SDK's own precedence (google-genai reads GOOGLE_API_KEY
    # before GEMINI_API_KEY). Messages name api_key_env first.
    preferred_key_envs: tuple[str, ...] = ()
    model: str | None = None
    mode: str | None = None  # distribute: "sync" | "async" | None (auto)
    preset: bool = False
    # [providers.NAME.prices] (see prices.py) and the providers to try when this one is down
    prices: dict[str, Any] | None = field(default=None, compare=False)
    fallback: list[str] | None = field(default=None, compare=False)
    concurrency: int | None = None  # calls in flight at once (caps -j)
    rpm: float | None = None  # requests per minute
    # The header the key goes in (openai type): "authorization" sends "Bearer KEY"
    # (the default), any other name the key itself (Azure: "api-key").
    key_header: str | None = None
    # Azure's deployment path: .../openai/deployments/{deployment}/...?api-version=V
    api_version: str | None = None
    # The user's own model names (Azure deployments) -> the real model whose rules,
    # lifecycle and prices apply: {"my-deploy": "gpt-image-2.6-flare"}.
    models: dict[str, str] | None = field(default=None, compare=False)
    # The environment variable base_url came from (OPENAI_BASE_URL, ...), said on stderr.
    base_url_env: str | None = None
    # openai type: whether the service takes OpenAI's Batch API (None: only
    # api.openai.com does; see OpenAIProvider.offers_batch_api).
    batch_api: bool | None = None

    def real_model(self, model: str | None) -> str | None:
        """MODEL as the provider knows it: a deployment named in `models` maps to its
        real model; any other name is itself."""
        if model is not None and self.models and model in self.models:
            return self.models[model]
        return model

    @property
    def needs_key(self) -> bool:
        """Declared by the dialect (Provider.needs_key), not guessed here."""

        try:
            return dialect(self.type).needs_key
        except ConfigError:
            return True

    def key_vars(self) -> tuple[str, ...]:
        """Every variable read for the key, the winning one first."""
        return (*self.preferred_key_envs, *((self.api_key_env,) if self.api_key_env else ()))

    def key_var(self, env: Mapping[str, str]) -> str | None:
        """The variable the key comes from, when one is set."""
        return next((v for v in self.key_vars() if env.get(v)), None)

    def key(self, env: Mapping[str, str]) -> str | None:
        """The API key: the environment variable wins over a stored key. A key that
        cannot be sent as is (a stray line break from a paste or a file) is a
        ConfigError naming where it came from, never showing it."""
        var = self.key_var(env)
        if var:
            return _checked_key(env[var], f"The variable {var}",
                                f"export {var}=\"$(printf %s \"${var}\" | tr -d '\\r\\n')\"")
        if self.api_key:
            return _checked_key(self.api_key, f"providers.{self.name}.api_key in the config",
                                f"imagegen config set providers.{self.name}.api_key")
        return None

    def key_source(self, env: Mapping[str, str]) -> str:
        var = self.key_var(env)
        if var:
            return f"set via {var}"
        if self.api_key:
            return "stored in config"
        if not self.needs_key:
            return "not needed"
        return "missing"

    def key_origin(self, env: Mapping[str, str]) -> str:
        """Where the key in use came from, for messages (never the key)."""
        var = self.key_var(env)
        if var:
            return f"environment variable {var}"
        if self.api_key:
            return f"providers.{self.name}.api_key in the config file"
        return "nowhere (no key set)"

    def key_clash(self, env: Mapping[str, str]) -> str | None:
        """A note when two places hold a key for this provider: two key variables (the
        winner named, as google-genai warns), or a variable and a different stored key."""
        set_vars = [v for v in self.key_vars() if env.get(v)]
        if len(set_vars) > 1:
            same = "hold the same key" if len({env[v] for v in set_vars}) == 1 else "differ"
            return (f"{self.name}: {' and '.join(set_vars)} are both set ({same}); using "
                    f"{set_vars[0]}, which comes first (as in the vendor's own SDK)")
        var = self.key_var(env)
        if not (self.api_key and var):
            return None
        if env[var] == self.api_key:
            return None
        return (f"{self.name}: the key in {var} differs from "
                f"providers.{self.name}.api_key in the config file; using {var} "
                "(the environment wins)")

    def require_key(self, env: Mapping[str, str]) -> str:
        key = self.key(env)
        if key:
            return key
        names = " or ".join(dict.fromkeys(
            (*((self.api_key_env,) if self.api_key_env else ()), *self.preferred_key_envs)))
        how = f"set {names} or run" if names else "run"
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


def _from_env(env: Mapping[str, str], var: str) -> str | None:
    value = (env.get(var) or "").strip()
    register_url(value)
    return value or None


def preset_table(env: Mapping[str, str]) -> dict[str, ProviderConfig]:
    tfy_base = env.get("TFY_BASE_URL") or "https://gateway.truefoundry.ai"

    register_url(tfy_base)
    # As openai-python does: OPENAI_BASE_URL for OpenAI (_client.py), AZURE_OPENAI_ENDPOINT
    # for Azure (lib/azure.py), here to the v1 API (Microsoft Learn, API version lifecycle).
    openai_base = _from_env(env, "OPENAI_BASE_URL")
    azure_endpoint = _from_env(env, "AZURE_OPENAI_ENDPOINT")
    presets = [
        ProviderConfig("openai", "openai", openai_base or "https://api.openai.com/v1",
                       "OPENAI_API_KEY", model="gpt-image-2.6-flare",
                       base_url_env="OPENAI_BASE_URL" if openai_base else None),
        ProviderConfig("azure", "openai",
                       azure_endpoint.rstrip("/") + "/openai/v1" if azure_endpoint else None,
                       "AZURE_OPENAI_API_KEY", model=None, key_header="api-key",
                       base_url_env="AZURE_OPENAI_ENDPOINT" if azure_endpoint else None),
        ProviderConfig("xai", "xai", "https://api.x.ai/v1", "XAI_API_KEY",
                       model="grok-imagine-image"),
        ProviderConfig("distribute", "distribute", "https://api.distribute.ai",
                       "DISTRIBUTE_API_KEY", model="Flux.1 [dev]"),
        ProviderConfig("nebula", "nebula", "https://api.nebulablock.com/api/v1",
                       "NEBULA_API_KEY", model="black-forest-labs/FLUX.1-schnell"),
        # BFL's recommended default model (docs.bfl.ai API reference, read 2026-12-05).
        ProviderConfig("bfl", "bfl", "https://api.bfl.ai", "BFL_API_KEY", model="flux-2-pro"),
        ProviderConfig("truefoundry", "openai", tfy_base, "TFY_API_KEY", model=None),
        ProviderConfig("yescale", "openai", "https://api.yescale.io/v1", "YESCALE_API_KEY",
                       model="flux-pro"),
        # google-genai's _api_client.get_env_api_key (googleapis/python-genai at 6680718,
        # read 2026-12-05) takes GOOGLE_API_KEY when both are set; so do we, saying so.
        # The model: see imagegen_cli/providers/gemini_models.py (DEFAULT_MODEL).
        ProviderConfig("gemini", "gemini", "https://generativelanguage.googleapis.com",
                       "GEMINI_API_KEY", preferred_key_envs=("GOOGLE_API_KEY",),
                       model="gemini-nano-banana-2.1"),
        ProviderConfig("local", "local", None, None, model="stabilityai/sd-turbo"),
    ]
    return {p.name: replace(p, preset=True) for p in presets}
