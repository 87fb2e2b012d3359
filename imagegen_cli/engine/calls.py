"""A job's calls: its share of images per request, and the loop that asks again
when a provider sends fewer images than asked for."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imagegen_cli.errors import ProviderError, ShortfallError
from imagegen_cli.types import CallInfo, GeneratedImage, ImageRequest, Reporter

if TYPE_CHECKING:
    from imagegen_cli.engine.jobs import Job
    from imagegen_cli.providers.base import Provider
    from imagegen_cli.transport.client import Transport


@dataclass
class Call:
    job: Job
    n: int
    offset: int

    def request(self) -> ImageRequest:
        """This call's share of the job. With a seed, each call starts where the one
        before ended: -n 3 --seed 42 at one image per call sends 42, 43, 44 (as the
        local provider does within one call), never three paid copies of one image."""
        req = self.job.request
        seed = req.seed + self.offset if req.seed is not None else None
        return req.with_(n=self.n, seed=seed)


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
