"""A job's fallback chain, settled: the providers to try in turn, each with the
request as it validated it, its key and its prices.

`-p a,b,c` (or a batch record's `fallback`, or `fallback = [...]` under
[providers.a]) names the chain. Every provider settles and validates its own copy
of the request here, before anything is sent to anyone: an option a fallback
cannot honour is exit 2 now, not after the first provider failed. The scheduler
runs the chain (calls.run_chain: which errors fall back, and when).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from imagegen_cli.engine.save import batches
from imagegen_cli.engine.settle import settle
from imagegen_cli.errors import ConfigError, UsageError
from imagegen_cli.pricing.costs import estimate, image_cost
from imagegen_cli.types import CallInfo

if TYPE_CHECKING:
    from imagegen_cli.engine.jobs import Job, Member
    from imagegen_cli.engine.options import Context, ImageOptions
    from imagegen_cli.pricing.costs import Estimate
    from imagegen_cli.settings.provider import ProviderConfig
    from imagegen_cli.settings.schema import Config


def split_flag(value: str | None) -> list[str]:
    """`-p a,b,c` -> ['a', 'b', 'c'] (blanks dropped)."""
    if not value:
        return []
    return [p.strip() for p in value.split(",") if p.strip()]


def chain(cfg: Config, primary: ProviderConfig, rest: list[str]) -> list[ProviderConfig]:
    """PRIMARY then its fallbacks: REST from `-p a,b,c` (or a batch record) when given,
    else `fallback = [...]` under [providers.PRIMARY]. Unknown names exit 3."""
    names = rest if rest else list(primary.fallback or ())
    out = [primary]
    for name in names:
        if name not in cfg.providers:
            known = ", ".join(sorted(cfg.providers))
            raise ConfigError(
                f"Unknown fallback provider '{name}' (for {primary.name}): known providers "
                f"are {known}")
        if all(p.name != name for p in out):
            out.append(cfg.providers[name])
    return out


def settle_chain(opts: ImageOptions, ctx: Context, *, inpaint: bool = False,
                 edit: bool = False) -> Job:
    """`settle` for the first provider of OPTS.provider ('a' or 'a,b,c'), then for each
    fallback (the rest of that list, else OPTS.fallback, e.g. a batch record's, else
    `fallback = [...]` under [providers.a]) by that provider's own validation: an option
    a fallback cannot honour is exit 2 here, before anything is sent to anyone.
    A model set for the run names the first provider's; a fallback uses its own default.
    The job carries every member, and a per-image cost function over them."""

    names = list(dict.fromkeys(split_flag(opts.provider)))  # a name once, where it is first
    if opts.provider and ",".join(names) != opts.provider.replace(" ", ""):
        ctx.notice(f"-p {opts.provider}: using " + (",".join(names) or "the default provider")
                   + " (empty names and repeats left out)")
    job = settle(opts.with_(provider=names[0] if names else None), ctx, inpaint=inpaint,
                 edit=edit)
    for pc in chain(ctx.cfg, job.pcfg, names[1:] or list(opts.fallback))[1:]:
        try:
            sub = settle(opts.with_(provider=pc.name, model=pc.model or job.request.model),
                         ctx, inpaint=inpaint, edit=edit)
        except UsageError as exc:
            raise UsageError(f"Fallback provider {pc.name} cannot take this request: "
                             f"{exc}") from None
        job.members.extend(sub.members)
    job.cost_of = cost_function(job.members)
    return job


def require_keys(job: Job, env: Mapping[str, str]) -> None:
    """Every provider of the chain needs its key before anything is sent (exit 3)."""
    for m in job.members:
        if m.provider.needs_key:
            m.key = m.pcfg.require_key(env)


def estimates(job: Job) -> list[Estimate]:
    """The estimated cost of JOB on each provider of its chain."""

    return [estimate(m.pricing, m.request,
                     batches(m.request.n, m.provider.capabilities(m.request.model).max_n))
            for m in job.members]


def cost_function(members: list[Member]
                  ) -> Callable[[CallInfo | None, int, int], tuple[float | None, str | None]]:
    """Per image written: USD from the call's `usage` where the provider reported one,
    else from the price table; (None, None) when unknown."""

    by_name = {m.provider.name: m for m in members}

    def cost_of(info: CallInfo | None, width: int, height: int
                ) -> tuple[float | None, str | None]:
        m = by_name.get(info.provider if info is not None and info.provider else "",
                        members[0])
        count = 1 if m.request.stream else (info.images if info is not None and info.images
                                            else 1)
        usd, source = image_cost(m.pricing, info.usage if info is not None else None, count,
                                 m.request.resolution or m.request.size, m.request.quality,
                                 actual_size=f"{width}x{height}",
                                 input_images=bool(m.request.images))
        # A line answered through the Batch API costs its share of the live price.
        factor = info.extra.get("price_factor") if info is not None else None
        if usd is not None and isinstance(factor, float):
            usd *= factor
        return usd, source

    return cost_of
