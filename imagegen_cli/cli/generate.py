"""`imagegen generate`, `inpaint` and `edit`: flags -> request -> provider -> files.

Owns the three commands and their run: a batch of one job, settled from the
options, checked, then run through the scheduler with its reporters. Turning
flags into options lives in imageargs.py; the --dry-run plan, the --json report,
the cost line and the exit error live in summary.py.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from imagegen_cli.cli.imageargs import concurrency_of, max_cost_of, options_from, with_settings_from
from imagegen_cli.cli.options import EDIT, FROM, INPAINT, image_command
from imagegen_cli.cli.summary import cost_line, print_dry_run, print_report, raise_failures
from imagegen_cli.errors import AuthError, Interrupted, UsageError


def run_images(opts: dict[str, Any], *, inpaint: bool = False, edit: bool = False) -> None:
    """`generate`, `inpaint` and `edit`: a batch of one job."""
    from imagegen_cli.cli.console import note, warn
    from imagegen_cli.engine.fallback import estimates, require_keys, settle_chain
    from imagegen_cli.engine.options import Context
    from imagegen_cli.secrets import register_secret
    from imagegen_cli.settings import config as cfgmod

    quiet = bool(opts["quiet"])
    env = os.environ
    cfg = cfgmod.load(env)
    for w in cfg.warnings:
        warn(w)
    literal_prompt = None
    if opts.get("from_file") is not None:
        opts, literal_prompt = with_settings_from(opts, cfg, env)
    elif opts["prompt"] is None:
        raise UsageError("Missing PROMPT: pass the text, - for stdin, @FILE"
                         + ("" if inpaint or edit else ", or --from IMAGE"))
    ctx = Context(cfg, env, note=(lambda text: None) if quiet else note, warn=warn)
    options = options_from(opts)
    if literal_prompt is not None:
        options = options.with_(prompt=literal_prompt)  # as recorded: no -, no @FILE
    job = settle_chain(options, ctx, inpaint=inpaint, edit=edit)
    if job.plan.stdout and sys.stdout.isatty():
        # As curl and httpie do: image bytes on a terminal are garbage and can upset it.
        raise UsageError("refusing to write image bytes to a terminal; redirect to a file "
                         "or pass -o FILE")
    cap = max_cost_of(opts, cfg, env)
    ests = estimates(job)
    if cap is not None:
        from imagegen_cli.pricing.costs import check_cap

        check_cap(ests, *cap)
    jsonl = bool(opts.get("jsonl"))
    if job.plan.stdout and (opts["json_out"] or jsonl):
        raise UsageError(f"-o - and {'--jsonl' if jsonl else '--json'} both want stdout: "
                         "choose one")
    if opts["json_out"] and jsonl:
        raise UsageError("--json and --jsonl both choose the output form: pass one")
    register_secret(job.api_key)
    if opts["dry_run"]:
        print_dry_run(job, ests, quiet)
        return
    require_keys(job, env)  # every provider of the fallback chain too
    if job.provider.needs_key:
        clash = job.pcfg.key_clash(env)
        if clash and not quiet:
            note(clash)
    job.plan.check_writable()  # before anything is paid for
    outcome, fallbacks = _execute(opts, job, quiet, jsonl)
    for failure in outcome.failures:
        if isinstance(failure, AuthError) and job.pcfg.needs_key:
            failure.message += f" (the key came from {job.pcfg.key_origin(env)})"
    if opts["json_out"]:
        print_report(job, outcome, fallbacks)
    elif (opts["preview"] or cfg.defaults.get("preview")) and not (jsonl or job.plan.stdout):
        from imagegen_cli.cli.preview import show

        show([s.path for s in outcome.saved])  # only when stdout is a terminal
    if not (opts["json_out"] or quiet or jsonl) and _interactive():
        cost_line(job, outcome)  # interactive runs only: scripts read --json
    raise_failures(job, outcome)


def _interactive() -> bool:
    from imagegen_cli.cli.report import stderr_is_terminal

    return stderr_is_terminal()


def _execute(opts: dict[str, Any], job: Any, quiet: bool, jsonl: bool) -> tuple[Any, Any]:
    from imagegen_cli.cli import report
    from imagegen_cli.cli.console import err, make_reporter, warn
    from imagegen_cli.cli.state import debug_enabled
    from imagegen_cli.engine.events import Event, FellBack, ImageWritten, JobFinished
    from imagegen_cli.engine.scheduler import Scheduler

    finished: list[Any] = []
    fallbacks: list[Any] = []

    reporter = make_reporter(quiet)
    written = [0]

    def keep(ev: Event) -> None:
        if isinstance(ev, JobFinished):
            finished.append(ev.outcome)
        elif isinstance(ev, ImageWritten):
            written[0] += 1
            reporter.written(written[0], job.n)
        elif isinstance(ev, FellBack):
            warn(ev.text())
            fallbacks.append(ev.as_json())

    paths = report.PathsInOrder()
    sinks: list[Any] = [keep]
    if jsonl:
        sinks.append(report.ndjson)
    elif not (opts["json_out"] or job.plan.stdout):
        sinks.append(paths)
    log = (lambda line: err(line, prefix="debug")) if debug_enabled() else None
    reporter.job_hooks.append(_job_recorder(job, reporter))
    sched = Scheduler(concurrency=concurrency_of(opts.get("concurrency")),
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
    from imagegen_cli.engine import pending as jobrecords

    for info in finished[0].infos:
        if info.job_id:  # finished: nothing left to fetch later
            jobrecords.drop(job.provider.name, info.job_id)
    return finished[0], fallbacks


def _job_recorder(job: Any, reporter: Any) -> Any:
    """Notes each submitted provider job's request, so `imagegen job get` can write
    its images later with the names and metadata this command would have used."""
    from imagegen_cli.engine import pending as jobrecords

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
