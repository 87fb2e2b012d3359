"""A job's calls: its share of images per request, the loop that asks again when a
provider sends fewer images than asked for, and the fallback chain: a call whose
provider is unavailable goes to the next provider of its job.

Only "unavailable" falls back (UnavailableError, exit 6: 429/5xx after retries,
timeouts, connection errors, broken answers), and only before the provider sent
any final image of the call. A refusal (exit 5) or a key error (exit 3/4) would
fail the same way elsewhere, or spend money twice: it is raised as it is. Every
provider of the chain validated its own copy of the request, and has its key,
before anything was sent to anyone (fallback.settle_chain, require_keys).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imagegen_cli.engine.events import FellBack
from imagegen_cli.errors import ProviderError, ShortfallError, UnavailableError
from imagegen_cli.types import CallInfo, GeneratedImage, ImageRequest, Reporter

if TYPE_CHECKING:
    from imagegen_cli.engine.jobs import Job, Member
    from imagegen_cli.providers.base import Provider
    from imagegen_cli.transport.client import Transport


@dataclass
class Call:
    job: Job
    n: int
    offset: int

    def request_of(self, req: ImageRequest, n: int, offset: int) -> ImageRequest:
        """N images of REQ (the job's request as one provider of its chain settled it),
        OFFSET images into this call. With a seed, each request starts where the one
        before ended: -n 3 --seed 42 at one image per call sends 42, 43, 44 (as the
        local provider does within one call), never three paid copies of one image."""
        seed = req.seed + self.offset + offset if req.seed is not None else None
        return req.with_(n=n, seed=seed)


def run_chain(
    call: Call, transport_for: Callable[[Job, Member], Transport], reporter: Reporter,
    fell_back: Callable[[FellBack], None],
) -> Iterator[tuple[GeneratedImage, CallInfo, Transport]]:
    """The images of CALL from the first provider of its job's chain that is available,
    each with its call info (who made it) and the transport that reached that provider
    (a URL answer is downloaded through it). FELL_BACK is told before the same request
    goes to the next provider; a fallback asks for the call's images in requests of its
    own model's size."""
    members = call.job.members
    for i, m in enumerate(members):
        transport = transport_for(call.job, m)
        finals = 0
        try:
            max_n = max(1, m.provider.capabilities(m.request.model).max_n)
            for offset in range(0, call.n, max_n):
                count = min(max_n, call.n - offset)
                sub = call.request_of(m.request, count, offset)
                for img, info in run_complete(m.provider, sub, m.key, transport, reporter):
                    if len(members) > 1:  # who made it, for the file, the cost and --json
                        # As the image records it: nothing of the user's disk (a local
                        # model's folder is named, not its path).
                        info.provider = m.provider.name
                        info.model = (m.provider.public_model(m.request.model)
                                      if m.request.model else None)
                        info.images = count
                        if i:
                            info.fallback_from = members[0].provider.name
                    img.index += offset
                    if img.partial is None:
                        finals += 1
                    yield img, info, transport
            return
        except ProviderError as exc:
            exc.provider = exc.provider or m.pcfg.name
            if not isinstance(exc, UnavailableError) or finals or i == len(members) - 1:
                raise
            fell_back(FellBack(call.job, m.provider.name, members[i + 1].provider.name,
                               str(exc)))


def run_complete(
    provider: Provider, req: ImageRequest, key: str | None, transport: Transport,
    reporter: Reporter,
) -> Iterator[tuple[GeneratedImage, CallInfo]]:
    """The images of one call, all REQ.n of them: a provider (or a gateway ignoring n,
    or a stream sending one image) that sends fewer than asked is asked again for the
    missing ones, as long as each round brings at least one; what is still missing
    then ends in a ShortfallError naming the shortfall. Indexes (and seeds) run on
    across rounds."""
    got = 0
    while True:
        want = req.n - got
        round_got = 0
        seed = req.seed + got if req.seed is not None else None
        try:
            for img, info in provider.run(req.with_(n=want, seed=seed), key, transport,
                                          reporter):
                if img.index >= want:  # more than asked for: not ours to keep
                    continue
                img.index += got
                if img.partial is None:
                    round_got += 1
                yield img, info
        except ProviderError as exc:
            if not got and not round_got:
                raise
            got += round_got
            raise ShortfallError(
                f"{provider.name} sent {got} of the {req.n} images asked for; asking for "
                f"the other {req.n - got} failed: {exc}") from None
        got += round_got
        if got >= req.n:
            return
        if round_got == 0:
            again = f" (asked again for the other {req.n - got}, none came)" if got else ""
            raise ShortfallError(
                f"{provider.name} sent {got} of the {req.n} images asked for{again}")
        reporter.note(f"{provider.name} sent {round_got} of {want} images: asking for the "
                      f"other {want - round_got}")
