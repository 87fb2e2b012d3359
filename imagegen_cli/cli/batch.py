"""`imagegen batch FILE|-`: one job per input record, concurrent, resumable, shardable.

Flags are the defaults of every record (a record's field wins); the core
settles records into jobs (settle.py), the journal skips finished ones, the
scheduler runs the rest, and the reporters print what the event stream says.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import typer

from imagegen_cli.cli.console import err, note, out
from imagegen_cli.cli.imageargs import concurrency_of, max_cost_of, options_from
from imagegen_cli.cli.options import option_param, params_for
from imagegen_cli.errors import ImagegenError, PartialError, UsageError
from imagegen_cli.settings.options import BATCH as BATCH_COMMAND
from imagegen_cli.settings.options import RUN_HELP, finite

if TYPE_CHECKING:
    from imagegen_cli.engine.events import Tally
    from imagegen_cli.engine.jobs import Job
    from imagegen_cli.engine.run import Frontend, Plan

Opt = typer.Option
BATCH_HELP = "Batch"

FILES = inspect.Parameter("files", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[
    list[str], typer.Argument(metavar="FILE", help="Records: text (one prompt a line), .jsonl "
                              "or .csv; - reads stdin. With --merge: NDJSON files to join.")])

BATCH: list[inspect.Parameter] = [
    option_param("input_format", Annotated[str | None, Opt("--input-format", metavar="FMT", help="text|jsonl|csv|csv-multiline (default: from the extension; csv-multiline: quoted cells may span lines).", rich_help_panel=BATCH_HELP)]),
    option_param("skip_invalid", Annotated[bool, Opt("--skip-invalid", help="Report bad records and run the rest (default: exit 2 before sending anything).", rich_help_panel=BATCH_HELP)], False),
    option_param("max_failures", Annotated[int | None, Opt("--max-failures", metavar="N", help="Stop starting jobs once N have failed (default: no limit).", rich_help_panel=BATCH_HELP)]),
    option_param("fail_fast", Annotated[bool, Opt("--fail-fast", help="Same as --max-failures 1.", rich_help_panel=BATCH_HELP)], False),
    option_param("rpm", Annotated[float | None, Opt("--rpm", metavar="N", help="Requests per minute per provider (default: [providers.X] rpm, else none).", rich_help_panel=RUN_HELP)]),
    option_param("state", Annotated[str | None, Opt("--state", metavar="FILE", help="Journal of finished images (default: .imagegen-batch.jsonl in the output folder).", rich_help_panel=BATCH_HELP)]),
    option_param("force", Annotated[bool, Opt("--force", help="Redo every job, even those the journal says are finished.", rich_help_panel=BATCH_HELP)], False),
    option_param("allow_outside", Annotated[bool, Opt("--allow-outside", help="Let a record's `output` name a path outside the -o folder (default: exit 2 naming the record).", rich_help_panel=BATCH_HELP)], False),
    option_param("summary", Annotated[str | None, Opt("--summary", metavar="FILE", help="Write a JSON summary (counts, failures, time, usage) to FILE.", rich_help_panel=BATCH_HELP)]),
    option_param("shard", Annotated[str | None, Opt("--shard", metavar="I/N", help="Run only shard I of N (1-based; default: from JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID or CI_NODE_INDEX).", rich_help_panel=BATCH_HELP)]),
    option_param("shard_count", Annotated[int | None, Opt("--shard-count", metavar="N", help="N for JOB_COMPLETION_INDEX (or IMAGEGEN_SHARD_COUNT).", rich_help_panel=BATCH_HELP)]),
    option_param("merge", Annotated[bool, Opt("--merge", help="Join the NDJSON files given (shards' --json output) into one manifest on stdout.", rich_help_panel=BATCH_HELP)], False),
    option_param("batch_api", Annotated[bool, Opt("--batch-api", help="Send the jobs through OpenAI's Batch API (half price, answered within 24 h); a re-run polls and fetches, never submits twice.", rich_help_panel=BATCH_HELP)], False),
    option_param("poll_interval", Annotated[float | None, Opt("--poll-interval", metavar="SECONDS", help="With --batch-api: seconds between status checks (default 30).", rich_help_panel=BATCH_HELP)]),
    option_param("no_wait", Annotated[bool, Opt("--no-wait", help="With --batch-api: submit, print each batch id and exit 0; run again later to fetch.", rich_help_panel=BATCH_HELP)], False),
]


def batch(**opts: Any) -> None:
    """Run one job per record of FILE (- for stdin): text, JSONL or CSV.

    Prints each image's path as it is written (or NDJSON with --json). Re-running
    skips finished jobs; --shard I/N splits the work across machines.
    """
    if opts["merge"]:
        from imagegen_cli.cli.merge import merge

        merge(opts["files"])
        return
    if len(opts["files"]) != 1:
        raise UsageError("batch takes one FILE (or - for stdin); several are for --merge")
    run_batch(opts)


def run_batch(opts: dict[str, Any]) -> None:
    from imagegen_cli.cli import report
    from imagegen_cli.engine import records, run
    from imagegen_cli.engine.jobs import parse_shard, shard_from_env
    from imagegen_cli.files.naming import BATCH_TEMPLATE

    quiet = bool(opts["quiet"])
    concurrency = concurrency_of(opts["concurrency"])
    max_failures = 1 if opts["fail_fast"] else opts["max_failures"]
    if max_failures is not None and max_failures < 1:
        raise UsageError(f"--max-failures {max_failures}: pass 1 or more")
    if opts["rpm"] is not None and not (finite(opts["rpm"]) and opts["rpm"] > 0):
        raise UsageError(f"--rpm {opts['rpm']:g}: pass a number more than 0")
    if opts["output"] == "-":
        raise UsageError("batch writes files: -o - (stdout) takes one image; pass a folder")
    out = opts["output"]
    if out and "{" not in out and not Path(out).suffix and not out.endswith(("/", os.sep)) \
            and not Path(out).expanduser().is_file():
        # `-o out`: a batch's many images go into a folder, made if need be (a name
        # with an extension, or a template, is still a file name).
        opts = {**opts, "output": out + "/"}
    frontend = report.frontend(quiet)
    shard = parse_shard(opts["shard"]) if opts["shard"] else shard_from_env(
        os.environ, opts["shard_count"])
    if shard is not None and shard.source != "--shard":
        frontend.note(f"running shard {shard} (from {shard.source})")
    if (opts.get("no_wait") or opts.get("poll_interval") is not None) and not opts.get("batch_api"):
        raise UsageError("--no-wait and --poll-interval go with --batch-api")

    def make_plan() -> Plan:
        name, numbered, width = _open_input(opts["files"][0])
        fmt = records.format_by_name(name, opts["input_format"])
        if fmt is None:
            fmt, numbered = records.peek_format(numbered)
        base = options_from({**opts, "prompt": None})
        invalid = run.Invalid(frontend.warn) if opts["skip_invalid"] else None
        recs = records.stream(numbered, name, fmt, base, invalid)
        ctx = run.session(frontend, os.environ, default_template=BATCH_TEMPLATE)
        batch = run.Batch(output=opts["output"], state=Path(opts["state"]) if opts["state"]
                          else None, force=opts["force"], shard=shard,
                          allow_outside=opts["allow_outside"],
                          summary=Path(opts["summary"]) if opts["summary"] else None)
        plan = run.plan_batch(recs, ctx, source=name, invalid=invalid, batch=batch,
                              concurrency=concurrency, rpm=opts["rpm"],
                              max_failures=max_failures, width=width)
        if not opts.get("batch_api"):  # a batch's cap is kept when it is submitted
            run.cap_cost(plan, max_cost_of(opts, ctx.cfg, os.environ))
        return plan

    plan = make_plan()
    if opts.get("batch_api"):
        from imagegen_cli.cli.batchapi import run_batch_api

        run_batch_api(opts, plan, make_plan, frontend, quiet, write=_run, finish=_exit)
        return
    if opts["dry_run"]:
        _dry_run(plan.each(), quiet, run.written_before(plan))
        return
    _exit(_run(opts, plan, frontend, quiet))


def _open_input(arg: str) -> tuple[str, Iterator[tuple[int, str]], int | None]:
    """FILE (or - for stdin) as numbered lines read as they are needed (a million-line
    file is never held whole), and the digits of its line count where it can be
    counted first (a regular file: the width of a long batch's default ids)."""
    from imagegen_cli.engine import records
    from imagegen_cli.engine.stream import count_lines

    if arg == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("batch - reads records from stdin, but stdin is a terminal: "
                             "pipe them in or pass FILE")
        raw = getattr(sys.stdin, "buffer", None)
        if raw is None:  # a text-only stream: already decoded
            text = sys.stdin.read().removeprefix("\ufeff")
            return "<stdin>", iter(records.lines(text)), None
        return "<stdin>", records.read_lines(raw, "stdin"), None
    path = Path(arg).expanduser()
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise UsageError(f"Batch file {path} does not exist: pass a text, .jsonl or .csv "
                         "file, or - for stdin") from None
    except IsADirectoryError:
        raise UsageError(f"Batch file {path} is a folder: pass a text, .jsonl or .csv "
                         "file, or - for stdin") from None
    except OSError as exc:
        raise UsageError(f"Cannot read batch file {path}: {exc.strerror or exc}") from None
    if path.is_dir():
        f.close()
        raise UsageError(f"Batch file {path} is a folder: pass a text, .jsonl or .csv "
                         "file, or - for stdin")
    count = count_lines(path)
    return str(path), _lines_of(f, path), len(str(count)) if count else None


def _lines_of(f: BinaryIO, path: Path) -> Iterator[tuple[int, str]]:
    from imagegen_cli.engine import records

    with f:
        try:
            yield from records.read_lines(f, f"Batch file {path}")
        except OSError as exc:
            raise UsageError(f"Cannot read batch file {path}: {exc.strerror or exc}") from None


def _dry_run(jobs: Iterable[Job], quiet: bool = False,
             written: Callable[[Job], int] = lambda job: 0) -> None:
    """Each job's exact calls (secrets redacted) as a JSON line, its fallbacks and
    estimated cost; the batch's estimate on stderr. A job the journal says is written
    (WRITTEN: its images an earlier run wrote) is marked `"skipped": true` and left
    out of the estimate, as a re-run would send nothing for it."""
    import json

    from imagegen_cli.cli.summary import note_shown
    from imagegen_cli.engine.fallback import estimates
    from imagegen_cli.pricing.costs import money_range
    from imagegen_cli.secrets import register_secret

    low = high = 0.0
    unknown = count = skipped = 0
    for job in jobs:
        done = written(job)
        if done >= job.n:
            skipped += 1
            out(json.dumps({"id": job.id, "line": job.line, "key": job.key,
                            "skipped": True}, ensure_ascii=False))
            continue
        count += 1
        register_secret(job.api_key)
        shown = job.api_key or (f"${job.pcfg.api_key_env}" if job.pcfg.api_key_env else None)
        ests = estimates(job)
        line = {"id": job.id, "line": job.line, "key": job.key, **job.describe(shown),
                "estimated_cost": ests[0].as_json()}
        if len(job.members) > 1:
            line["fallback"] = [m.provider.name for m in job.members[1:]]
        out(json.dumps(line, ensure_ascii=False))
        if not quiet:
            note_shown(line, f" (job {job.id})")
        if done:
            line["images_written_before"] = done  # only the rest would be sent
        if ests[0].known:
            rest = (job.n - done) / job.n
            low, high = low + ests[0].low * rest, high + ests[0].high * rest
        else:
            unknown += 1
    if not quiet and (count or skipped):
        note(f"estimated cost of {count} job{'' if count == 1 else 's'}: "
             f"{money_range(low, high)}"
             + (f", plus {unknown} at an unknown price" if unknown else "")
             + (f"; {skipped} finished earlier (the journal), skipped" if skipped else ""))


def _run(opts: dict[str, Any], plan: Plan, frontend: Frontend, quiet: bool) -> Tally:
    """The batch through the engine: paths (or NDJSON) on stdout as images are
    written, the progress display on a terminal, then one summary line."""
    from imagegen_cli.cli import report
    from imagegen_cli.cli.report import StderrReporter
    from imagegen_cli.engine import run
    from imagegen_cli.engine.events import Event, ImageWritten

    json_out = opts["json_out"] or opts.get("jsonl")
    sinks: list[run.Sink] = [report.ndjson if json_out else report.paths]
    shown: list[str] = []

    def preview(ev: Event) -> None:
        if isinstance(ev, ImageWritten):
            shown.append(ev.image.path)

    if opts.get("preview") and not json_out:  # after the run, stdout a terminal only
        sinks.append(preview)
    display = None
    if not quiet and report.stderr_is_terminal() and (plan.jobs or plan.total() is None):
        display = report.BatchProgress(plan.total())
        sinks.append(display)
    plain = StderrReporter(quiet)
    tally = run.run(plan, dataclasses.replace(
        frontend, sinks=sinks, reporter_for=display.for_job if display else lambda job: plain,
        live=display if display is not None else contextlib.nullcontext(),
        stdout=None))  # stdout is for paths or NDJSON: a batch writes no image bytes there
    if shown:
        from imagegen_cli.cli.preview import show

        show(shown)
    batch = plan.batch
    if not quiet and batch is not None:
        err(report.summary_line(tally, str(batch.shard) if batch.shard else None,
                                len(batch.invalid)))
    return tally


def _exit(tally: Tally) -> None:
    if not tally.failed and not tally.not_run:
        return
    job, first = tally.failures[0] if tally.failures else (None, None)
    where = f"line {job.line} (id {job.id})" if job is not None else ""
    if tally.done or tally.skipped:
        raise PartialError(f"{tally.failed} of {tally.jobs} jobs failed"
                           + (f", {tally.not_run} not run" if tally.not_run else "")
                           + (f"; first, {where}: {first}" if first else ""))
    if isinstance(first, ImagegenError):
        more = f" ({tally.failed} jobs failed)" if tally.failed > 1 else ""
        first.message = f"{where}: {first.message}{more}"
        raise first
    raise PartialError(f"{tally.not_run} jobs not run")


def register(app: typer.Typer) -> None:
    # The batch's own options first, then the image options every record defaults to.
    params = [FILES, *BATCH, *params_for(BATCH_COMMAND)]
    batch.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    batch.__annotations__ = {p.name: p.annotation for p in params}
    app.command("batch")(batch)
