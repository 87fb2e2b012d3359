"""`imagegen generate`, `inpaint` and `edit`: flags -> request -> provider -> files.

Owns the three commands: flags made into typed options (imageargs.py), then the
engine's one entry point (engine/run.py: a batch of one job, settled, checked and
run through the scheduler), and what they print: paths or NDJSON as images are
written, progress on stderr. The --dry-run plan, the --json report, the cost
line and the exit error live in summary.py.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

import typer

from imagegen_cli.cli.imageargs import (
    concurrency_of,
    max_cost_of,
    options_from,
    with_settings_from,
)
from imagegen_cli.cli.options import image_command
from imagegen_cli.cli.summary import cost_line, print_dry_run, print_report, raise_failures
from imagegen_cli.errors import AuthError, UsageError

if TYPE_CHECKING:
    from imagegen_cli.engine.run import Frontend, Plan
    from imagegen_cli.engine.save import Outcome


def run_images(opts: dict[str, Any], *, inpaint: bool = False, edit: bool = False) -> None:
    """`generate`, `inpaint` and `edit`: a batch of one job."""
    from imagegen_cli.cli import report
    from imagegen_cli.engine import run
    from imagegen_cli.engine.fallback import estimates

    quiet = bool(opts["quiet"])
    env = os.environ
    frontend = report.frontend(quiet)
    ctx = run.session(frontend, env)
    literal_prompt = None
    if opts.get("from_file") is not None:
        opts, literal_prompt = with_settings_from(opts, ctx.cfg, env, frontend.note)
    elif opts["prompt"] is None:
        raise UsageError("Missing PROMPT: pass the text, - for stdin, @FILE"
                         + ("" if inpaint or edit else ", or --from IMAGE"))
    options = options_from(opts)
    if literal_prompt is not None:
        options = options.with_(prompt=literal_prompt)  # as recorded: no -, no @FILE
    plan = run.plan_one(options, ctx, inpaint=inpaint, edit=edit, stdout=frontend.stdout)
    job = plan.jobs[0]
    run.cap_cost(plan, max_cost_of(opts, ctx.cfg, env))
    jsonl = bool(opts.get("jsonl"))
    if job.plan.stdout and (opts["json_out"] or jsonl):
        raise UsageError(f"-o - and {'--jsonl' if jsonl else '--json'} both want stdout: "
                         "choose one")
    if opts["json_out"] and jsonl:
        raise UsageError("--json and --jsonl both choose the output form: pass one")
    if opts["dry_run"]:
        print_dry_run(job, estimates(job), quiet)
        return
    plan.concurrency = concurrency_of(opts.get("concurrency"))
    outcome, fallbacks = _execute(plan, frontend, bool(opts["json_out"]), jsonl, quiet)
    for failure in outcome.failures:
        # The refused key is that of the provider that answered (a fallback's, too).
        pcfg = next((m.pcfg for m in job.members if m.pcfg.name == failure.provider),
                    job.pcfg) if isinstance(failure, AuthError) else None
        if pcfg is not None and pcfg.needs_key:
            failure.message += f" (the key came from {pcfg.key_origin(env)})"
    if opts["json_out"]:
        print_report(job, outcome, fallbacks)
    elif (opts["preview"] or ctx.cfg.defaults.get("preview")) and not (jsonl
                                                                       or job.plan.stdout):
        from imagegen_cli.cli.preview import show

        show([s.path for s in outcome.saved])  # only when stdout is a terminal
    if not (opts["json_out"] or quiet or jsonl) and _interactive():
        cost_line(job, outcome)  # interactive runs only: scripts read --json
    raise_failures(job, outcome)


def _interactive() -> bool:
    from imagegen_cli.cli.report import stderr_is_terminal

    return stderr_is_terminal()


def _execute(plan: Plan, frontend: Frontend, json_out: bool, jsonl: bool,
             quiet: bool) -> tuple[Outcome, list[dict[str, Any]]]:
    """The job's outcome, and the fallbacks it took (for --json); paths or NDJSON
    printed as images are written, progress on stderr."""
    from imagegen_cli.cli import report
    from imagegen_cli.engine import run
    from imagegen_cli.engine.events import Event, FellBack, ImageWritten, JobFinished

    job = plan.jobs[0]
    reporter = report.make_reporter(quiet)
    finished: list[Outcome] = []
    fallbacks: list[dict[str, Any]] = []
    written = 0

    def keep(ev: Event) -> None:
        nonlocal written
        if isinstance(ev, JobFinished):
            finished.append(ev.outcome)
        elif isinstance(ev, ImageWritten):
            written += 1
            reporter.written(written, job.n)
        elif isinstance(ev, FellBack):
            fallbacks.append(ev.as_json())

    paths = report.PathsInOrder()
    sinks: list[run.Sink] = [keep]
    if jsonl:
        sinks.append(report.ndjson)
    elif not (json_out or job.plan.stdout):
        sinks.append(paths)
    try:
        run.run(plan, dataclasses.replace(frontend, sinks=sinks, live=reporter,
                                          reporter_for=lambda j: reporter))
    finally:
        paths.flush()  # whatever happened, every file written is listed
    return finished[0], fallbacks


@image_command("generate")
def generate(**opts: Any) -> None:
    """Generate images from a prompt.

    PROMPT is the text itself, - to read stdin, or @FILE to read a file. Prints the
    path of each image written (or one JSON object with --json).
    """
    run_images(opts)


@image_command("inpaint")
def inpaint(**opts: Any) -> None:
    """Repaint part of an image: white (or transparent) mask pixels mark the area.

    PROMPT is the text itself, - to read stdin, or @FILE to read a file. Without
    --mask, the image's own transparent pixels mark the area.
    """
    run_images(opts, inpaint=True)


@image_command("edit")
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
