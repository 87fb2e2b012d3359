"""Which model a job uses, and which providers can do what the chosen one cannot.

`pick_model` applies the model's own precedence (-m, the provider's own
defaults.model, then IMAGEGEN_MODEL and the global defaults.model, which name a
model of the default provider). `cannot` and `cannot_inpaint` write the message for
a provider that cannot inpaint or edit, naming the configured providers that can.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from imagegen_cli.errors import ConfigError, ImagegenError
from imagegen_cli.registry import create
from imagegen_cli.settings import config as cfgmod
from imagegen_cli.settings import precedence
from imagegen_cli.settings.precedence import Picked

if TYPE_CHECKING:
    from imagegen_cli.engine.options import Context, ImageOptions
    from imagegen_cli.settings.schema import Config


def pick_model(opts: ImageOptions, ctx: Context, name: str) -> Any:
    """-m, else the provider's own defaults.model, else IMAGEGEN_MODEL and the global
    defaults.model, which name a model of the default provider and so apply only
    when that provider is the one in use (a note says when they are passed over)."""

    cfg, env = ctx.cfg, ctx.env
    if opts.model:
        return Picked(opts.model, precedence.flag("-m"))
    own = cfg.default("model", name)
    if own.source is not None and own.source.name.startswith("providers."):
        return own
    default_name: str | None = name
    if opts.provider is not None:
        try:
            default_name = cfgmod.resolve_provider(cfg, None, env)[0].name
        except ConfigError:
            default_name = None
    env_model = Picked(env.get(cfgmod.ENV_MODEL), precedence.env_source(cfgmod.ENV_MODEL))
    if default_name == name:
        return precedence.pick_from(env_model, own)
    for p in (env_model, own):
        if p.value and p.source is not None:
            of = f" ({default_name})" if default_name else ""
            ctx.notice(f"{p.source.describe()} ({p.value}) names a model of the default "
                       f"provider{of}, not of {name}: using {name}'s own model")
            break
    return Picked(None)


def cannot_inpaint(name: str, cfg: Config, env: Mapping[str, str]) -> str:
    """Which providers can inpaint, preferring the ones with a key set."""
    return cannot("inpaint", name, cfg, env)


def cannot(what: str, name: str, cfg: Config, env: Mapping[str, str]) -> str:
    """Which providers can WHAT ('inpaint' or 'edit'), preferring those with a key set."""

    able = []
    for p in cfg.providers.values():
        try:
            prov = create(p, env)
        except ImagegenError:
            continue
        if what == "inpaint":
            model = prov.inpaint_model()
        else:
            model = prov.default_model()
            model = model if model and prov.capabilities(model).edit else None
        if model:
            ready = not prov.needs_key or bool(p.key(env))
            able.append((not ready, f"{p.name} ({model})"))
    able.sort()
    names = ", ".join(text for _, text in able) or "none configured"
    return f"Provider {name} cannot {what}; providers that can: {names} (pass -p NAME)"
