"""`imagegen generate` and `imagegen inpaint`: flags -> request -> provider -> files."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from imagegen_cli.cli.options import INPAINT, image_command
from imagegen_cli.errors import (
    AuthError,
    ImagegenError,
    Interrupted,
    PartialError,
    UsageError,
)
from imagegen_cli.values import FORMATS, parse_aspect, parse_size  # noqa: F401


def read_prompt(value: str) -> str:
    if value == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("Prompt '-' reads stdin, but stdin is a terminal: pipe the text in")
        text = sys.stdin.read()
    elif value.startswith("@") and len(value) > 1:
        path = Path(value[1:]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"Prompt file {path} does not exist (a prompt starting with @ "
                             "names a file)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"Cannot read prompt file {path}: {exc}") from None
    else:
        text = value
    text = text.strip()
    if not text:
        raise UsageError("Prompt is empty: pass the text, '-' for stdin or @FILE")
    return text


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


def run_images(opts: dict[str, Any], *, inpaint: bool = False) -> None:
    """Everything `generate` and `inpaint` share: settle, validate, run, report."""
    from imagegen_cli import config as cfgmod
    from imagegen_cli.cli.console import note, warn
    from imagegen_cli.http import register_secret
    from imagegen_cli.providers.base import create

    env = os.environ
    cfg = cfgmod.load(env)
    for w in cfg.warnings:
        warn(w)
    pcfg, auto_note = cfgmod.resolve_provider(cfg, opts["provider"], env)
    provider = create(pcfg, env)
    if auto_note and not opts["quiet"]:
        note(auto_note)

    run = _settle(opts, cfg, env, provider.name)
    req = _request(opts, run, cfg, env, provider, inpaint)
    key = pcfg.key(env) if provider.needs_key else None
    register_secret(key)
    if opts["dry_run"]:
        _dry_run(provider, req, key or (f"${pcfg.api_key_env}" if pcfg.api_key_env else None))
        return
    if provider.needs_key:
        key = pcfg.require_key(env)
        clash = pcfg.key_clash(env)
        if clash and not opts["quiet"]:
            note(clash)
    if not run.plan.stdout:
        run.plan.check_writable()
    outcome = _execute(opts, run, provider, req, key)
    for failure in outcome.failures:
        if isinstance(failure, AuthError) and pcfg.needs_key:
            failure.message += f" (the key came from {pcfg.key_origin(env)})"
    if opts["json_out"]:
        _print_report(provider.name, req, outcome)
    _raise_failures(req, outcome)


@dataclass
class _Run:
    """Settings resolved from flags, environment and [defaults] (in that order)."""

    plan: Any
    fmt: str | None
    count: Any  # config.Picked
    size: Any  # config.Picked
    aspect: Any  # config.Picked
    timeout: float
    retries: int
    metadata: bool
    sidecar: bool


def _settle(opts: dict[str, Any], cfg: Any, env: Any, provider: str) -> _Run:
    from imagegen_cli import config as cfgmod
    from imagegen_cli.output import OutputPlan
    from imagegen_cli.provenance import blame
    from imagegen_cli.values import parse_format

    def setting(key: str, flag: str, env_var: str | None = None, default: Any = None) -> Any:
        return cfgmod.setting(cfg, key, opts[key], flag, env, env_var, provider=provider,
                              default=default)

    fmt_p = setting("format", "-f")
    fmt = None
    if fmt_p.value is not None:
        try:
            fmt = parse_format(str(fmt_p.value))
        except UsageError as exc:
            raise blame(exc, fmt_p.source) from None
    out_p = setting("output", "-o", cfgmod.ENV_OUTPUT)
    try:
        plan = OutputPlan.from_option(out_p.value, overwrite=opts["overwrite"])
        plan.check_extension()
    except UsageError as exc:
        raise blame(exc, out_p.source) from None
    implied = plan.wanted_format()
    if fmt and implied and implied != fmt:
        rank = {"flag": 0, "env": 1, "config": 2}
        f_rank = rank.get(fmt_p.source.kind, 3)
        o_rank = rank.get(out_p.source.kind, 3)
        if o_rank < f_rank:
            fmt = None  # an explicit -o x.png beats a config defaults.format
        else:
            where = "" if (f_rank, o_rank) == (0, 0) else (
                f" (-o from {out_p.source.describe()}, -f from {fmt_p.source.describe()})")
            raise UsageError(f"-o {plan.template} names a .{implied} file but -f is {fmt}: "
                             f"make them agree{where}")
    count = setting("count", "-n", default=1)
    if plan.stdout and count.value != 1:
        raise UsageError("-o - writes one image to stdout: drop -n or write to files")
    if plan.stdout and opts["json_out"]:
        raise UsageError("-o - and --json both want stdout: choose one")
    if plan.stdout and opts["sidecar"]:
        raise UsageError("--sidecar writes NAME.json beside a file, and -o - writes no file: "
                         "drop one")
    if plan.stdout and opts["keep_partials"]:
        raise UsageError("--keep-partials saves frames beside a file, and -o - writes no "
                         "file: drop one")
    if opts["keep_partials"] and not (opts["stream"] or opts["partial_images"] is not None):
        raise UsageError("--keep-partials needs --stream")
    size = cfgmod.Picked(parse_size(opts["size"]), cfgmod.flag("--size"))
    aspect = cfgmod.Picked(opts["aspect"], cfgmod.flag("--aspect"))
    if aspect.value and size.value:
        raise UsageError("--size and --aspect both set the size: pass one")
    if not size.value and not aspect.value:
        # The more specific table wins: [providers.NAME.defaults], then [defaults].
        for scope in (provider, None):
            a, s = cfg.default("aspect", scope), cfg.default("size", scope)
            if scope is not None and not (a.value or s.value):
                continue
            if a.value:
                try:
                    parse_aspect(str(a.value))
                except UsageError as exc:
                    raise blame(exc, a.source) from None
                aspect, size = a, cfgmod.Picked(None)
            else:
                try:
                    size = cfgmod.Picked(parse_size(s.value), s.source)
                except UsageError as exc:
                    raise blame(exc, s.source) from None
            break
    timeout = setting("timeout", "--timeout", default=300.0)
    retries = setting("retries", "--retries", default=2)
    if float(timeout.value) <= 0:
        raise blame(UsageError("--timeout must be more than 0 seconds"), timeout.source)
    if int(retries.value) < 0:
        raise blame(UsageError("--retries must be 0 or more"), retries.source)
    metadata = cfg.default("metadata", provider).value
    sidecar = cfg.default("sidecar", provider).value
    return _Run(plan=plan, fmt=fmt or implied, count=count, size=size, aspect=aspect,
                timeout=float(timeout.value), retries=int(retries.value),
                metadata=not (opts["no_metadata"] or metadata is False),
                sidecar=opts["sidecar"] or bool(sidecar))


def _model(opts: dict[str, Any], cfg: Any, env: Any, provider: Any) -> Any:
    """-m, else IMAGEGEN_MODEL and defaults.model, which name a model of the default
    provider and so apply only when that provider is the one in use, else the
    provider's own defaults.model."""
    from imagegen_cli import config as cfgmod
    from imagegen_cli.cli.console import note
    from imagegen_cli.errors import ConfigError

    if opts["model"]:
        return cfgmod.Picked(opts["model"], cfgmod.flag("-m"))
    own = cfg.default("model", provider.name)
    if own.source is not None and own.source.name.startswith("providers."):
        return own
    default_name = None
    if opts["provider"] is None:
        default_name = provider.name
    else:
        try:
            default_name = cfgmod.resolve_provider(cfg, None, env)[0].name
        except ConfigError:
            default_name = None
    env_model = env.get(cfgmod.ENV_MODEL)
    if default_name == provider.name:
        return cfgmod.pick_from(
            cfgmod.Picked(env_model, cfgmod.env_source(cfgmod.ENV_MODEL)), own)
    for value, source in ((env_model, cfgmod.env_source(cfgmod.ENV_MODEL)),
                          (own.value, own.source)):
        if value and not opts["quiet"] and source is not None:
            note(f"{source.describe()} ({value}) names a model of the default provider"
                 f"{f' ({default_name})' if default_name else ''}, not of {provider.name}: "
                 f"using {provider.name}'s own model")
            break
    return cfgmod.Picked(None)


def _request(opts: dict[str, Any], run: _Run, cfg: Any, env: Any, provider: Any,
             inpaint: bool) -> Any:
    """The validated ImageRequest (exit 2 for anything the provider would refuse)."""
    from imagegen_cli import config as cfgmod
    from imagegen_cli.cli.console import note
    from imagegen_cli.provenance import origins, settle_global_defaults
    from imagegen_cli.requests import ImageRequest

    def setting(key: str, flag: str) -> Any:
        return cfgmod.setting(cfg, key, opts[key], flag, provider=provider.name)

    picked = {
        "model": _model(opts, cfg, env, provider),
        "n": run.count,
        "size": run.size,
        "quality": setting("quality", "--quality"),
        "style": setting("style", "--style"),
        "background": setting("background", "--background"),
        "moderation": setting("moderation", "--moderation"),
        "steps": setting("steps", "--steps"),
        "guidance": setting("guidance", "--guidance"),
        "negative_prompt": setting("negative_prompt", "--negative-prompt"),
    }
    req = ImageRequest(
        prompt=read_prompt(opts["prompt"]),
        seed=opts["seed"],
        stream=opts["stream"] or opts["partial_images"] is not None,
        partial_images=opts["partial_images"],
        params=parse_params(opts["param"]),
        device=opts["device"],
        dtype=opts["dtype"],
        origins=origins(picked),
        **{k: p.value for k, p in picked.items()},
    )
    if inpaint and provider.inpaint_model() is None and not req.model:
        raise UsageError(_cannot_inpaint(provider.name, cfg, env))
    req = provider.resolve_model(req, inpaint=inpaint)
    aspect = run.aspect
    if aspect.value:
        caps = provider.capabilities(req.model)
        if caps.sizes is None:
            text = (f"--aspect needs known sizes, and provider {provider.name} "
                    f"(model {req.model}) does not declare them")
            if not aspect.source.global_default:
                raise UsageError(f"{text}: pass --size" + (
                    f" (--aspect set by {aspect.source.describe()})"
                    if aspect.source.kind != "flag" else ""))
            if not opts["quiet"]:
                note(f"{aspect.source.describe()} is not used: {text}")
        else:
            req = req.with_(size=caps.sizes.closest(parse_aspect(aspect.value)))
            if aspect.source.kind != "flag":
                req.origins["--size"] = f"--aspect {aspect.value} from " \
                    f"{aspect.source.describe()}"
            if not opts["quiet"]:
                note(f"--aspect {aspect.value}: using size {req.size}")
    if inpaint:
        from imagegen_cli.masks import attach

        req = attach(req, opts["image"], opts["mask"], opts["invert_mask"])
    skippable = {f: p.source for f, p in picked.items()
                 if p.source is not None and p.source.global_default}
    if aspect.value and aspect.source.global_default and req.size:
        skippable["size"] = aspect.source
    if skippable:
        req, dropped = settle_global_defaults(provider, req, skippable, inpaint=inpaint)
        if not opts["quiet"]:
            for text in dropped:
                note(text)
    req = provider.validate(req, inpaint=inpaint)
    if not opts["quiet"]:
        for text in req.notices:
            note(text)
    if run.fmt and run.fmt in provider.capabilities(req.model).formats:
        req = req.with_(output_format=run.fmt)
    return req


def _dry_run(provider: Any, req: Any, shown_key: str | None) -> None:
    import json

    from imagegen_cli.cli.console import out
    from imagegen_cli.pipeline import split

    calls: list[dict[str, Any]] = []
    for sub in split(req, provider.capabilities(req.model).max_n):
        calls.extend(c.describe() for c in provider.prepare(sub, shown_key))
    out(json.dumps({"provider": provider.name, "model": req.model, "requests": calls},
                   indent=2, ensure_ascii=False))


class _PathPrinter:
    """Prints paths in index order (images may finish out of order when several
    requests run at once), each as soon as all before it are printed."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.next = 1
        self.waiting: dict[int, str] = {}

    def saved(self, s: Any) -> None:
        from imagegen_cli.cli.console import out

        if not self.enabled:
            return
        if s.partial is not None:
            out(s.path)  # a kept frame: listed as written, ahead of its image
            return
        self.waiting[s.index] = s.path
        while self.next in self.waiting:
            out(self.waiting.pop(self.next))
            self.next += 1

    def flush(self) -> None:
        from imagegen_cli.cli.console import out

        for index in sorted(self.waiting):
            out(self.waiting.pop(index))


def _execute(opts: dict[str, Any], run: _Run, provider: Any, req: Any, key: str | None) -> Any:
    from imagegen_cli.cli.app import debug_enabled
    from imagegen_cli.cli.console import err, make_reporter
    from imagegen_cli.http import Transport
    from imagegen_cli.pipeline import Saver, execute

    saver = Saver(
        plan=run.plan, provider=provider.name, model=str(req.model), request=req, count=req.n,
        wanted_format=run.fmt, metadata=run.metadata, sidecar=run.sidecar,
        keep_partials=opts["keep_partials"],
        stdout=sys.stdout.buffer if run.plan.stdout else None,
    )
    log = (lambda line: err(line, prefix="debug")) if debug_enabled() else None
    paths = _PathPrinter(enabled=not (opts["json_out"] or run.plan.stdout))
    reporter = make_reporter(opts["quiet"])
    reporter.job_hooks.append(_job_recorder(run, provider.name, req, reporter))
    try:
        written = [0]

        def on_saved(s: Any) -> None:
            paths.saved(s)
            if s.partial is None:
                written[0] += 1
                reporter.written(written[0], req.n)

        with reporter, Transport(timeout=run.timeout, retries=run.retries,
                                 who=provider.name, log=log, on_retry=reporter.retry) as tr:
            outcome = execute(provider, req, key, tr, reporter, saver, on_saved)
        from imagegen_cli import jobrecords as records

        for info in outcome.infos:
            if info.job_id:  # finished: nothing left to fetch later
                records.drop(provider.name, info.job_id)
        return outcome
    except KeyboardInterrupt:
        jobs = ", ".join(reporter.jobs)
        fetch = (f" (fetch their images later with `imagegen job get {provider.name} ID`)"
                 if jobs else "")
        raise Interrupted(
            f"interrupted; nothing half-written. Job ids still at {provider.name}: {jobs}"
            f"{fetch}" if jobs else "interrupted; nothing half-written") from None
    finally:
        paths.flush()  # whatever happened, every file written is listed


def _job_recorder(run: _Run, provider: str, req: Any, reporter: Any) -> Any:
    """Notes each submitted job's request, so `imagegen job get` can write its images
    later with the names and metadata this command would have given them."""
    from imagegen_cli import jobrecords as jobs

    def record(job_id: str, sub: Any) -> None:
        index = (sub.seed - req.seed + 1 if sub.seed is not None and req.seed is not None
                 else len(reporter.jobs))
        jobs.save(jobs.JobRecord(
            provider=provider, job_id=job_id, request=jobs.request_fields(sub), index=index,
            count=req.n, output=None if run.plan.stdout else run.plan.template,
            format=run.fmt, metadata=run.metadata, sidecar=run.sidecar,
            extra={"exact": run.plan.exact}))

    return record


def _print_report(provider: str, req: Any, outcome: Any) -> None:
    import json

    from imagegen_cli.cli.console import out

    # A failed call has no CallInfo, but its error kept the server's x-request-id.
    ids = list(outcome.request_ids)
    ids += [rid for e in outcome.failures
            if (rid := getattr(e, "request_id", None)) and rid not in ids]
    report: dict[str, Any] = {
        "provider": provider,
        "model": req.model,
        "request_id": ids[0] if ids else None,
        "request_ids": ids,
        "timings": outcome.timings,
        "usage": outcome.usage,
        "images": [s.as_json() for s in outcome.saved],
        "errors": [{"message": str(e), "exit_code": int(e.exit_code),
                    "request_id": getattr(e, "request_id", None), "provider": provider}
                   for e in outcome.failures],
    }
    if outcome.partials:
        report["partials"] = [s.as_json() | {"partial": s.partial} for s in outcome.partials]
    extra = {k: v for i in outcome.infos for k, v in i.extra.items()}
    if extra:
        report["extra"] = extra
    out(json.dumps(report, indent=2, ensure_ascii=False))


def _raise_failures(req: Any, outcome: Any) -> None:
    if not outcome.failures:
        return
    first = outcome.failures[0]
    more = f" (and {len(outcome.failures) - 1} more)" if len(outcome.failures) > 1 else ""
    if outcome.saved:
        raise PartialError(
            f"{len(outcome.saved)} of {req.n} images written; failed: {first}{more}")
    if more and isinstance(first, ImagegenError):
        first.message += more
    raise first


def _cannot_inpaint(name: str, cfg: Any, env: Any) -> str:
    """Which providers can inpaint, preferring the ones with a key set."""
    from imagegen_cli.providers.base import create

    able = []
    for p in cfg.providers.values():
        try:
            prov = create(p, env)
        except ImagegenError:
            continue
        model = prov.inpaint_model()
        if model:
            ready = not prov.needs_key or bool(p.key(env))
            able.append((not ready, f"{p.name} ({model})"))
    able.sort()
    names = ", ".join(text for _, text in able) or "none configured"
    return f"Provider {name} cannot inpaint; providers that can: {names} (pass -p NAME)"


@image_command([])
def generate(**opts: Any) -> None:
    """Generate images from a prompt.

    PROMPT is the text itself, - to read stdin, or @FILE to read a file. Prints the
    path of each image written (or one JSON object with --json).
    """
    run_images(opts)


@image_command(INPAINT)
def inpaint(**opts: Any) -> None:
    """Repaint part of an image: white (or transparent) mask pixels mark the area.

    PROMPT is the text itself, - to read stdin, or @FILE to read a file. Without
    --mask, the image's own transparent pixels mark the area.
    """
    run_images(opts, inpaint=True)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
    app.command("inpaint")(inpaint)
