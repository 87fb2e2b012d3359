"""Typed options (from flags or a batch record) settled into jobs.

`ImageOptions` holds what a user asked for, unresolved: every field of
`generate`/`inpaint` (a flag or a batch record's field), None where unset.
`settle` applies precedence (flag > environment > config file > default),
asks the provider to resolve and validate, and returns a `Job`: the request
plus its output plan, ready for the scheduler. Nothing here prints or speaks
HTTP; notices go to the `Context`'s `note` callback.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen_cli.errors import ImagegenError, UsageError
from imagegen_cli.jobs import Job

if TYPE_CHECKING:
    from imagegen_cli.config import Config, ProviderConfig
    from imagegen_cli.providers.base import Provider

FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "webp": "webp", "gif": "gif",
           "svg": "svg"}
AS_RECEIVED = ("gif", "svg")  # drawn by the model itself, written as received


@dataclass(frozen=True)
class ImageOptions:
    """One image command's options, as given (None: not given)."""

    prompt: str | None = None
    provider: str | None = None
    model: str | None = None
    count: int | None = None
    size: str | None = None
    aspect: str | None = None
    quality: str | None = None
    style: str | None = None
    background: str | None = None
    moderation: str | None = None
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    negative_prompt: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    output: str | None = None
    format: str | None = None
    overwrite: bool = False
    no_metadata: bool = False
    sidecar: bool = False
    stream: bool = False
    partial_images: int | None = None
    output_compression: int | None = None
    complexity: str | None = None
    input_fidelity: str | None = None
    user: str | None = None
    strength: float | None = None
    keep_partials: bool = False
    timeout: float | None = None
    retries: int | None = None
    device: str | None = None
    dtype: str | None = None
    image: tuple[Path | str, ...] = ()  # edit: a file or an http(s) URL
    mask: Path | None = None
    invert_mask: bool = False
    dry_run: bool = False  # nothing is fetched either (edit's -i URLs)

    def with_(self, **changes: Any) -> ImageOptions:
        return dataclasses.replace(self, **changes)


@dataclass
class Context:
    """What settling reads besides the options: config, environment, and where
    notices go. Providers are created once per name and shared by all jobs (the
    local provider keeps its loaded model)."""

    cfg: Config
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    note: Callable[[str], None] = lambda text: None
    # What must be seen even with -q (a deprecated model); shown once each.
    warn: Callable[[str], None] = lambda text: None
    default_template: str | None = None
    providers: dict[str | None, tuple[Provider, ProviderConfig]] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)

    def notice(self, text: str) -> None:
        """Each distinct notice once (a batch of 200 says it once, not 200 times)."""
        if text not in self._seen:
            self._seen.add(text)
            self.note(text)

    def provider(self, name: str | None) -> tuple[Provider, ProviderConfig]:
        if name not in self.providers:
            from imagegen_cli import config as cfgmod
            from imagegen_cli.providers.base import create

            pcfg, auto_note = cfgmod.resolve_provider(self.cfg, name, self.env)
            if auto_note:
                self.notice(auto_note)
            self.providers[name] = (create(pcfg, self.env), pcfg)
        return self.providers[name]


def parse_size(size: str | None) -> str | None:
    if size is None:
        return None
    s = size.strip().lower().replace("×", "x")
    if s == "auto":
        return s
    w, sep, h = s.partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
        raise UsageError(f"--size '{size}' is not WIDTHxHEIGHT (e.g. 1024x1024) or auto")
    return f"{int(w)}x{int(h)}"


def parse_aspect(aspect: str) -> float:
    w, sep, h = aspect.partition(":")
    try:
        ratio = float(w) / float(h)
    except (ValueError, ZeroDivisionError):
        ratio = 0
    if not sep or ratio <= 0:
        raise UsageError(f"--aspect '{aspect}' is not W:H (e.g. 16:9)")
    return ratio


def parse_params(items: list[str] | None) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param '{item}' is not KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out[key.strip()] = value
    return out


def settle(opts: ImageOptions, ctx: Context, *, inpaint: bool = False,
           edit: bool = False) -> Job:
    """OPTS resolved and validated into a Job (exit 2 for anything the provider would
    refuse, 3 for an unknown provider)."""
    from imagegen_cli import config as cfgmod
    from imagegen_cli.output import OutputPlan
    from imagegen_cli.requests import ImageRequest

    cfg, env = ctx.cfg, ctx.env
    d, pick = cfg.defaults, cfgmod.pick
    provider, pcfg = ctx.provider(opts.provider)
    fmt_opt = pick(opts.format, None, d.get("format"), None)
    fmt = None
    if fmt_opt is not None:
        fmt = FORMATS.get(str(fmt_opt).lower())
        if fmt is None:
            raise UsageError(f"-f/--format '{fmt_opt}' is not one of png, jpeg, webp, gif, "
                             "svg")
    plan = OutputPlan.from_option(
        pick(opts.output, env.get(cfgmod.ENV_OUTPUT), d.get("output"), None),
        overwrite=opts.overwrite, default=ctx.default_template,
    )
    implied = plan.wanted_format()
    if fmt and implied and implied != fmt:
        raise UsageError(f"-o {plan.template} names a .{implied} file but -f is {fmt}: "
                         "make them agree")
    count = int(pick(opts.count, None, d.get("count"), 1))
    if plan.stdout and count != 1:
        raise UsageError("-o - writes one image to stdout: drop -n or write to files")
    if opts.keep_partials and not (opts.stream or opts.partial_images is not None):
        raise UsageError("--keep-partials needs --stream")
    size = parse_size(opts.size)
    aspect = opts.aspect
    if aspect and size:
        raise UsageError("--size and --aspect both set the size: pass one")
    if not size and not aspect:
        aspect = d.get("aspect")
        size = None if aspect else parse_size(d.get("size"))
    timeout = float(pick(opts.timeout, None, d.get("timeout"), 300.0))
    retries = int(pick(opts.retries, None, d.get("retries"), 2))
    if timeout <= 0:
        raise UsageError("--timeout must be more than 0 seconds")
    if retries < 0:
        raise UsageError("--retries must be 0 or more")
    if opts.prompt is None or not opts.prompt.strip():
        raise UsageError("Prompt is empty: pass the text, '-' for stdin or @FILE")

    req = ImageRequest(
        prompt=opts.prompt.strip(),
        model=pick(opts.model, env.get(cfgmod.ENV_MODEL), d.get("model"), None),
        n=count,
        size=size,
        quality=pick(opts.quality, None, d.get("quality"), None),
        style=pick(opts.style, None, d.get("style"), None),
        background=pick(opts.background, None, d.get("background"), None),
        moderation=pick(opts.moderation, None, d.get("moderation"), None),
        seed=opts.seed,
        steps=pick(opts.steps, None, d.get("steps"), None),
        guidance=pick(opts.guidance, None, d.get("guidance"), None),
        negative_prompt=pick(opts.negative_prompt, None, d.get("negative_prompt"), None),
        stream=opts.stream or opts.partial_images is not None,
        partial_images=opts.partial_images,
        output_compression=opts.output_compression,
        complexity=opts.complexity,
        input_fidelity=opts.input_fidelity,
        user=opts.user,
        strength=opts.strength,
        params=dict(opts.params),
        device=opts.device,
        dtype=opts.dtype,
    )
    if inpaint and provider.inpaint_model() is None and not req.model:
        raise UsageError(cannot_inpaint(provider.name, cfg, env))
    req = provider.resolve_model(req, inpaint=inpaint)
    if edit and not provider.capabilities(req.model).edit:
        raise UsageError(cannot("edit", f"{provider.name} (model {req.model})", cfg, env))
    if aspect:
        caps = provider.capabilities(req.model)
        if caps.sizes is None:
            raise UsageError(f"--aspect needs known sizes, and provider {provider.name} "
                             f"(model {req.model}) does not declare them: pass --size")
        req = req.with_(size=caps.sizes.closest(parse_aspect(aspect)))
        ctx.notice(f"--aspect {aspect}: using size {req.size}")
    if inpaint:
        from imagegen_cli.masks import attach

        req = attach(req, [Path(p) for p in opts.image], opts.mask, opts.invert_mask)
    if edit:
        from imagegen_cli.references import attach_references

        req = attach_references(req, [str(p) for p in opts.image], opts.mask,
                                opts.invert_mask,
                                takes_urls=provider.capabilities(req.model).image_urls,
                                timeout=timeout, retries=retries, fetch=not opts.dry_run)
    final_fmt = fmt or implied
    # Before validation: the provider checks the format against other fields
    # (transparent jpeg, compression of png, gif on an edit).
    if final_fmt and final_fmt in provider.capabilities(req.model).formats:
        req = req.with_(output_format=final_fmt)
    elif final_fmt in AS_RECEIVED:
        raise UsageError(f"-f {final_fmt}: provider {provider.name} (model {req.model}) does "
                         f"not draw {final_fmt}; gpt-image-2.6-flare and -sunburst do "
                         "(generations)")
    req = provider.validate(req, inpaint=inpaint)
    for text in req.warnings:
        if text not in ctx._seen:
            ctx._seen.add(text)
            ctx.warn(text)
    for text in req.notices:
        ctx.notice(text)
    metadata = not (opts.no_metadata or d.get("metadata") is False)
    if final_fmt in AS_RECEIVED and metadata and not plan.stdout:
        ctx.notice(f"{final_fmt} files are written as received: prompt and settings go to "
                   "the .json sidecar beside each")
    return Job(
        request=req, provider=provider, pcfg=pcfg, plan=plan, fmt=final_fmt,
        metadata=metadata,
        sidecar=opts.sidecar or bool(d.get("sidecar")), keep_partials=opts.keep_partials,
        timeout=timeout, retries=retries, inpaint=inpaint,
        api_key=pcfg.key(env) if provider.needs_key else None,
    )


def cannot_inpaint(name: str, cfg: Config, env: Mapping[str, str]) -> str:
    """Which providers can inpaint, preferring the ones with a key set."""
    return cannot("inpaint", name, cfg, env)


def cannot(what: str, name: str, cfg: Config, env: Mapping[str, str]) -> str:
    """Which providers can WHAT ('inpaint' or 'edit'), preferring those with a key set."""
    from imagegen_cli.providers.base import create

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
