"""Write each image as it arrives: verify, convert, tag, write atomically.

The scheduler (scheduler.py) runs the calls; the Saver handles one image at a
time on the writing thread, so memory stays flat as a batch grows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from imagegen_cli import clock
from imagegen_cli.engine import history
from imagegen_cli.errors import ImagegenError, OutputError
from imagegen_cli.files import images
from imagegen_cli.files.atomic import clean_once, folder_lock, write_atomic
from imagegen_cli.files.history import Entry
from imagegen_cli.files.metadata import credentials
from imagegen_cli.files.metadata import write as metadata
from imagegen_cli.files.naming import EXTENSIONS, OutputPlan
from imagegen_cli.secrets import redact_data
from imagegen_cli.types import Batches, CallInfo, GeneratedImage, ImageRequest

# Called with the SavedImage-to-be (path set) and the stat of its bytes on disk,
# just before the file appears under its name.
Claim = Callable[["SavedImage", os.stat_result], None]


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
    request_id: str | None = None
    resolved: dict[str, Any] = field(default_factory=dict)
    provider: str | None = None
    model: str | None = None
    cost_usd: float | None = None
    cost_source: str | None = None  # "usage" | "table" | None (unknown)
    fallback_from: str | None = None
    # Made through OpenAI's Batch API (`batch --batch-api`): that batch's id.
    batch_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        out = {
            "path": self.path, "index": self.index, "width": self.width,
            "height": self.height, "format": self.format, "bytes": self.bytes,
            "sha256": self.sha256, "seed": self.seed, "revised_prompt": self.revised_prompt,
            "provider": self.provider, "model": self.model,
            "cost_usd": self.cost_usd, "cost_source": self.cost_source,
        }
        if self.fallback_from:
            out["fallback_from"] = self.fallback_from
        if self.batch_id:
            out.update(via="batch-api", batch_id=self.batch_id)
        if self.timings:
            out["timings"] = self.timings
        if self.resolved:
            out["resolved"] = self.resolved
        return out

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> SavedImage:
        return cls(path=rec["path"], index=rec["index"], width=rec["width"],
                   height=rec["height"], format=rec["format"], bytes=rec["bytes"],
                   sha256=rec["sha256"], seed=rec.get("seed"),
                   revised_prompt=rec.get("revised_prompt"),
                   timings=dict(rec.get("timings") or {}), provider=rec.get("provider"),
                   model=rec.get("model"), cost_usd=rec.get("cost_usd"),
                   cost_source=rec.get("cost_source"), fallback_from=rec.get("fallback_from"),
                   request_id=rec.get("request_id"),
                   resolved=dict(rec.get("resolved") or {}), batch_id=rec.get("batch_id"))


@dataclass(frozen=True)
class SaveOptions:
    """What each image file of a job carries and what lands beside it: the format
    asked for (None: as received, or from the name), embedded metadata, a `.json`
    sidecar, streamed partial frames."""

    format: str | None = None
    metadata: bool = True
    sidecar: bool = False
    keep_partials: bool = False


@dataclass
class Saver:
    plan: OutputPlan
    provider: str
    model: str
    request: ImageRequest
    count: int
    files: SaveOptions = field(default_factory=SaveOptions)
    stdout: IO[bytes] | None = None
    warn: Callable[[str], None] | None = None
    note: Callable[[str], None] | None = None
    # What was already said this run (shared by a run's savers): each notice once.
    said: set[str] = field(default_factory=set)
    now: datetime = field(default_factory=clock.now)
    id: str = "1"
    claim: Claim | None = None
    # (call info, width, height) -> (USD, "usage" | "table"), or (None, None): unknown
    cost_of: Callable[[CallInfo | None, int, int], tuple[float | None, str | None]] | None = None
    # Each image written, for the history (engine/history.py); None: history off.
    history: Callable[[Entry], None] | None = None
    # Partial frames land beside the final image's name; remember it per index.
    _partial_base: dict[int, Path] = field(default_factory=dict)

    def meta(self, img: GeneratedImage, width: int, height: int,
             info: CallInfo | None = None) -> dict[str, Any]:
        req = self.request
        out: dict[str, Any] = {
            "prompt": req.prompt,
            "revised_prompt": img.revised_prompt,
            "negative_prompt": req.negative_prompt,
            "provider": (info and info.provider) or self.provider,
            "model": (info and info.model) or self.model,
            "fallback_from": info.fallback_from if info else None,
            "size": f"{width}x{height}",
            "requested_size": req.size,
            "aspect_ratio": req.aspect_ratio,
            "resolution": req.resolution,
            "seed": img.seed if img.seed is not None else req.seed,
            "steps": req.steps if req.steps is not None else img.settings.get("steps"),
            "guidance": req.guidance if req.guidance is not None
            else img.settings.get("guidance"),
            "sampler": img.settings.get("sampler"),
            "request_id": img.settings.get("request_id"),
            "quality": req.quality,
            "style": req.style,
            "background": req.background,
            "moderation": req.moderation,
            "params": req.params or None,
            "generator": "imagegen",
        }
        if img.resolved:
            # What the provider chose where the request left it open (auto or unset).
            for key in ("quality", "background"):
                if out.get(key) in (None, "auto") and img.resolved.get(key):
                    out[key] = img.resolved[key]
            out["resolved"] = img.resolved
        if img.timings:
            out["timings"] = img.timings

        # Embedded and sidecar metadata never carry a key (a --param api_key=..., a
        # key pasted into a prompt).
        meta: dict[str, Any] = redact_data({k: v for k, v in out.items() if v is not None})
        return meta

    def _once(self, key: str, text: str, say: Callable[[str], None] | None) -> None:
        if key not in self.said and say is not None:
            self.said.add(key)
            say(text)

    def save(self, img: GeneratedImage, index: int,
             info: CallInfo | None = None) -> SavedImage | None:
        data = img.load()
        img.data = None  # the only copy from here on is `data`
        as_received = self.files.format if self.files.format in images.AS_RECEIVED else None
        fmt, width, height = images.verify(data, expect=as_received)
        # The provider's content credentials (C2PA) sign these very bytes: any byte
        # added or taken out breaks them, so a signed image is written as received.
        signed = credentials.present(data, fmt)
        who_signed = (info and info.provider) or self.provider
        if as_received is None:
            target = self.files.format or (
                fmt if fmt in EXTENSIONS and fmt not in images.AS_RECEIVED else "png")
            if fmt != target:
                if signed:  # the user asked for the other format: done, and said
                    self._once("c2pa-lost", f"{who_signed}'s image carries content "
                               f"credentials (C2PA); converting it from {fmt.upper()} to "
                               f"{target.upper()} re-encodes it, so they are lost: ask for "
                               f"{fmt.upper()} (-o NAME.{EXTENSIONS[fmt]} or --format "
                               f"{fmt}) to keep them", self.warn)
                    signed = False
                data = images.convert(data, target)
                fmt = target
        meta = self.meta(img, width, height, info)
        cost, cost_source = (self.cost_of(info, width, height) if self.cost_of
                             else (None, None))
        if cost is not None:
            cost = round(cost, 6)  # token arithmetic leaves float noise (0.00275000...03)
        who = {"provider": meta["provider"], "model": meta["model"], "cost_usd": cost,
               "cost_source": cost_source, "fallback_from": meta.get("fallback_from"),
               "request_id": info.request_id if info else None,
               "batch_id": info.extra.get("batch_id") if info else None}
        cut = False
        if signed:
            if not self.files.metadata:
                self._once("c2pa-kept", f"{who_signed}'s image carries content credentials "
                           "(C2PA): --no-metadata keeps the file as received, manifest "
                           "included (taking it out is the only other way to leave a "
                           "valid file)", self.note)
            elif self.stdout is not None:
                self._once("c2pa-stdout", f"{who_signed}'s image carries content "
                           "credentials (C2PA): written as received, without imagegen's "
                           "metadata (stdout has no sidecar)", self.note)
            else:
                self._once("c2pa-sidecar", f"{who_signed}'s image carries content "
                           "credentials (C2PA): written as received, imagegen's metadata "
                           "is in the .json sidecar beside it", self.note)
        elif self.files.metadata and as_received is None:
            # Timings vary run to run: kept out of the file (the sidecar and --json have
            # them), so equal pixels and parameters give equal bytes.
            data, cut = metadata.embed(
                data, fmt, {k: v for k, v in meta.items() if k != "timings"}, self.warn)
        else:
            data = metadata.strip(data, fmt)
        seed = meta.get("seed")
        digest = hashlib.sha256(data).hexdigest()
        if img.partial is not None and (not self.files.keep_partials or self.stdout is not None):
            return None
        if self.stdout is not None:
            try:
                self.stdout.write(data)
                self.stdout.flush()
            except OSError as exc:  # /dev/full, a closed pipe: the image did not get out
                raise OutputError(f"Cannot write the image to stdout: "
                                  f"{exc.strerror or exc}") from None
        else:
            path = self.plan.path_for(
                prompt=self.request.prompt, index=index, count=self.count,
                ext=EXTENSIONS[fmt], seed=seed, model=meta["model"],
                provider=meta["provider"], now=self.now, id=self.id,
            )
            if img.partial is not None:
                path = path.with_name(f"{path.stem}.partial-{img.partial}{path.suffix}")
            if self.claim is not None:  # a batch with a journal: it may resume a killed run
                clean_once(path.parent)
            # A prompt cut to fit the image's metadata lives whole in the sidecar; GIF
            # and SVG are written as received, so their metadata goes there too.
            # A signed image takes nothing of ours: the sidecar carries it all.
            sidecar = self.files.sidecar or cut or (
                self.files.metadata and (as_received is not None or signed))
            companions = (".json",) if sidecar and img.partial is None else ()
            saved = SavedImage(path="", index=index, width=width, height=height, format=fmt,
                               bytes=len(data), sha256=digest, seed=seed,
                               revised_prompt=img.revised_prompt, partial=img.partial,
                               timings=dict(img.timings), resolved=dict(img.resolved), **who)
            claim = self.claim if img.partial is None else None

            def claimed(target: Path, st: os.stat_result) -> None:
                saved.path = str(target)
                if claim is not None:
                    claim(saved, st)

            # Replacing an image and its sidecar: one unit, or a racing process's image
            # ends up beside this one's sidecar. (New names are this run's alone.)
            unit = folder_lock(path.parent) if companions and self.plan.overwrite \
                else contextlib.nullcontext()
            with unit:
                written = write_atomic(path, data, overwrite=self.plan.overwrite,
                                       companions=companions, claim=claimed)
                if companions:
                    side = dict(meta, file=written.name, width=width, height=height,
                                format=fmt, sha256=digest, cost_usd=cost,
                                cost_source=cost_source)
                    if signed:  # the file's own manifest: `imagegen info` reads it
                        side["content_credentials"] = "kept as received"
                    write_atomic(written.with_suffix(".json"),
                                 (json.dumps(side, indent=2, ensure_ascii=False)
                                  + "\n").encode(), overwrite=True)
            saved.path = str(written)
            return self._remember(saved, meta)
        return self._remember(SavedImage(
            path="-", index=index, width=width, height=height, format=fmt, bytes=len(data),
            sha256=digest, seed=seed, revised_prompt=img.revised_prompt, partial=img.partial,
            timings=dict(img.timings), resolved=dict(img.resolved), **who), meta)

    def _remember(self, saved: SavedImage, meta: dict[str, Any]) -> SavedImage:
        """SAVED, recorded in the history (a kept partial frame is no image made)."""
        if self.history is not None and saved.partial is None:
            self.history(Entry(
                # From META, as the image carries it: redacted (a key pasted in a prompt).
                time=history.now().isoformat(), prompt=str(meta.get("prompt") or ""),
                negative_prompt=meta.get("negative_prompt"), provider=saved.provider,
                model=saved.model, options=history.options_of(meta), seed=saved.seed,
                cost_usd=saved.cost_usd, cost_source=saved.cost_source,
                path=str(Path(saved.path).absolute()) if saved.path != "-" else "-",
                sha256=saved.sha256, bytes=saved.bytes, width=saved.width,
                height=saved.height, format=saved.format, job=self.id))
        return saved


@dataclass
class Outcome:
    saved: list[SavedImage] = field(default_factory=list)
    partials: list[SavedImage] = field(default_factory=list)  # --keep-partials frames
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


def warm_up() -> None:
    """Import what saving the first image needs: Pillow with its usual plugins, the
    name transliterator (some 40 ms)."""
    from PIL import Image

    Image.preinit()
    import anyascii  # noqa: F401


def batches(n: int, max_n: int) -> Batches:
    return Batches(n, max_n)


def splits(req: ImageRequest, max_n: int) -> Iterator[ImageRequest]:
    """REQ as the requests that make it, one at a time (a dry run of a huge -n shows
    the first few), at most MAX_N images each. With a seed, each
    starts where the one before ended: -n 3 --seed 42 at one image per call sends 42,
    43, 44 (as the local provider does within one call), never three paid copies."""
    done = 0
    for n in batches(req.n, max_n):
        yield req.with_(n=n, seed=req.seed + done if req.seed is not None else None)
        done += n

