"""`imagegen generate`, `inpaint` and `edit`: flags -> request -> provider -> files."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import typer

from imagegen_cli.cli.options import EDIT, FROM, INPAINT, image_command
from imagegen_cli.errors import (
    AuthError,
    ImagegenError,
    Interrupted,
    PartialError,
    UsageError,
)
from imagegen_cli.settle import (  # noqa: F401 - re-exported for callers of the old home
    FORMATS,
    ImageOptions,
    parse_aspect,
    parse_params,
    parse_size,
)


def read_prompt(value: str) -> str:
    if value == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("Prompt '-' reads stdin, but stdin is a terminal: pipe the text in")
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError:
            raise UsageError("Prompt from stdin is not UTF-8 text: convert it (e.g. "
                             "iconv -t UTF-8)") from None
    elif value.startswith("@") and len(value) > 1:
        path = Path(value[1:])
        try:
            path = Path(os.path.expanduser(path))  # ("~nouser" stays as typed)
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"Prompt file {path} does not exist (a prompt starting with @ "
                             "names a file)") from None
        except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or a NUL in the name
            why = (exc.strerror if isinstance(exc, OSError) else None) or exc
            raise UsageError(f"Cannot read prompt file {str(path)!r}: {why}") from None
    else:
        text = value
    text = text.strip()
    if not text:
        raise UsageError("Prompt is empty: pass the text, '-' for stdin or @FILE")
    return text


def options_from(opts: dict[str, Any]) -> ImageOptions:
    """Typer's keyword arguments -> the core's typed options (the only place this
    dict is read for image options)."""
    fields = {f.name for f in dataclasses.fields(ImageOptions)}
    given = {k: v for k, v in opts.items() if k in fields}
    given["prompt"] = read_prompt(opts["prompt"]) if opts.get("prompt") is not None else None
    given["params"] = parse_params(opts.get("param"))
    given["image"] = tuple(opts.get("image") or ())
    return ImageOptions(**given)


def run_images(opts: dict[str, Any], *, inpaint: bool = False, edit: bool = False) -> None:
    """`generate`, `inpaint` and `edit`: a batch of one job."""
    from imagegen_cli import config as cfgmod
    from imagegen_cli.cli.console import note, warn
    from imagegen_cli.fallback import estimates, require_keys, settle_chain
    from imagegen_cli.http import register_secret
    from imagegen_cli.settle import Context

    quiet = bool(opts["quiet"])
    env = os.environ
    cfg = cfgmod.load(env)
    for w in cfg.warnings:
        warn(w)
    literal_prompt = None
    if opts.get("from_file") is not None:
        opts, literal_prompt = _with_settings_from(opts, cfg, env)
    elif opts["prompt"] is None:
        raise UsageError("Missing PROMPT: pass the text, - for stdin, @FILE"
                         + ("" if inpaint or edit else ", or --from IMAGE"))
    ctx = Context(cfg, env, note=(lambda text: None) if quiet else note, warn=warn)
    options = options_from(opts)
    if literal_prompt is not None:
        options = options.with_(prompt=literal_prompt)  # as recorded: no -, no @FILE
    job = settle_chain(options, ctx, inpaint=inpaint, edit=edit, warn=warn)
    if job.plan.stdout and sys.stdout.isatty():
        # As curl and httpie do: image bytes on a terminal are garbage and can upset it.
        raise UsageError("refusing to write image bytes to a terminal; redirect to a file "
                         "or pass -o FILE")
    cap = _max_cost(opts, cfg, env)
    ests = estimates(job)
    if cap is not None:
        from imagegen_cli.prices import check_cap

        check_cap(ests, *cap)
    jsonl = bool(opts.get("jsonl"))
    if job.plan.stdout and (opts["json_out"] or jsonl):
        raise UsageError(f"-o - and {'--jsonl' if jsonl else '--json'} both want stdout: "
                         "choose one")
    if opts["json_out"] and jsonl:
        raise UsageError("--json and --jsonl both choose the output form: pass one")
    register_secret(job.api_key)
    if opts["dry_run"]:
        _dry_run(job, ests, quiet)
        return
    require_keys(job, env)  # every provider of the fallback chain too
    if job.provider.needs_key:
        clash = job.pcfg.key_clash(env)
        if clash and not quiet:
            note(clash)
    job.plan.check_writable()  # before anything is paid for
    outcome = _execute(opts, job, quiet, jsonl)
    for failure in outcome.failures:
        if isinstance(failure, AuthError) and job.pcfg.needs_key:
            failure.message += f" (the key came from {job.pcfg.key_origin(env)})"
    if opts["json_out"]:
        _print_report(job, outcome)
    elif (opts["preview"] or cfg.defaults.get("preview")) and not (jsonl or job.plan.stdout):
        from imagegen_cli.cli.preview import show

        show([s.path for s in outcome.saved])  # only when stdout is a terminal
    if not (opts["json_out"] or quiet or jsonl) and _interactive():
        _cost_line(job, outcome)  # interactive runs only: scripts read --json
    _raise_failures(job, outcome)


def _with_settings_from(opts: dict[str, Any], cfg: Any,
                        env: Any) -> tuple[dict[str, Any], str | None]:
    """OPTS filled from the --from file wherever no flag was given (flags win), and
    the recorded prompt when no PROMPT was given."""
    from imagegen_cli import config as cfgmod
    from imagegen_cli.metadata import settings_from

    found = settings_from(opts["from_file"])
    opts = dict(opts)
    if found.get("provider") not in cfg.providers:
        found.pop("provider", None)  # made by a provider this config does not know
    provider = opts["provider"] or found.get("provider")
    model = found.get("model")
    if model and provider and opts["model"] is None:
        pcfg, _ = cfgmod.resolve_provider(cfg, provider.split(",")[0], env)
        # The local provider records a model folder by its name only: keep the
        # configured folder rather than look for a folder of that name here.
        if pcfg.type == "local" and "/" not in model:
            found.pop("model")
    params = found.pop("params", None)
    if params and not opts["param"]:
        import json

        opts["param"] = [f"{k}={json.dumps(v)}" for k, v in params.items()]
    prompt = found.pop("prompt")
    for key, value in found.items():
        if key in opts and opts[key] is None:
            opts[key] = value
    if opts["aspect"] is not None and "size" in found and opts["size"] == found["size"]:
        opts["size"] = None  # --aspect given beside --from replaces the recorded size
    return opts, (prompt if opts["prompt"] is None else None)


def _interactive() -> bool:
    from imagegen_cli.cli.report import stderr_is_terminal

    return stderr_is_terminal()


def _max_cost(opts: dict[str, Any], cfg: Any, env: Any) -> tuple[float, str] | None:
    """--max-cost > IMAGEGEN_MAX_COST > [defaults] max_cost, and which one it was."""
    from imagegen_cli import config as cfgmod
    from imagegen_cli.prices import parse_max_cost

    for value, where in ((opts.get("max_cost"), "--max-cost"),
                         (env.get(cfgmod.ENV_MAX_COST), cfgmod.ENV_MAX_COST),
                         (cfg.defaults.get("max_cost"), "[defaults] max_cost")):
        amount = parse_max_cost(value, where)
        if amount is not None:
            return amount, where
    return None


def _dry_run(job: Any, ests: list[Any], quiet: bool) -> None:
    """The exact calls of each provider of the chain (secrets redacted), and what each
    would cost."""
    import dataclasses
    import json

    from imagegen_cli.cli.console import note, out

    def shown(m: Any) -> dict[str, Any]:
        pc = m.provider.cfg
        key = pc.key(os.environ) if m.provider.needs_key else None
        shown_key = key or (f"${pc.api_key_env}" if pc.api_key_env else None)
        one: dict[str, Any] = dataclasses.replace(job, provider=m.provider,
                                                  request=m.req).describe(shown_key)
        return one

    report = shown(job.members[0])
    report["estimated_cost"] = ests[0].as_json()
    if len(job.members) > 1:
        report["fallback"] = [dict(shown(m), estimated_cost=e.as_json())
                              for m, e in zip(job.members[1:], ests[1:], strict=True)]
    out(json.dumps(report, indent=2, ensure_ascii=False))
    if not quiet:
        for e in ests:
            note(f"estimated cost ({e.provider}): {e.text()} ({e.reason or e.how})")


def _run_cost(outcome: Any) -> dict[str, Any]:
    """cost_usd / cost_source for the whole run (and compute seconds where local)."""
    from imagegen_cli.prices import total_cost

    cost, source = total_cost([(s.cost_usd, s.cost_source) for s in outcome.saved])
    out: dict[str, Any] = {"cost_usd": cost, "cost_source": source}
    compute = [s.timings.get("inference_s") for s in outcome.saved]
    if outcome.saved and cost == 0 and all(c is not None for c in compute):
        out["compute_s"] = round(sum(c for c in compute if c is not None), 3)
    return out


def _cost_line(job: Any, outcome: Any) -> None:
    """The one line at the end of an interactive run: '3 images, $0.126'."""
    from imagegen_cli.cli.console import err
    from imagegen_cli.prices import money

    n = len(outcome.saved)
    if not n:
        return
    c = _run_cost(outcome)
    images = f"{n} image{'s' if n != 1 else ''}"
    makers = {s.provider for s in outcome.saved}
    if c["cost_usd"] is None:
        unknown = sorted({f"{s.provider} {s.model}" for s in outcome.saved
                          if s.cost_usd is None})
        err(f"{images}, cost unknown (no price for {', '.join(unknown)}; set one in "
            "[providers.NAME.prices])")
    elif c["cost_usd"] == 0 and all(m.pricing.free for m in job.members
                                    if m.provider.name in makers):
        compute = c.get("compute_s", outcome.timings.get("total_s"))
        err(f"{images}, $0 (runs on this machine: {compute} s of compute)")
    else:
        err(f"{images}, {money(c['cost_usd'])}"
            + (" (from the price table)" if c["cost_source"] == "table" else ""))


def _execute(opts: dict[str, Any], job: Any, quiet: bool, jsonl: bool) -> Any:
    from imagegen_cli.cli import report
    from imagegen_cli.cli.app import debug_enabled
    from imagegen_cli.cli.console import err, make_reporter, warn
    from imagegen_cli.events import Event, ImageWritten, JobFinished
    from imagegen_cli.scheduler import Scheduler

    finished: list[Any] = []

    reporter = make_reporter(quiet)
    written = [0]

    def keep(ev: Event) -> None:
        if isinstance(ev, JobFinished):
            finished.append(ev.outcome)
        elif isinstance(ev, ImageWritten):
            written[0] += 1
            reporter.written(written[0], job.n)

    paths = report.PathsInOrder()
    sinks: list[Any] = [keep]
    if jsonl:
        sinks.append(report.ndjson)
    elif not (opts["json_out"] or job.plan.stdout):
        sinks.append(paths)
    log = (lambda line: err(line, prefix="debug")) if debug_enabled() else None
    reporter.job_hooks.append(_job_recorder(job, reporter))
    sched = Scheduler(concurrency=_concurrency(opts.get("concurrency")),
                      reporter_for=lambda j: reporter, sinks=sinks, log=log,
                      stdout=sys.stdout.buffer if job.plan.stdout else None, warn=warn)
    try:
        with reporter:
            sched.run([job])
    except Interrupted as exc:
        if job.n > 1 or written[0]:
            exc.message = exc.message.replace(
                "interrupted;", f"interrupted; {written[0]} of {job.n} images written"
                + (" (listed on stdout)" if written[0] and not job.plan.stdout else "") + ",", 1)
        raise
    finally:
        paths.flush()  # whatever happened, every file written is listed
        from imagegen_cli.fallback import close_chains

        close_chains([job])
    from imagegen_cli import jobrecords

    for info in finished[0].infos:
        if info.job_id:  # finished: nothing left to fetch later
            jobrecords.drop(job.provider.name, info.job_id)
    return finished[0]


def _job_recorder(job: Any, reporter: Any) -> Any:
    """Notes each submitted provider job's request, so `imagegen job get` can write
    its images later with the names and metadata this command would have used."""
    from imagegen_cli import jobrecords

    req, plan = job.request, job.plan

    def record(job_id: str, sub: Any) -> None:
        index = (sub.seed - req.seed + 1 if sub.seed is not None and req.seed is not None
                 else len(reporter.jobs))
        jobrecords.save(jobrecords.JobRecord(
            provider=job.provider.name, job_id=job_id,
            request=jobrecords.request_fields(sub), index=index, count=req.n,
            output=None if plan.stdout else plan.template, format=job.fmt,
            metadata=job.metadata, sidecar=job.sidecar, extra={"exact": plan.exact}))

    return record


def _concurrency(value: int | None) -> int:
    if value is None:
        return 4
    if value < 1:
        raise UsageError(f"-j/--concurrency {value}: pass 1 or more")
    return value


def _print_report(job: Any, outcome: Any) -> None:
    import json

    from imagegen_cli.cli.console import out

    # Who made the images: a fallback provider when every image came from it.
    makers = sorted({(s.provider or job.provider.name, s.model or job.request.model)
                     for s in outcome.saved})
    provider, model = makers[0] if len(makers) == 1 else (job.provider.name,
                                                          job.request.model)
    report = report_of(provider, model, outcome)
    events = getattr(job.provider, "events", None)
    if events:
        report["fallbacks"] = events
    out(json.dumps(report, indent=2, ensure_ascii=False))


def report_of(provider: str, model: str | None, outcome: Any) -> dict[str, Any]:
    """The --json object: images, kept partial frames, and failures as objects."""
    # A failed call has no CallInfo, but its error kept the server's x-request-id.
    ids = list(outcome.request_ids)
    ids += [rid for e in outcome.failures
            if (rid := getattr(e, "request_id", None)) and rid not in ids]
    report: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "request_id": ids[0] if ids else None,
        "request_ids": ids,
        "timings": outcome.timings,
        "usage": outcome.usage,
        **_run_cost(outcome),
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
    return report


def _raise_failures(job: Any, outcome: Any) -> None:
    if not outcome.failures:
        return
    first = outcome.failures[0]
    more = f" (and {len(outcome.failures) - 1} more)" if len(outcome.failures) > 1 else ""
    if outcome.saved:
        # Name every failure (up to a few): which images are missing, and why.
        shown = "; ".join(str(e) for e in outcome.failures[:3])
        rest = len(outcome.failures) - 3
        raise PartialError(f"{len(outcome.saved)} of {job.n} images written; failed: "
                           f"{shown}" + (f" (and {rest} more)" if rest > 0 else ""))
    if more and isinstance(first, ImagegenError):
        first.message += more
    raise first


@image_command(FROM)
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


@image_command(EDIT)
def edit(**opts: Any) -> None:
    """Make a new image from reference images and a prompt; no mask needed.

    -i takes a file or an https:// URL, repeatable (gpt-image: up to 16, e.g. "put
    the product from A on the table from B"). --mask is optional. The local model
    runs img2img from the first image (--strength).
    """
    run_images(opts, edit=True)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
    app.command("inpaint")(inpaint)
    app.command("edit")(edit)
