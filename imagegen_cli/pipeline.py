"""Run a request through a provider and write each image as it arrives.

Requests for more images than one call may ask for are split into batches
that run concurrently; images are numbered continuously in batch order.
Each image is verified, converted if needed, tagged and written atomically
before the next one is handled, so memory stays flat as -n grows.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from imagegen_cli import images
from imagegen_cli.errors import (
    ImagegenError,
    OutputError,
    ProviderError,
    ShortfallError,
    UnavailableError,
)
from imagegen_cli.output import EXTENSIONS, OutputPlan, write_atomic
from imagegen_cli.requests import CallInfo, GeneratedImage, ImageRequest, Reporter

if TYPE_CHECKING:
    from imagegen_cli.http import Transport
    from imagegen_cli.providers.base import Provider


@dataclass
class SavedImage:
    path: str
    index: int
    width: int
    height: int
    format: str
    bytes: int
    sha256: str
    seed: int | None
    revised_prompt: str | None
    partial: int | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out = {
            "path": self.path, "index": self.index, "width": self.width,
            "height": self.height, "format": self.format, "bytes": self.bytes,
            "sha256": self.sha256, "seed": self.seed, "revised_prompt": self.revised_prompt,
        }
        if self.timings:
            out["timings"] = self.timings
        return out


@dataclass
class Saver:
    plan: OutputPlan
    provider: str
    model: str
    request: ImageRequest
    count: int
    wanted_format: str | None = None
    metadata: bool = True
    sidecar: bool = False
    keep_partials: bool = False
    stdout: IO[bytes] | None = None
    now: datetime = field(default_factory=datetime.now)
    # Partial frames land beside the final image's name; remember it per index.
    _partial_base: dict[int, Path] = field(default_factory=dict)

    def meta(self, img: GeneratedImage, width: int, height: int) -> dict[str, Any]:
        req = self.request
        out: dict[str, Any] = {
            "prompt": req.prompt,
            "revised_prompt": img.revised_prompt,
            "negative_prompt": req.negative_prompt,
            "provider": self.provider,
            "model": self.model,
            "size": f"{width}x{height}",
            "requested_size": req.size,
            "seed": img.seed if img.seed is not None else req.seed,
            "steps": req.steps,
            "guidance": req.guidance,
            "quality": req.quality,
            "style": req.style,
            "background": req.background,
            "params": req.params or None,
            "generator": "imagegen",
        }
        if img.timings:
            out["timings"] = img.timings
        from imagegen_cli.secrets import redact_data

        # Embedded and sidecar metadata never carry a key (a --param api_key=..., a
        # key pasted into a prompt).
        meta: dict[str, Any] = redact_data({k: v for k, v in out.items() if v is not None})
        return meta

    def save(self, img: GeneratedImage, index: int) -> SavedImage | None:
        data = img.load()
        img.data = None  # the only copy from here on is `data`
        fmt, width, height = images.verify(data)
        target = self.wanted_format or (fmt if fmt in EXTENSIONS else "png")
        if fmt != target:
            data = images.convert(data, target)
            fmt = target
        meta = self.meta(img, width, height)
        if self.metadata:
            data = images.embed_metadata(data, fmt, meta)
        seed = meta.get("seed")
        digest = hashlib.sha256(data).hexdigest()
        if img.partial is not None and (not self.keep_partials or self.stdout is not None):
            return None
        if self.stdout is not None:
            try:
                self.stdout.write(data)
                self.stdout.flush()
            except OSError as exc:  # /dev/full, a closed pipe: the image did not get out
                raise OutputError(f"Cannot write the image to stdout: "
                                  f"{exc.strerror or exc}") from None
            path_text = "-"
        else:
            path = self.plan.path_for(
                prompt=self.request.prompt, index=index, count=self.count,
                ext=EXTENSIONS[fmt], seed=seed, model=self.model, provider=self.provider,
                now=self.now,
            )
            if img.partial is not None:
                path = path.with_name(f"{path.stem}.partial-{img.partial}{path.suffix}")
            companions = (".json",) if self.sidecar and img.partial is None else ()
            written = write_atomic(path, data, overwrite=self.plan.overwrite,
                                   companions=companions)
            if companions:
                import json

                side = dict(meta, file=written.name, width=width, height=height, format=fmt,
                            sha256=digest)
                write_atomic(written.with_suffix(".json"),
                             (json.dumps(side, indent=2, ensure_ascii=False) + "\n").encode(),
                             overwrite=True)
            path_text = str(written)
        return SavedImage(path=path_text, index=index, width=width, height=height, format=fmt,
                          bytes=len(data), sha256=digest, seed=seed,
                          revised_prompt=img.revised_prompt, partial=img.partial,
                          timings=dict(img.timings))


@dataclass
class Outcome:
    saved: list[SavedImage] = field(default_factory=list)
    failures: list[ImagegenError] = field(default_factory=list)
    infos: list[CallInfo] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def request_ids(self) -> list[str]:
        return [i.request_id for i in self.infos if i.request_id]

    @property
    def usage(self) -> dict[str, Any] | None:
        total: dict[str, Any] = {}
        for info in self.infos:
            for k, v in (info.usage or {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    total[k] = total.get(k, 0) + v
                elif isinstance(v, dict):
                    sub = total.setdefault(k, {})
                    for k2, v2 in v.items():
                        if isinstance(v2, (int, float)):
                            sub[k2] = sub.get(k2, 0) + v2
        return total or None


def batches(n: int, max_n: int) -> list[int]:
    out = []
    while n > 0:
        out.append(min(n, max_n))
        n -= out[-1]
    return out


def run_complete(
    provider: Provider, req: ImageRequest, key: str | None, transport: Transport,
    reporter: Reporter,
) -> Iterator[tuple[GeneratedImage, CallInfo]]:
    """The images of one batch, all REQ.n of them: a provider (or gateway) that sends
    fewer than asked is asked again for the missing ones, as long as each round brings
    at least one; what is still missing then ends in a ShortfallError. Indexes run
    on across rounds."""
    got = 0
    while True:
        want = req.n - got
        round_got = 0
        try:
            for img, info in provider.run(req.with_(n=want), key, transport, reporter):
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
            raise ShortfallError(
                f"{provider.name} sent {got} of the {req.n} images asked for (asked again "
                f"for the other {req.n - got}, none came)")
        reporter.note(f"{provider.name} sent {round_got} of {want} images: asking for the "
                      f"other {want - round_got}")


def execute(
    provider: Provider,
    req: ImageRequest,
    key: str | None,
    transport: Transport,
    reporter: Reporter,
    saver: Saver,
    on_saved: Callable[[SavedImage], None] = lambda s: None,
    workers: int = 4,
) -> Outcome:
    caps = provider.capabilities(req.model)
    sizes = batches(req.n, caps.max_n)
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    outcome = Outcome()
    started = time.perf_counter()
    seen_infos: set[int] = set()

    def fetch(img: GeneratedImage) -> GeneratedImage:
        if img.data is None and img.loader is None and img.url:
            reporter.status(f"downloading image {img.index + 1}")
            spool = transport.download_spooled(
                img.url, on_bytes=lambda got, total: reporter.step(got, total))
            img.loader = spool.read
        return img

    def handle(batch: int, img: GeneratedImage, info: CallInfo) -> None:
        if id(info) not in seen_infos:
            seen_infos.add(id(info))
            outcome.infos.append(info)
        index = offsets[batch] + img.index + 1
        try:
            saved = saver.save(img, index)
        except UnavailableError as exc:
            if info.request_id and not exc.request_id:
                exc.request_id = info.request_id
            outcome.failures.append(exc)
            return
        except OutputError as exc:
            if saver.stdout is not None:
                raise
            # One image that could not be written (disk full): the others still are.
            exc.message = f"image {index}: {exc.message}"
            outcome.failures.append(exc)
            return
        if saved is None:
            return
        if saved.partial is None:
            outcome.timings.setdefault("first_image_s", round(time.perf_counter() - started, 3))
            outcome.saved.append(saved)
        on_saved(saved)

    if len(sizes) == 1:
        # On this thread: the local provider's Ctrl-C handler needs the main thread,
        # and one batch gains nothing from a worker.
        try:
            for img, info in run_complete(provider, req.with_(n=sizes[0]), key, transport,
                                          reporter):
                handle(0, fetch(img), info)
        except OutputError:
            raise
        except ImagegenError as exc:
            outcome.failures.append(exc)
    else:
        # Bounded: workers wait for the writer, so at most a few images are in memory.
        inbox: queue.Queue[tuple[str, int, Any, Any]] = queue.Queue(maxsize=1)
        todo: queue.Queue[int] = queue.Queue()
        for b in range(len(sizes)):
            todo.put(b)

        def work() -> None:
            while True:
                try:
                    batch = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    sub = req.with_(n=sizes[batch])
                    for img, info in run_complete(provider, sub, key, transport, reporter):
                        inbox.put(("image", batch, fetch(img), info))
                except ImagegenError as exc:
                    inbox.put(("error", batch, exc, None))
                except Exception as exc:  # noqa: BLE001 - surfaced as exit 1 below
                    inbox.put(("crash", batch, exc, None))
                finally:
                    inbox.put(("done", batch, None, None))

        # A few daemon threads, not one per batch: memory stays flat as -n grows, and
        # Ctrl-C or a write error never waits for slow calls.
        for _ in range(min(workers, len(sizes))):
            threading.Thread(target=work, daemon=True).start()
        pending = len(sizes)
        while pending:
            kind, batch, payload, info = inbox.get()
            if kind == "image":
                handle(batch, payload, info)
            elif kind == "error":
                outcome.failures.append(payload)
            elif kind == "crash":
                raise payload
            else:
                pending -= 1
    outcome.saved.sort(key=lambda s: s.index)
    outcome.timings["total_s"] = round(time.perf_counter() - started, 3)
    return outcome
