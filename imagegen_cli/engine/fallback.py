"""Provider fallback: when a provider is unavailable, the same request goes to the next.

Only "unavailable" falls back (UnavailableError, exit 6: 429/5xx after retries,
timeouts, connection errors, broken answers). A refusal (exit 5) or a key error
(exit 3/4) would fail the same way elsewhere, or spend money twice: it is raised
as it is. Every provider of the chain has validated its own copy of the request
before anything is sent to anyone (see `members` in cli/generate.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imagegen_cli.engine.budget import BatchBudget
from imagegen_cli.engine.save import batches
from imagegen_cli.engine.settle import settle
from imagegen_cli.errors import ConfigError, UnavailableError, UsageError
from imagegen_cli.pricing.costs import check_cap, estimate, image_cost, money
from imagegen_cli.pricing.lookup import lookup
from imagegen_cli.providers.base import Capabilities, Provider
from imagegen_cli.transport.client import Transport
from imagegen_cli.types import CallInfo, GeneratedImage, ImageRequest, Reporter

if TYPE_CHECKING:
    from imagegen_cli.engine.jobs import Job
    from imagegen_cli.engine.options import Context, ImageOptions
    from imagegen_cli.pricing.costs import Estimate
    from imagegen_cli.pricing.lookup import Pricing
    from imagegen_cli.settings.provider import ProviderConfig
    from imagegen_cli.settings.schema import Config
    from imagegen_cli.transport.call import HttpCall
    from imagegen_cli.transport.client import Transport
    from imagegen_cli.transport.limits import Gate


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


@dataclass
class Member:
    """One provider of a chain, with the request as it validated it."""

    provider: Provider
    req: ImageRequest
    key: str | None
    pricing: Pricing


def _splits(n: int, max_n: int) -> list[tuple[int, int]]:
    """(count, offset) pieces of N images, at most MAX_N a request."""
    out, done = [], 0
    while done < n:
        k = min(n - done, max(max_n, 1))
        out.append((k, done))
        done += k
    return out


class Chain(Provider):
    """Runs each batch on the first member; on UnavailableError before any final image
    of that batch, on the next. Seen by the pipeline as one provider."""

    def __init__(self, members: list[Member], notify: Callable[[str], None],
                 env: Mapping[str, str]) -> None:
        first = members[0].provider
        super().__init__(first.cfg, env)
        self.type_name = first.type_name  # type: ignore[misc]
        self.max_concurrency = first.max_concurrency  # type: ignore[misc]
        self.needs_key = first.needs_key  # type: ignore[misc]
        self.members = members
        self.notify = notify
        self.events: list[dict[str, Any]] = []
        self._transports: dict[int, Transport] = {}
        self._lock = threading.Lock()
        # Set by the scheduler: the Gate (rpm, 429 pause) of a member provider.
        self.gate_for: Callable[[Provider], Gate] | None = None

    def capabilities(self, model: str | None) -> Capabilities:
        return self.members[0].provider.capabilities(model)

    def prepare(self, req: ImageRequest, key: str | None) -> list[HttpCall]:
        return self.members[0].provider.prepare(req, key)

    def _transport(self, i: int, base: Transport) -> Transport:
        if i == 0:
            return base
        with self._lock:  # worker threads share the chain
            if i not in self._transports:

                member = self.members[i].provider
                self._transports[i] = Transport(
                    timeout=base.timeout, retries=base.retries, who=member.name, log=base.log,
                    on_retry=base.on_retry,
                    gate=self.gate_for(member) if self.gate_for else None)
            return self._transports[i]

    def close(self) -> None:
        for tr in self._transports.values():
            tr.close()

    def run(
        self, req: ImageRequest, key: str | None, transport: Transport, reporter: Reporter
    ) -> Iterator[tuple[GeneratedImage, CallInfo]]:
        last = len(self.members) - 1
        for i, m in enumerate(self.members):
            tr = self._transport(i, transport)
            member_key = key if i == 0 else m.key
            finals = 0
            caps = m.provider.capabilities(m.req.model)
            try:
                for count, offset in _splits(req.n, caps.max_n):
                    sub = m.req.with_(n=count)
                    for img, info in m.provider.run(sub, member_key, tr, reporter):
                        info.provider = m.provider.name
                        info.model = m.req.model
                        info.images = count
                        if i:
                            info.fallback_from = self.members[0].provider.name
                        img.index += offset
                        if img.partial is None:
                            finals += 1
                        yield img, info
                return
            except UnavailableError as exc:
                if finals or i == last:
                    raise
                nxt = self.members[i + 1].provider.name
                self.events.append({"from": m.provider.name, "to": nxt, "reason": str(exc)})
                self.notify(f"{m.provider.name} is unavailable ({exc}); sending the same "
                            f"request to {nxt}")


# ---------------------------------------------------------------- settling a chain

def settle_chain(opts: ImageOptions, ctx: Context, *, inpaint: bool = False,
                 edit: bool = False, fallback: Sequence[str] = (),
                 warn: Callable[[str], None] = lambda text: None) -> Job:
    """`settle` for the first provider of OPTS.provider ('a' or 'a,b,c'), then for each
    fallback (the rest of that list, else FALLBACK, e.g. a batch record's, else
    `fallback = [...]` under [providers.a]) by that provider's own validation: an option
    a fallback cannot honour is exit 2 here, before anything is sent to anyone.
    A model set for the run names the first provider's; a fallback uses its own default.
    The job carries its members, their prices and a per-image cost function; its
    provider is a Chain when there is more than one."""

    names = split_flag(opts.provider)
    job = settle(opts.with_(provider=names[0] if names else None), ctx, inpaint=inpaint,
                 edit=edit)
    members = [Member(job.provider, job.request, job.api_key,
                      lookup(job.pcfg, job.request.model))]
    for pc in chain(ctx.cfg, job.pcfg, names[1:] or list(fallback or opts.fallback))[1:]:
        try:
            sub = settle(opts.with_(provider=pc.name, model=pc.model or job.request.model),
                         ctx, inpaint=inpaint, edit=edit)
        except UsageError as exc:
            raise UsageError(f"Fallback provider {pc.name} cannot take this request: "
                             f"{exc}") from None
        members.append(Member(sub.provider, sub.request, sub.api_key,
                              lookup(pc, sub.request.model)))
    job.members = members
    job.cost_of = cost_function(members)
    if len(members) > 1:
        job.provider = Chain(members, notify=warn, env=ctx.env)
    return job


def require_keys(job: Job, env: Mapping[str, str]) -> None:
    """Every provider of the chain needs its key before anything is sent (exit 3)."""
    if job.provider.needs_key:
        job.api_key = job.pcfg.require_key(env)
    for m in job.members:
        if m.provider.needs_key:
            m.key = m.provider.cfg.require_key(env)


def estimates(job: Job) -> list[Estimate]:
    """The estimated cost of JOB on each provider of its chain."""

    return [estimate(m.pricing, m.req,
                     batches(m.req.n, m.provider.capabilities(m.req.model).max_n))
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
        count = 1 if m.req.stream else (info.images if info is not None and info.images
                                        else 1)
        return image_cost(m.pricing, info.usage if info is not None else None, count,
                          m.req.size, m.req.quality, actual_size=f"{width}x{height}",
                          input_images=bool(m.req.images))

    return cost_of


def close_chains(jobs: Sequence[Job]) -> None:
    """Close the fallback providers' connections (the scheduler closes the firsts')."""
    for job in jobs:
        if isinstance(job.provider, Chain):
            job.provider.close()


def batch_budget(jobs: Sequence[Job], cap: float, where: str) -> Any:
    """The batch-wide cap: every job's price must be known (exit 2 naming the record),
    and at least one job must fit (else exit 2: nothing would be made). Returns the
    BatchBudget for the scheduler (`admit`) and the event stream."""

    highs: dict[int, float] = {}
    for job in jobs:
        ests = estimates(job)
        try:
            check_cap(ests, cap, where, known_only=True)
        except UsageError as exc:
            exc.message = f"line {job.line} (id {job.id}): {exc.message}"
            raise
        highs[id(job)] = max(e.high for e in ests)
    if highs and min(highs.values()) > cap + 1e-12:
        raise UsageError(
            f"Every job's estimated cost is over {where} {money(cap)} (the cheapest is "
            f"{money(min(highs.values()))}): nothing was sent; raise the cap")
    return BatchBudget(cap, where, lambda job: highs[id(job)])
