"""Provider fallback: when a provider is unavailable, the same request goes to the next.

Only "unavailable" falls back (UnavailableError, exit 6: 429/5xx after retries,
timeouts, connection errors, broken answers). A refusal (exit 5) or a key error
(exit 3/4) would fail the same way elsewhere, or spend money twice: it is raised
as it is. Every provider of the chain has validated its own copy of the request
before anything is sent to anyone (see `members` in cli/generate.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imagegen_cli.errors import ConfigError, UnavailableError
from imagegen_cli.providers.base import Capabilities, Provider
from imagegen_cli.requests import CallInfo, GeneratedImage, ImageRequest, Reporter

if TYPE_CHECKING:
    from imagegen_cli.config import Config, ProviderConfig
    from imagegen_cli.http import HttpCall, Transport
    from imagegen_cli.prices import Pricing


def split_flag(value: str | None) -> list[str]:
    """`-p a,b,c` -> ['a', 'b', 'c'] (blanks dropped)."""
    if not value:
        return []
    return [p.strip() for p in value.split(",") if p.strip()]


def chain(cfg: Config, primary: ProviderConfig, rest: list[str]) -> list[ProviderConfig]:
    """PRIMARY then its fallbacks: REST from `-p a,b,c` (or a batch record) when given,
    else `fallback = [...]` under [providers.PRIMARY]. Unknown names exit 3."""
    names = rest if rest else list(primary.fallback)
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
        self.members = members
        self.notify = notify
        self.events: list[dict[str, Any]] = []
        self._transports: dict[int, Transport] = {}

    def capabilities(self, model: str | None) -> Capabilities:
        return self.members[0].provider.capabilities(model)

    def prepare(self, req: ImageRequest, key: str | None) -> list[HttpCall]:
        return self.members[0].provider.prepare(req, key)

    def _transport(self, i: int, base: Transport) -> Transport:
        if i == 0:
            return base
        if i not in self._transports:
            from imagegen_cli.http import Transport

            self._transports[i] = Transport(timeout=base.timeout, retries=base.retries,
                                            who=self.members[i].provider.name, log=base.log)
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
            finals = 0
            caps = m.provider.capabilities(m.req.model)
            try:
                for count, offset in _splits(req.n, caps.max_n):
                    sub = m.req.with_(n=count)
                    for img, info in m.provider.run(sub, m.key, tr, reporter):
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
