"""`imagegen mcp`: the MCP tools, on the official SDK's MCPServer over stdio.

generate, edit and inpaint run through the same Door as `serve` (one session: the
local model stays loaded; the engine's own retry rules only, nothing retried on top);
each writes its files as `generate` would, in the server's folder or a sub-folder a
call names (confined: a `folder` that leads outside is refused), and answers with the
paths, the cost and each image inline, scaled down and capped in count and bytes so an
agent's context is not flooded. --max-cost holds for the whole session. Progress
notifications go out as the provider reports (denoising steps, an async job's status)
and as images are written. info, estimate_cost, list_providers and list_models send
nothing to any provider.

stdout is the MCP channel: nothing else may print there (notices go to stderr).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from imagegen_cli import __version__
from imagegen_cli.engine.fallback import estimates
from imagegen_cli.engine.options import ImageOptions
from imagegen_cli.errors import ImagegenError
from imagegen_cli.files.naming import inside
from imagegen_cli.pricing.costs import money
from imagegen_cli.secrets import redact
from imagegen_cli.serve.bridge import Door, Ledger, Served
from imagegen_cli.settings import options as table
from imagegen_cli.types import Reporter

# What goes back inline: at most this many images, each scaled to fit this many pixels
# a side and at most this many bytes (a smaller JPEG, else it is left out).
INLINE_COUNT = 4
INLINE_SIDE = 512
INLINE_BYTES = 256 * 1024
HEARTBEAT = 5.0  # seconds between progress notifications while nothing else is said

Prompt = Annotated[str, Field(description="What the image should show.")]
Provider = Annotated[str | None, Field(description="Provider name (list_providers); "
                                       "default: the configured default.")]
Model = Annotated[str | None, Field(description="Model id (list_models); default: the "
                                    "provider's.")]
Count = Annotated[int, Field(ge=1, le=10, description="How many images.")]
Size = Annotated[str | None, Field(description="WIDTHxHEIGHT, or auto.")]
Folder = Annotated[str | None, Field(description="Sub-folder of the server's output "
                                     "folder to write in (must stay inside it).")]
Extra = Annotated[dict[str, Any] | None, Field(
    description="Other settings by option name: quality, style, background, seed, steps, "
    "guidance, negative_prompt, resolution, format, aspect, strength ...")]

# Options a tool call may set through `settings` (the rest are the server's concern).
SETTINGS = ("quality", "style", "background", "moderation", "seed", "steps", "guidance",
            "negative_prompt", "resolution", "format", "aspect", "output_compression",
            "complexity", "input_fidelity", "strength", "user", "timeout")


def make(door: Door, folder: Path, cap: float | None) -> MCPServer:
    """The MCP server over DOOR, writing under FOLDER; CAP: the session's --max-cost."""
    if cap is not None:
        door.ledger = Ledger(cap, per_day=False, what="the session's --max-cost")
    server = MCPServer("imagegen", version=__version__, log_level="WARNING", instructions=(
        "Generate and edit images with the user's configured providers (OpenAI, "
        "gateways, local diffusers...). Images are written to files; their paths and "
        "cost come back with a small preview."))
    tools = Tools(door, folder)

    @server.tool(structured_output=False)
    async def generate(prompt: Prompt, ctx: Context, provider: Provider = None,
                       model: Model = None, n: Count = 1, size: Size = None,
                       settings: Extra = None, folder: Folder = None) -> list[Any]:
        """Generate images from a prompt; returns the files' paths, the cost and
        previews."""
        opts = tools.options(prompt, provider, model, n, size, settings)
        return await tools.run(ctx, opts, folder)

    @server.tool(structured_output=False)
    async def edit(prompt: Prompt, images: Annotated[list[str], Field(
                       min_length=1, description="Reference image files (or https URLs).")],
                   ctx: Context, mask: Annotated[str | None, Field(
                       description="Optional mask file for the first image.")] = None,
                   provider: Provider = None, model: Model = None, n: Count = 1,
                   size: Size = None, settings: Extra = None,
                   folder: Folder = None) -> list[Any]:
        """Make new images from reference images and a prompt (no mask needed)."""
        opts = tools.options(prompt, provider, model, n, size, settings).with_(
            image=tuple(images), mask=Path(mask) if mask else None)
        return await tools.run(ctx, opts, folder, edit=True)

    @server.tool(structured_output=False)
    async def inpaint(prompt: Prompt, image: Annotated[str, Field(
                          description="The image file to repaint.")],
                      ctx: Context, mask: Annotated[str | None, Field(
                          description="Mask file: white (or transparent) marks the area; "
                          "default: the image's own transparent pixels.")] = None,
                      provider: Provider = None, model: Model = None, n: Count = 1,
                      settings: Extra = None, folder: Folder = None) -> list[Any]:
        """Repaint part of an image."""
        opts = tools.options(prompt, provider, model, n, None, settings).with_(
            image=(Path(image),), mask=Path(mask) if mask else None)
        return await tools.run(ctx, opts, folder, inpaint=True)

    @server.tool()
    async def info(path: Annotated[str, Field(description="An image file.")]
                   ) -> dict[str, Any]:
        """The prompt and settings an image carries (imagegen's or AUTOMATIC1111's)."""
        return await anyio.to_thread.run_sync(tools.info, path)

    @server.tool()
    async def estimate_cost(prompt: Prompt, provider: Provider = None, model: Model = None,
                            n: Count = 1, size: Size = None,
                            settings: Extra = None) -> dict[str, Any]:
        """What generating would cost (USD, low and high), before anything is sent."""
        opts = tools.options(prompt, provider, model, n, size, settings)
        return await anyio.to_thread.run_sync(tools.estimate, opts)

    @server.tool()
    async def list_providers() -> dict[str, list[dict[str, Any]]]:
        """The configured providers: name, type, whether they can run here, default
        model."""
        return {"providers": await anyio.to_thread.run_sync(tools.providers)}

    @server.tool()
    async def list_models(provider: Annotated[str, Field(
                              description="A provider name.")]) -> dict[str, list[str]]:
        """The models a provider knows (from imagegen's own table: nothing is sent)."""
        return {"models": await anyio.to_thread.run_sync(tools.models, provider)}

    return server


class Tools:
    def __init__(self, door: Door, folder: Path) -> None:
        self.door = door
        self.folder = folder.resolve()

    def options(self, prompt: str, provider: str | None, model: str | None, n: int,
                size: str | None, settings: dict[str, Any] | None) -> ImageOptions:
        given: dict[str, Any] = {"prompt": prompt.strip(), "provider": provider,
                                 "model": model, "count": n, "size": size}
        for key, value in (settings or {}).items():
            if key not in SETTINGS:
                raise ToolError(f"unknown setting '{key}'; known: {', '.join(SETTINGS)}")
            row = table.option(key)
            try:
                given[key] = table.typed(row, value)
            except table.Wrong as exc:
                raise ToolError(f"setting '{key}' must be {exc.want}") from None
        if not given["prompt"]:
            raise ToolError("the prompt is empty")
        return ImageOptions(**given)

    def where(self, folder: str | None) -> Path:
        if not folder:
            return self.folder
        path = (self.folder / folder).resolve()
        if not inside(path, self.folder):
            raise ToolError(f"folder '{folder}' is outside the server's folder "
                            f"{self.folder}")
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def run(self, ctx: Context, opts: ImageOptions, folder: str | None, *,
                  edit: bool = False, inpaint: bool = False) -> list[Any]:
        where = self.where(folder)
        total = float(opts.count or 1)
        reporter = _Progress(lambda done, text: anyio.from_thread.run(
            ctx.report_progress, done, total, text))

        def work() -> Served:
            prepared = self.door.prepare(opts, edit=edit, inpaint=inpaint, folder=where)
            reporter.say(0, f"sending to {prepared.job.provider.name}")
            return self.door.execute(prepared, reporter=reporter,
                                     on_event=reporter.event)

        served: Served | None = None
        failed: ImagegenError | None = None

        async def heartbeat() -> None:
            # A slow provider says nothing for a minute: the host still hears from us.
            started = time.monotonic()
            while True:
                await anyio.sleep(HEARTBEAT)
                with contextlib.suppress(Exception):
                    await ctx.report_progress(reporter.done, total, "still waiting for the "
                                              f"provider ({time.monotonic() - started:.0f} s)")

        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat)
            try:
                served = await anyio.to_thread.run_sync(work)
            except ImagegenError as exc:  # (inside the group: kept out of an ExceptionGroup)
                failed = exc
            finally:
                tg.cancel_scope.cancel()
        if failed is not None:
            raise ToolError(redact(str(failed)))
        assert served is not None
        if not served.images:
            failure = served.failures[0] if served.failures else None
            raise ToolError(redact(str(failure)) if failure else "no image came back")
        summary = {
            "paths": [img.path for img in served.images],
            "cost_usd": served.cost_usd,
            "cost": money(served.cost_usd) if served.cost_usd is not None else "unknown",
            "provider": served.images[0].provider or served.job.provider.name,
            "model": served.images[0].model or served.job.request.model,
            "seeds": [img.seed for img in served.images],
            "request_id": served.request_id,
            "failed": [redact(str(f)) for f in served.failures],
        }
        previews = [p for p in (_preview(img.path) for img in
                                served.images[:INLINE_COUNT]) if p is not None]
        shown = len(previews)
        if shown < len(served.images):
            summary["previews"] = f"{shown} of {len(served.images)} shown inline"
        return [json.dumps(summary, indent=2), *previews]

    def info(self, path: str) -> dict[str, Any]:
        from imagegen_cli.files import images
        from imagegen_cli.files.metadata.read import read

        try:
            data = images.read_image_file(Path(path).expanduser())
            got = read(data)
            width, height = images.dimensions(data)
        except (ImagegenError, ValueError) as exc:
            raise ToolError(redact(str(exc))) from None
        return {"path": path, "format": got["format"], "width": width, "height": height,
                "ai_generated": got["ai_generated"], "source": got["source"],
                "settings": got["fields"]}

    def estimate(self, opts: ImageOptions) -> dict[str, Any]:
        from imagegen_cli.engine import run

        try:
            with self.door.settling:
                plan = run.plan_one(opts.with_(output=str(self.folder / "x.png")),
                                    self.door.ctx)
        except ImagegenError as exc:
            raise ToolError(redact(str(exc))) from None
        out = []
        for est in estimates(plan.jobs[0]):
            out.append({"provider": est.provider, "model": est.model, "images": est.images,
                        "known": est.known, "low_usd": round(est.low, 6) if est.known
                        else None, "high_usd": round(est.high, 6) if est.known else None,
                        "how": est.how or est.reason})
        ledger = self.door.ledger
        return {"estimates": out,
                "session_cap_usd": ledger.cap if ledger else None,
                "session_spent_usd": round(ledger.spent, 6) if ledger else None}

    def providers(self) -> list[dict[str, Any]]:
        ready = {name for name, model in self.door.routable() if model is None}
        out = []
        for name, pcfg in self.door.ctx.cfg.providers.items():
            entry: dict[str, Any] = {"name": name, "type": pcfg.type, "ready": name in ready}
            if name in ready:
                with self.door.settling:
                    provider, _ = self.door.ctx.provider(name)
                entry["default_model"] = provider.default_model()
            out.append(entry)
        return out

    def models(self, name: str) -> list[str]:
        if name not in self.door.ctx.cfg.providers:
            raise ToolError(f"unknown provider '{name}'; known: "
                            + ", ".join(sorted(self.door.ctx.cfg.providers)))
        try:
            with self.door.settling:
                provider, _ = self.door.ctx.provider(name)
            return list(provider.known_models())
        except ImagegenError as exc:
            raise ToolError(redact(str(exc))) from None


class _Progress(Reporter):
    """The engine's progress, as MCP progress notifications (from its worker thread)."""

    def __init__(self, send: Callable[[float, str], None]) -> None:
        super().__init__()
        self.send = send
        self.done = 0

    def say(self, done: float, text: str) -> None:
        with contextlib.suppress(Exception):  # a progress note never fails a paid call
            self.send(done, text)

    def status(self, text: str) -> None:
        self.say(self.done, text)

    def step(self, done: int, total: int) -> None:
        if total:
            self.say(self.done + done / total, f"step {done} of {total}")

    def event(self, ev: Any) -> None:
        from imagegen_cli.engine.events import ImageWritten

        if isinstance(ev, ImageWritten):
            self.done += 1
            self.say(self.done, f"wrote {ev.image.path}")


def _preview(path: str) -> Image | None:
    """PATH scaled to fit INLINE_SIDE, as PNG or (when smaller, or over the cap) JPEG;
    None when even that is over INLINE_BYTES."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            im.thumbnail((INLINE_SIDE, INLINE_SIDE))
            im.load()
            small = im.copy()
    except (OSError, ValueError):
        return None  # an SVG, or what Pillow cannot read: the path says where it is
    buf = io.BytesIO()
    small.save(buf, format="PNG", optimize=True)
    data, fmt = buf.getvalue(), "png"
    if len(data) > INLINE_BYTES:
        buf = io.BytesIO()
        small.convert("RGB").save(buf, format="JPEG", quality=80)
        data, fmt = buf.getvalue(), "jpeg"
    if len(data) > INLINE_BYTES:
        return None
    return Image(data=data, format=fmt)


def run(door: Door, folder: Path, cap: float | None) -> None:
    try:
        make(door, folder, cap).run("stdio")
    finally:
        door.close()
