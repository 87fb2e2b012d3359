"""Typed options (from flags or a batch record) settled into jobs.

`settle` takes an `ImageOptions` (engine/options.py: what a user asked for,
unresolved), applies precedence (flag > environment > config file > default),
picks the model (`pick_model`: the flag, the provider's own default, the
environment), asks the provider to resolve and validate, and returns a `Job`: the
request plus its output plan, ready for the scheduler. Every value keeps where it
came from (`origins`, `blame`), and a [defaults] value the provider cannot honour is
dropped with a note (`settle_global_defaults`), not refused. Nothing here prints or
speaks HTTP; notices go to the `Context`'s `note` callback.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen_cli.engine.jobs import Job, Member
from imagegen_cli.engine.options import Context, ImageOptions
from imagegen_cli.engine.references import attach_references
from imagegen_cli.engine.save import SaveOptions
from imagegen_cli.errors import ConfigError, ImagegenError, UsageError
from imagegen_cli.files.masks import attach
from imagegen_cli.files.naming import OutputPlan
from imagegen_cli.pricing.lookup import lookup
from imagegen_cli.providers.base import check_params
from imagegen_cli.registry import create
from imagegen_cli.settings import config as cfgmod
from imagegen_cli.settings import options, precedence
from imagegen_cli.settings.precedence import Picked, Source, flag
from imagegen_cli.settings.rules import parse_aspect, parse_format, parse_size
from imagegen_cli.types import ImageRequest

if TYPE_CHECKING:
    from imagegen_cli.providers.base import Provider
    from imagegen_cli.settings.schema import Config

AS_RECEIVED = ("gif", "svg")  # drawn by the model itself, written as received


def settle(opts: ImageOptions, ctx: Context, *, inpaint: bool = False,
           edit: bool = False) -> Job:
    """OPTS resolved and validated into a Job (exit 2 for anything the provider would
    refuse, 3 for an unknown provider).

    Every value keeps where it came from (`config.Picked`): errors about a value not
    typed as a flag name its environment variable or config file and key, and a
    [defaults] value the provider cannot honour is dropped with a note."""

    cfg, env = ctx.cfg, ctx.env
    check_params(opts.params)
    provider, pcfg = ctx.provider(opts.provider)
    name = provider.name

    def setting(key: str, flag_name: str, env_var: str | None = None,
                default: Any = None) -> Picked:
        return precedence.setting(cfg, key, getattr(opts, key), flag_name, env, env_var,
                              provider=name, default=default)

    fmt_p = setting("format", "-f")
    fmt = None
    if fmt_p.value is not None:
        try:
            fmt = parse_format(str(fmt_p.value))
        except UsageError as exc:
            raise blame(exc, fmt_p.source) from None
    out_p = setting("output", "-o", cfgmod.ENV_OUTPUT)
    try:
        plan = OutputPlan.from_option(out_p.value, overwrite=opts.overwrite,
                                      default=ctx.default_template)
        plan.check_extension()
    except UsageError as exc:
        raise blame(exc, out_p.source) from None
    implied = plan.wanted_format()
    if fmt and implied and implied != fmt:
        rank = {"flag": 0, "env": 1, "config": 2}
        f_rank = rank.get(fmt_p.source.kind if fmt_p.source else "", 3)
        o_rank = rank.get(out_p.source.kind if out_p.source else "", 3)
        if o_rank < f_rank:
            fmt = None  # an explicit -o x.png beats a config defaults.format
        else:
            where = "" if (f_rank, o_rank) == (0, 0) else (
                f" (-o from {out_p.source.describe() if out_p.source else '?'}, "
                f"-f from {fmt_p.source.describe() if fmt_p.source else '?'})")
            raise UsageError(f"-o {plan.template} names a .{implied} file but -f is {fmt}: "
                             f"make them agree{where}")
    count = setting("count", "-n", default=1)
    if plan.stdout and count.value != 1:
        raise UsageError("-o - writes one image to stdout: drop -n or write to files")
    if plan.stdout and opts.sidecar:
        raise UsageError("--sidecar writes NAME.json beside a file, and -o - writes no file: "
                         "drop one")
    if plan.stdout and opts.keep_partials:
        raise UsageError("--keep-partials saves frames beside a file, and -o - writes no "
                         "file: drop one")
    if opts.keep_partials and not (opts.stream or opts.partial_images is not None):
        raise UsageError("--keep-partials needs --stream")
    size = Picked(parse_size(opts.size), flag("--size"))
    aspect = Picked(opts.aspect, flag("--aspect"))
    if aspect.value and size.value:
        raise UsageError("--size and --aspect both set the size: pass one")
    if not size.value and not aspect.value:
        # The more specific table wins: [providers.NAME.defaults], then [defaults].
        for scope in (name, None):
            a, sz = cfg.default("aspect", scope), cfg.default("size", scope)
            if scope is not None and not (a.source and a.source.name.startswith("providers.")
                                          or sz.source
                                          and sz.source.name.startswith("providers.")):
                continue
            if a.value:
                try:
                    parse_aspect(str(a.value))
                except UsageError as exc:
                    raise blame(exc, a.source) from None
                aspect, size = a, Picked(None)
            elif sz.value:
                try:
                    size = Picked(parse_size(sz.value), sz.source)
                except UsageError as exc:
                    raise blame(exc, sz.source) from None
            break
    body_p = setting("edit_body", "--edit-body") if edit else Picked(None)
    if body_p.value is not None and body_p.value not in ("auto", "json", "multipart"):
        raise blame(UsageError(f"--edit-body {body_p.value}: pass auto, json or multipart"),
                    body_p.source)
    timeout = setting("timeout", "--timeout", default=300.0)
    retries = setting("retries", "--retries", default=2)
    if float(timeout.value) <= 0:
        raise blame(UsageError("--timeout must be more than 0 seconds"), timeout.source)
    if int(retries.value) < 0:
        raise blame(UsageError("--retries must be 0 or more"), retries.source)
    if opts.prompt is None or not opts.prompt.strip():
        raise UsageError("Prompt is empty: pass the text, '-' for stdin or @FILE")

    picked = {
        "model": pick_model(opts, ctx, name),
        "n": Picked(int(count.value), count.source),
        "size": size,
        "quality": setting("quality", "--quality"),
        "style": setting("style", "--style"),
        "background": setting("background", "--background"),
        "moderation": setting("moderation", "--moderation"),
        "steps": setting("steps", "--steps"),
        # A switch: off on the command line is "not given", so a config default counts.
        "fast_vae": (Picked(True, flag("--fast-vae")) if opts.fast_vae
                     else Picked(bool(cfg.default("fast_vae", name).value),
                                 cfg.default("fast_vae", name).source)),
        "lora": Picked(tuple(opts.lora), flag("--lora")),
        "guidance": setting("guidance", "--guidance"),
        "negative_prompt": setting("negative_prompt", "--negative-prompt"),
        "complexity": setting("complexity", "--complexity"),
        "output_compression": setting("output_compression", "--output-compression"),
        "user": setting("user", "--user"),
        "resolution": setting("resolution", "--resolution"),
        # Only edits take it: a [defaults] value is not even looked at for generate.
        "input_fidelity": (setting("input_fidelity", "--input-fidelity") if inpaint or edit
                           else Picked(opts.input_fidelity, flag("--input-fidelity"))),
        "edit_body": body_p,
    }
    if opts.recorded:
        # Values a --from file filled in: named by the file, and dropped (with a note)
        # where this provider cannot take them, as a [defaults] value is.
        for key in opts.recorded & picked.keys():
            if picked[key].source is not None and picked[key].source.kind == "flag":
                picked[key] = Picked(picked[key].value, Source("from", key, opts.from_file))
        if "seed" in opts.recorded:
            picked["seed"] = Picked(opts.seed, Source("from", "seed", opts.from_file))
    seed = picked.pop("seed", Picked(opts.seed)).value
    req = ImageRequest(
        prompt=opts.prompt.strip(),
        seed=seed,
        stream=opts.stream or opts.partial_images is not None,
        partial_images=opts.partial_images,
        strength=opts.strength,
        params=dict(opts.params),
        device=opts.device,
        dtype=opts.dtype,
        origins=origins({**picked, "seed": Picked(seed, Source("from", "seed", opts.from_file))
                         if "seed" in opts.recorded else Picked(seed)}),
        **{k: p.value for k, p in picked.items()},
    )
    if inpaint and provider.inpaint_model() is None and not req.model:
        raise UsageError(cannot_inpaint(name, cfg, env))
    req = provider.resolve_model(req, inpaint=inpaint)
    if edit and not provider.capabilities(req.model).edit:
        raise UsageError(cannot("edit", f"{name} (model {req.model})", cfg, env))
    if aspect.value and aspect.source is not None:
        caps = provider.capabilities(req.model)
        if caps.aspect_ratios:
            ratio = nearest_ratio(str(aspect.value), caps.aspect_ratios)
            req = req.with_(aspect_ratio=ratio)
            if ratio != str(aspect.value):
                ctx.notice(f"--aspect {aspect.value}: using the nearest ratio "
                           f"{req.model} takes, {ratio}")
        elif caps.sizes is None:
            text = (f"--aspect needs known sizes, and provider {name} "
                    f"(model {req.model}) does not declare them")
            if not aspect.source.global_default:
                raise UsageError(f"{text}: pass --size" + (
                    f" (--aspect set by {aspect.source.describe()})"
                    if aspect.source.kind != "flag" else ""))
            ctx.notice(f"{aspect.source.describe()} is not used: {text}")
        else:
            req = req.with_(size=caps.sizes.closest(parse_aspect(str(aspect.value))))
            if aspect.source.kind != "flag":
                req.origins["--size"] = (f"--aspect {aspect.value} from "
                                         f"{aspect.source.describe()}")
            ctx.notice(f"--aspect {aspect.value}: using size {req.size}")
    if inpaint:

        req = attach(req, [Path(p) for p in opts.image], opts.mask, opts.invert_mask)
    if edit:

        req = attach_references(req, [str(p) for p in opts.image], opts.mask,
                                opts.invert_mask,
                                takes_urls=provider.capabilities(req.model).image_urls
                                and req.edit_body != "multipart",
                                timeout=float(timeout.value), retries=int(retries.value),
                                fetch=not opts.dry_run)
    final_fmt = fmt or implied
    # Before validation: the provider checks the format against other fields
    # (transparent jpeg, compression of png, gif on an edit).
    if final_fmt and final_fmt in provider.capabilities(req.model).formats:
        req = req.with_(output_format=final_fmt)
    elif final_fmt in AS_RECEIVED:
        raise UsageError(f"{final_fmt} output: provider {name} (model {req.model}) does not "
                         f"draw {final_fmt} (gpt-image-2.6-flare and -sunburst do, for "
                         "generations): pass -m one of those, or write .png, .jpg or .webp")
    # A config default for a flag edits do not take (--moderation) is dropped on an
    # edit with a note, wherever in the config it was set: it is meant for generations.
    gen_only = (provider.capabilities(req.model).generate_only if req.images
                else frozenset())
    skippable = {f: p.source for f, p in picked.items()
                 if p.source is not None and (p.source.global_default or (
                     p.source.kind == "config" and flag_of(f) in gen_only)
                     or (p.source.kind == "from" and f != "model"))}
    if "seed" in opts.recorded and req.seed is not None:
        skippable["seed"] = Source("from", "seed", opts.from_file)
    if aspect.value and aspect.source is not None and aspect.source.global_default \
            and req.size:
        skippable["size"] = aspect.source
    if skippable:
        req, dropped = settle_global_defaults(provider, req, skippable, inpaint=inpaint)
        for text in dropped:
            ctx.notice(text)
    req = provider.validate(req, inpaint=inpaint)
    for text in req.warnings:
        ctx.warn_once(text)
    for text in req.notices:
        ctx.notice(text)
    metadata = cfg.default("metadata", name).value
    sidecar = cfg.default("sidecar", name).value
    if final_fmt in AS_RECEIVED and metadata is not False and not opts.no_metadata \
            and not plan.stdout:
        ctx.notice(f"{final_fmt} files are written as received: prompt and settings go to "
                   "the .json sidecar beside each")
    return Job(
        request=req, provider=provider, pcfg=pcfg, plan=plan,
        files=SaveOptions(format=final_fmt,
                          metadata=not (opts.no_metadata or metadata is False),
                          sidecar=opts.sidecar or bool(sidecar),
                          keep_partials=opts.keep_partials),
        timeout=float(timeout.value), retries=int(retries.value), inpaint=inpaint,
        members=[Member(provider, pcfg, req, lookup(pcfg, req.model),
                        pcfg.key(env) if provider.needs_key else None)],
    )


def nearest_ratio(aspect: str, ratios: tuple[str, ...]) -> str:
    """The documented ratio ("16:9") closest to ASPECT (W:H) on a log scale; ASPECT
    itself when it is one of them, spelled as typed."""
    import math

    if aspect in ratios:
        return aspect
    want = parse_aspect(aspect)
    return min(ratios, key=lambda r: abs(math.log(parse_aspect(r) / want)))


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


def flag_of(field: str) -> str:
    """The flag an `ImageRequest` FIELD stands for, as messages name it (the option
    table's `said`, else its long flag); FIELD itself when no option sets it."""
    row = options.by_request(field)
    return row.flag if row is not None else field


def origins(picked: Mapping[str, Picked]) -> dict[str, str]:
    """flag -> where its value came from, for the values not typed as flags."""
    out = {}
    for name, p in picked.items():
        if p.source is not None and p.source.kind in ("env", "config", "from") \
                and p.value is not None:
            out[flag_of(name)] = p.source.describe()
    return out


def blame(exc: UsageError, source: Source | None) -> UsageError:
    """EXC with where the offending value was set, when that was not a flag."""
    if source is not None and source.kind in ("env", "config", "from"):
        return UsageError(f"{source.describe()}: {exc.message}")
    return exc


def settle_global_defaults(
    provider: Provider,
    req: ImageRequest,
    skippable: Mapping[str, Source],
    *,
    inpaint: bool = False,
) -> tuple[ImageRequest, list[str]]:
    """REQ without the [defaults] values (fields in SKIPPABLE) that PROVIDER cannot
    honour, and a note for each one dropped. Each value is tried on its own against
    `provider.validate`, so the reasons are the provider's declared ones."""
    base = req.with_(**{f: _unset(f) for f in skippable}, notices=[])
    base = provider.validate(base, inpaint=inpaint)
    notes: list[str] = []
    kept: dict[str, Any] = {}
    for field, source in skippable.items():
        value = getattr(req, field)
        trial = base.with_(**kept, **{field: value}, notices=[], origins={})
        try:
            provider.validate(trial, inpaint=inpaint)
        except UsageError as exc:
            reason = exc.message
            reason = _no_flag(reason)
            if source.kind == "from":
                notes.append(f"{source.name} {_show(value)} recorded in {source.path} is not "
                             f"used with {provider.name}: {_no_hint(reason)}")
                continue
            notes.append(f"{source.name} = {_show(value)} (in {source.path}) is not used with "
                         f"{provider.name}: {reason}" + (
                             f"; set it per provider in [providers.{provider.name}.defaults] "
                             "instead" if source.global_default else ""))
            continue
        kept[field] = value
    return req.with_(**{f: (kept[f] if f in kept else _unset(f)) for f in skippable}), notes


def _no_flag(reason: str) -> str:
    """A provider's refusal of a value that was not typed, without the flag it would
    have been typed as: "--size 100x100 is not accepted ..." -> "it is not accepted
    ..."."""
    import re

    return re.sub(r"^-[-\w/]+(?: \S+)? (?=is |applies |needs )", "it ", reason)


def _no_hint(reason: str) -> str:
    """A provider's refusal without its advice to drop a flag nobody typed."""
    import re

    return re.sub(r"[:;] (drop|remove) --?[a-z-]+.*$", "", reason)


def _unset(field: str) -> Any:
    """FIELD's value when nothing set it (the request's own default: 1 for n, () for
    lora, None for most)."""
    import dataclasses

    for f in dataclasses.fields(ImageRequest):
        if f.name == field:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    return None


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)
