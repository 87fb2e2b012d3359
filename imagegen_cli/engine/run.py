"""The one entry point of an image run: typed options -> settled jobs -> checks ->
scheduler -> event stream.

`generate`, `inpaint` and `edit` are a batch of one job; `batch` makes a job per
record. Each command parses its flags into typed options; `session` reads the
config, `plan_one` or `plan_batch` settles the options into a `Plan`, `cap_cost`
applies --max-cost, and `run` carries out any plan the same way: every key
present, every output writable, nothing sent before all checks pass; then the
scheduler runs every job's calls (a job's fallback chain included) and its events
go to the frontend's sinks. A batch adds its journal (finished images are
skipped on a re-run), its budget and its --summary file; a one-off run notes each
provider-side job so `imagegen job get` can fetch it later.

What a run prints with comes in a `Frontend`: the CLI's console and reporters, a
test's lists. Nothing here prints, and nothing here knows Typer or rich.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from imagegen_cli.engine import history, pending
from imagegen_cli.engine.budget import BatchBudget, batch_budget
from imagegen_cli.engine.calls import run_chain
from imagegen_cli.engine.events import Event, FellBack, JobFinished, Tally
from imagegen_cli.engine.fallback import estimates, require_keys, settle_chain
from imagegen_cli.engine.jobs import Job, Shard
from imagegen_cli.engine.journal import DEFAULT_NAME, Journal
from imagegen_cli.engine.options import Context, ImageOptions
from imagegen_cli.engine.records import Record
from imagegen_cli.engine.scheduler import Gates, Scheduler
from imagegen_cli.engine.stream import JobStream
from imagegen_cli.errors import ExitCode, Interrupted, OutputError, UsageError
from imagegen_cli.files.atomic import clean_stale_parts, refuse_symlink, write_atomic
from imagegen_cli.files.naming import OutputPlan, inside, static_dir
from imagegen_cli.pricing.costs import check_cap, money
from imagegen_cli.secrets import register_secret
from imagegen_cli.settings import config as cfgmod
from imagegen_cli.types import ImageRequest, Reporter

Sink = Callable[[Event], None]


def _silent(text: str) -> None:
    """Says nothing: a frontend that does not listen."""


def _no_reporter(job: Job) -> Reporter:
    return Reporter()


@dataclass
class Frontend:
    """What a run prints with, handed in by whoever started it."""

    note: Callable[[str], None] = _silent  # notices (the CLI passes none with -q)
    warn: Callable[[str], None] = _silent  # what must be seen even with -q
    log: Callable[[str], None] | None = None  # --debug: each HTTP exchange
    stdout: IO[bytes] | None = None  # where `-o -` writes image bytes
    sinks: Sequence[Sink] = ()  # readers of the event stream: paths, NDJSON, progress
    reporter_for: Callable[[Job], Reporter] = _no_reporter  # each job's progress
    # A display held open while the calls run (a progress bar), closed however they end.
    live: AbstractContextManager[object] = field(default_factory=contextlib.nullcontext)
    # How the history names this run: the command (else generate/edit/inpaint/batch, from
    # the plan) and what it was part of (a batch's file; a server's request and client ids).
    history_command: str | None = None
    history_part: str | None = None


@dataclass
class Batch:
    """What makes a run a batch: a journal of finished images, so a re-run skips them
    (at STATE, else in the folder of OUTPUT), and a --summary file."""

    output: str | None = None
    state: Path | None = None
    force: bool = False  # redo every job, whatever the journal says
    summary: Path | None = None
    shard: Shard | None = None
    allow_outside: bool = False  # a record's `output` may name a path outside -o
    invalid: list[str] = field(default_factory=list)  # records left out (--skip-invalid)


@dataclass
class Plan:
    """Settled jobs, and how to run them. A batch's jobs come from its STREAM, read as
    the run goes; JOBS then holds those read ahead before it (all of them when the
    input is within stream.WINDOW records)."""

    jobs: list[Job]
    ctx: Context
    concurrency: int = 4
    rpm: float | None = None
    max_failures: int | None = None
    budget: BatchBudget | None = None
    batch: Batch | None = None  # None: a one-off run (generate, inpaint, edit)
    stream: JobStream | None = None
    gates: Gates | None = None  # shared with other runs (a server's); None: its own
    # Where each call's images come from (None: the providers, live); `batch
    # --batch-api` reads them from a batch's answered lines (engine/batchapi.py).
    chain: Callable[..., Any] | None = None

    def each(self) -> Iterable[Job]:
        """Every job, in order: a list when all are known, else the stream."""
        if self.stream is None:
            return self.jobs
        return list(self.stream) if self.stream.exhausted else self.stream

    def total(self) -> int | None:
        """How many jobs, once known (a long batch's, when its input is all read)."""
        return len(self.jobs) if self.stream is None else self.stream.total


@dataclass
class Invalid:
    """--skip-invalid: each bad record is said (as a warning) and left out."""

    warn: Callable[[str], None]
    errors: list[UsageError] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # the same, as said (the summary's)

    def __call__(self, exc: UsageError) -> None:
        if len(self.errors) < 1000:  # kept for the checks; a million bad lines are counted
            self.errors.append(exc)
        self.texts.append(str(exc))
        self.warn(f"skipped: {exc}")


# ---------------------------------------------------------------- planning

def session(frontend: Frontend, env: Mapping[str, str], *,
            default_template: str | None = None) -> Context:
    """The config (its warnings said), the environment and where settling's notices
    go: what every job of a run settles against."""
    cfg = cfgmod.load(env)
    for w in cfg.warnings:
        frontend.warn(w)
    return Context(cfg, env, note=frontend.note, warn=frontend.warn,
                   default_template=default_template)


def plan_one(options: ImageOptions, ctx: Context, *, inpaint: bool = False,
             edit: bool = False, stdout: IO[bytes] | None = None) -> Plan:
    """OPTIONS settled into a run of one job (its fallback chain included)."""
    job = settle_chain(options, ctx, inpaint=inpaint, edit=edit)
    if job.plan.stdout and stdout is not None and _is_terminal(stdout):
        # As curl and httpie do: image bytes on a terminal are garbage and can upset it.
        raise UsageError("refusing to write image bytes to a terminal; redirect to a file "
                         "or pass -o FILE")
    register_secret(job.api_key)
    return Plan([job], ctx)


def plan_batch(records: Iterable[Record], ctx: Context, *, source: str,
               invalid: Invalid | None = None, batch: Batch | None = None,
               concurrency: int = 4, rpm: float | None = None,
               max_failures: int | None = None, width: int | None = None) -> Plan:
    """One job per record of SOURCE, read as a stream: each settled (a bad record is
    exit 2 naming its line and field, or left out with INVALID), keyed for the journal,
    and only those of BATCH's shard kept. The first stream.WINDOW records are read and
    checked now, before anything is sent; the rest as the run goes. WIDTH: digits of
    the default ids (else from the last line, when the input ends within the window)."""
    batch = batch or Batch()
    root = None if batch.allow_outside else output_folder(batch, ctx)

    def inside_root(job: Job) -> None:
        if root is not None and not job.plan.stays_in(root):
            raise UsageError(
                f"output {job.plan.template} is outside the -o folder {root} (after "
                "resolving .. and symlinks); keep it inside, or pass --allow-outside "
                "to let records write anywhere")

    stream = JobStream(iter(records), ctx, source=source, check=inside_root,
                       shard=batch.shard, width=width, on_invalid=invalid)
    stream.prime()
    skipped = invalid.texts if invalid is not None else []
    if stream.exhausted and skipped and not stream.valid:
        raise UsageError(f"{source}: no valid record ({len(skipped)} skipped); fix them and "
                         "run again")
    if stream.exhausted and not stream.records_read and not skipped:
        ctx.note(f"{source} holds no records (only blank or comment lines): nothing to do")
    batch.invalid = skipped  # grows as the rest of the input is read
    return Plan(stream.primed(), ctx, concurrency=concurrency, rpm=rpm,
                max_failures=max_failures, batch=batch, stream=stream)


def cap_cost(plan: Plan, cap: tuple[float, str] | None) -> None:
    """--max-cost (amount, where it was set): a one-off run must fit whole, on any
    provider of its chain; a batch gets a budget that admits jobs while they fit."""
    if cap is None:
        return
    if plan.batch is not None:
        if plan.stream is not None:
            plan.budget = batch_budget(plan.stream.templates.made or [], *cap)
            plan.stream.templates.on_new.append(plan.budget.check)
        else:
            plan.budget = batch_budget(plan.jobs, *cap)
        return
    for job in plan.jobs:
        check_cap(estimates(job), *cap)


# ---------------------------------------------------------------- running

def run(plan: Plan, frontend: Frontend) -> Tally:
    """Run PLAN: check it, then every job's calls through one scheduler, the events to
    FRONTEND's sinks. Returns the tally; a job's failures are in it (and in its
    JobFinished event), not raised. Ctrl-C ends in Interrupted, saying what is done."""
    jobs, batch = plan.jobs, plan.batch
    _check(plan, frontend)
    journal = _journal(plan, batch) if batch is not None else None
    if plan.stream is not None:
        plan.stream.templates.seal()
    sinks = [*frontend.sinks, _fallback_warner(frontend.warn)]
    if plan.budget is not None:
        sinks.append(plan.budget)  # a finished job's real cost frees what it did not spend
        if journal is not None:
            # --max-cost is the batch's, not one run's: what earlier runs of it spent
            # (the journal records each image's cost) counts against it. A long batch,
            # not read whole yet: everything its journal records.
            whole = plan.stream is None or plan.stream.exhausted
            before = journal.spent(jobs if whole else None)
            if before:
                plan.budget.committed += before
                frontend.note(f"this batch spent {money(before)} of {plan.budget.where} "
                              f"{money(plan.budget.cap)} in earlier runs")
    if batch is None:
        for job in jobs:
            rep = frontend.reporter_for(job)
            rep.job_hooks.append(_job_recorder(job, rep))
        sinks.append(_drop_job_records)
    recorder = history.recorder(
        plan.ctx.cfg, plan.ctx.env, command=frontend.history_command or _command(plan),
        warn=frontend.warn,
        batch=plan.stream.source if plan.stream is not None else frontend.history_part)
    sched = Scheduler(
        concurrency=plan.concurrency, rpm=plan.rpm, max_failures=plan.max_failures,
        sinks=sinks, reporter_for=frontend.reporter_for, log=frontend.log,
        admit=plan.budget.admit if plan.budget is not None else None,
        done_before=(journal.finished if journal is not None and batch is not None
                     and not batch.force else None),
        claim_for=journal.claim_for if journal is not None else (lambda job: None),
        stdout=frontend.stdout if any(j.plan.stdout for j in jobs) else None,
        warn=frontend.warn, note=frontend.note, history=recorder, gates=plan.gates,
        chain=plan.chain or run_chain)
    status = int(ExitCode.INTERRUPTED)
    try:
        with frontend.live:
            tally = sched.run(plan.each())
        status = _status(tally)
    except Interrupted as exc:
        _interrupted(exc, plan, sched.tally)
        raise
    finally:
        if journal is not None:
            journal.close()
        if recorder is not None:
            recorder.finish(status)
    if batch is not None and batch.summary is not None:
        _write_summary(batch, tally)
    return tally


def _command(plan: Plan) -> str:
    if plan.batch is not None:
        return "batch"
    req = plan.jobs[0].request if plan.jobs else None
    if req is not None and req.mask is not None:
        return "inpaint"
    return "edit" if req is not None and (req.edit or req.images) else "generate"


def _status(tally: Tally) -> int:
    """The exit status the run ends with, as the CLI maps it (cli/batch.py `_exit`,
    cli/summary.py): 0, 8 when some jobs failed beside others done, else the first
    failure's."""
    if not tally.failed and not tally.not_run:
        return 0
    if tally.done or tally.skipped or not tally.failures:
        return int(ExitCode.PARTIAL)
    return int(tally.failures[0][1].exit_code)


def _check(plan: Plan, frontend: Frontend) -> None:
    """Before anything is sent or paid for: every key of every chain (exit 3), a note
    where two keys clash, every output writable, the --summary file too (exit 7). A long
    batch's jobs read later are checked as they are read (their settled templates)."""
    env = plan.ctx.env
    clashes: set[str] = set()
    writable: set[str] = set()

    def keys(job: Job) -> None:
        require_keys(job, env)
        for m in job.members:
            register_secret(m.key)
        clash = job.pcfg.key_clash(env) if job.provider.needs_key else None
        if clash and clash not in clashes:
            clashes.add(clash)
            frontend.note(clash)

    def output(job: Job) -> None:
        if job.plan.template not in writable:
            writable.add(job.plan.template)
            job.plan.check_writable()

    for job in plan.jobs:
        keys(job)
    for job in plan.jobs:
        output(job)
    if plan.stream is not None:
        # Templates: the jobs copied from them from now on carry their keys.
        plan.stream.templates.add_hook(keys)
        plan.stream.templates.add_hook(output)
    if plan.batch is not None and plan.batch.summary is not None:
        _check_summary(plan.batch.summary)


_SUMMARY_FIX = "remove it, or pass another FILE"


def _check_summary(path: Path) -> None:
    """OutputError (exit 7) now, not after the batch ran, for a --summary FILE that
    cannot be written (its folder is made here, as the writing would)."""
    refuse_symlink(path, "--summary", _SUMMARY_FIX)
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "it is a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(path.parent, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise OutputError(f"Cannot write --summary {path}: {exc.strerror or exc} (pass "
                          "another FILE)") from None


def output_folder(batch: Batch, ctx: Context) -> Path:
    """The batch's -o folder (else IMAGEGEN_OUTPUT's, the config's, the current one):
    its journal's home, the one place its records write and its cleanup looks."""
    return static_dir(OutputPlan.from_option(
        batch.output or ctx.env.get(cfgmod.ENV_OUTPUT) or ctx.cfg.defaults.get("output"),
        default=ctx.default_template).template)


def written_before(plan: Plan) -> Callable[[Job], int]:
    """For `batch --dry-run`: how many of a job's images the batch's journal says an
    earlier run wrote (and are still there, intact). The journal is read without
    taking its lock and nothing is written: a dry run may look at a batch while it
    runs."""
    batch = plan.batch
    if batch is None or batch.force:
        return lambda job: 0
    journal = Journal(batch.state or output_folder(batch, plan.ctx) / DEFAULT_NAME)

    def written(job: Job) -> int:
        return len(journal.finished(job) or ())

    return written


def _journal(plan: Plan, batch: Batch) -> Journal:
    folder = output_folder(batch, plan.ctx)
    journal = Journal(batch.state or folder / DEFAULT_NAME, force=batch.force)
    if plan.jobs or (plan.stream is not None and not plan.stream.exhausted):
        journal.open()
    # What a killed run left mid-write: in the output folders, and wherever the journal
    # says earlier runs wrote (templates with {fields} in folder names), but never
    # outside the -o folder: a journal is data (copied, shared, --state), and its
    # paths must not steer deletions elsewhere.
    folders = {static_dir(j.plan.template) for j in plan.jobs}
    folders |= {Path(str(rec.get("path"))).parent for rec in journal.entries.values()}
    cleaned: set[Path] = set()

    def clean(d: Path) -> None:
        if d not in cleaned and inside(d, folder):
            cleaned.add(d)
            clean_stale_parts(d)

    for d in folders:
        clean(d)
    if plan.stream is not None:  # the folders of jobs read later, once each
        plan.stream.templates.add_hook(lambda job: clean(static_dir(job.plan.template)))
    return journal


def _fallback_warner(warn: Callable[[str], None]) -> Sink:
    def say(ev: Event) -> None:
        if isinstance(ev, FellBack):
            warn(ev.text())  # even with -q: the images come from another provider

    return say


def _interrupted(exc: Interrupted, plan: Plan, tally: Tally) -> None:
    """What Ctrl-C left done, in the message: a batch's jobs (a re-run does the rest),
    a one-off run's images."""
    batch = plan.batch
    if batch is not None:
        if plan.stream is not None:
            # A long input: the jobs read (settled) but not yet handed to the scheduler
            # are not run either; records past them were never read (`unread`).
            read = plan.stream.made
            if read > tally.jobs:
                tally.not_run += read - tally.jobs
                tally.jobs = read
            tally.unread = not plan.stream.exhausted
        total = plan.total()
        of = f"{total}" if total is not None else f"the {tally.jobs} read of more"
        exc.message += (f" ({tally.done + tally.skipped} of {of} jobs finished; "
                        "run the same command again to do the rest: finished jobs are "
                        "skipped)")
        if batch.summary is not None:  # a cancelled CI job still gets its artifact
            _write_summary(batch, tally, interrupted=True)
        return
    n, written = sum(j.n for j in plan.jobs), tally.images
    listed = written and not any(j.plan.stdout for j in plan.jobs)
    if n > 1 or written:
        exc.message = exc.message.replace(
            "interrupted;", f"interrupted; {written} of {n} images written"
            + (" (listed on stdout)" if listed else "") + ",", 1)


def _write_summary(batch: Batch, tally: Tally, interrupted: bool = False) -> None:
    assert batch.summary is not None
    refuse_symlink(batch.summary, "--summary", _SUMMARY_FIX)  # made since the check
    data = tally.summary(str(batch.shard) if batch.shard else None, batch.invalid,
                         interrupted)
    write_atomic(batch.summary,
                 (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode(),
                 overwrite=True)


def _job_recorder(job: Job, reporter: Reporter) -> Callable[[str, ImageRequest], None]:
    """Notes each submitted provider job's request, so `imagegen job get` can write
    its images later with the names and metadata this run would have used."""
    req, plan = job.request, job.plan

    def record(job_id: str, sub: ImageRequest) -> None:
        index = (sub.seed - req.seed + 1 if sub.seed is not None and req.seed is not None
                 else len(reporter.jobs))
        pending.save(pending.JobRecord(
            provider=job.provider.name, job_id=job_id,
            request=pending.request_fields(sub), index=index, count=req.n,
            output=None if plan.stdout else plan.template, format=job.files.format,
            metadata=job.files.metadata, sidecar=job.files.sidecar,
            extra={"exact": plan.exact, **({"where": reporter.job_where[job_id]}
                                            if job_id in reporter.job_where else {})}))

    return record


def _drop_job_records(ev: Event) -> None:
    """A finished job's provider-side jobs have nothing left to fetch later."""
    if isinstance(ev, JobFinished):
        for info in ev.outcome.infos:
            if info.job_id:
                pending.drop(ev.job.provider.name, info.job_id)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced by an object without it, or closed
        return False
