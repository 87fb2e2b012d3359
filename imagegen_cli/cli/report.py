"""Reporters: sinks of the one event stream (imagegen_cli.engine.events), and the
frontend a command hands the engine to print with.

stdout gets results only (paths, or NDJSON records); stderr gets the
progress display on a terminal, else one summary line at the end.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, Self

from imagegen_cli.cli.console import err, is_terminal, note, out, use_color, warn
from imagegen_cli.cli.state import debug_enabled
from imagegen_cli.engine.events import (
    Event,
    ImageWritten,
    JobFinished,
    JobStarted,
    PartialWritten,
    failure_record,
    image_record,
)
from imagegen_cli.engine.run import Frontend
from imagegen_cli.secrets import redact
from imagegen_cli.types import Reporter


def frontend(quiet: bool) -> Frontend:
    """The console as the engine's frontend: notices (none with -q) and warnings on
    stderr, --debug's log, and stdout's bytes for `-o -`. A command adds its sinks
    and reporters once it knows what it prints."""
    return Frontend(note=_quiet if quiet else note, warn=warn,
                    log=_debug if debug_enabled() else None,
                    stdout=getattr(sys.stdout, "buffer", None))


def _quiet(text: str) -> None:
    """-q: no notices."""


def _debug(line: str) -> None:
    err(line, prefix="debug")


def _out(line: str) -> None:

    out(line)


class PathsInOrder:
    """`generate`: paths in index order (calls may finish out of order), each as soon
    as all before it are printed."""

    def __init__(self) -> None:
        self.next = 1
        self.waiting: dict[int, str] = {}

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, PartialWritten):
            _out(ev.image.path)  # a kept frame: listed as written, ahead of its image
            return
        if not isinstance(ev, ImageWritten):
            return
        self.waiting[ev.image.index] = ev.image.path
        while self.next in self.waiting:
            _out(self.waiting.pop(self.next))
            self.next += 1

    def flush(self) -> None:
        for index in sorted(self.waiting):
            _out(self.waiting.pop(index))


def paths(ev: Event) -> None:
    """`batch`: each path as it is written (order of completion)."""
    if isinstance(ev, ImageWritten):
        _out(ev.image.path)


def ndjson(ev: Event) -> None:
    """One JSON object per line: per image, and per failed job."""
    if isinstance(ev, ImageWritten):
        _out(json.dumps(image_record(ev), ensure_ascii=False))
    elif isinstance(ev, JobFinished) and ev.failed:
        _out(json.dumps(failure_record(ev.job, ev.outcome.failures[0]), ensure_ascii=False))


class LiveDisplay(Reporter):
    """A rich progress display on stderr (a terminal), shown while the run is inside
    `with`, and gone when it ends."""

    def __init__(self, *columns: Any) -> None:
        from rich.console import Console
        from rich.progress import Progress

        super().__init__()
        self.console = Console(stderr=True, no_color=not use_color(sys.stderr))
        self.progress = Progress(
            *columns, console=self.console, transient=True,
            # Results go to stdout whatever the display does: rich would otherwise take
            # over sys.stdout while it runs and print them on the terminal (stderr),
            # leaving `imagegen generate x > paths.txt` empty. Only when stdout is that
            # same terminal are they printed above the display, to keep it whole.
            redirect_stdout=is_terminal(sys.stdout))
        self.lock = threading.Lock()
        self.started = time.monotonic()

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


class BatchProgress(LiveDisplay):
    """The rich display on a terminal: an overall bar (done/failed/skipped, images per
    minute, ETA) plus a line per running job. Also each job's Reporter: per-step
    progress (the local model, downloads) lands on the job's line."""

    def __init__(self, total: int | None) -> None:
        """TOTAL: jobs in the batch; None while a long input is still being read."""
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

        super().__init__(
            TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeRemainingColumn())
        self.overall = self.progress.add_task("batch", total=total, detail="")
        self.lines: dict[int, Any] = {}
        self.stepping: set[int] = set()  # jobs whose line counts steps, not images
        self.counts = {"done": 0, "failed": 0, "skipped": 0}
        self.images = 0
        self.local = threading.local()

    def for_job(self, job: Any) -> Reporter:
        return _JobLine(self, job)

    def __call__(self, ev: Event) -> None:
        with self.lock:
            if isinstance(ev, JobStarted):
                # Images written of the job's n, until a local model reports its steps.
                self.lines[id(ev.job)] = self.progress.add_task(
                    f"  {ev.job.id}", total=ev.job.n, detail=_short(ev.job.request.prompt))
            elif isinstance(ev, ImageWritten):
                self.images += 1
                task = self.lines.get(id(ev.job))
                if task is not None and id(ev.job) not in self.stepping:
                    self.progress.advance(task)
            elif isinstance(ev, JobFinished):
                key = ("skipped" if ev.skipped else "failed" if ev.failed
                       else "done" if not ev.not_run else None)
                if key:
                    self.counts[key] += 1
                task = self.lines.pop(id(ev.job), None)
                self.stepping.discard(id(ev.job))
                if task is not None:
                    self.progress.remove_task(task)
                if ev.failed:
                    self.progress.console.print(
                        f"failed {ev.job.id}: {ev.outcome.failures[0]}", markup=False,
                        highlight=False)
                minutes = max(time.monotonic() - self.started, 1e-6) / 60
                c = self.counts
                self.progress.update(
                    self.overall, advance=1,
                    detail=f"done {c['done']} failed {c['failed']} skipped {c['skipped']}"
                           f"  {self.images / minutes:.0f} img/min")


class _JobLine(Reporter):
    def __init__(self, display: BatchProgress, job: Any) -> None:
        super().__init__()
        self.display = display
        self.owner = job

    def _task(self) -> Any:
        return self.display.lines.get(id(self.owner))

    def status(self, text: str) -> None:
        with self.display.lock:
            if (task := self._task()) is not None:
                self.display.progress.update(task, detail=_short(text))

    def step(self, done: int, total: int) -> None:
        with self.display.lock:
            if (task := self._task()) is not None:
                self.display.stepping.add(id(self.owner))
                self.display.progress.update(task, completed=done, total=total or None)

    def note(self, text: str) -> None:
        self.display.progress.console.print(f"note: {text}", markup=False, highlight=False)


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def summary_line(tally: Any, shard: str | None = None, invalid: int = 0) -> str:
    where = f" (shard {shard})" if shard else ""
    parts = [f"{tally.done} done", f"{tally.skipped} skipped", f"{tally.failed} failed"]
    if tally.not_run:
        parts.append(f"{tally.not_run} not run")
    if invalid:  # --skip-invalid: records left out before anything was sent
        parts.append(f"{invalid} invalid record{'' if invalid == 1 else 's'} left out")
    from imagegen_cli.pricing.costs import money

    cost, _ = tally.cost()
    spent = "cost unknown" if cost is None else money(cost)
    jobs = f"{tally.jobs} job{'' if tally.jobs == 1 else 's'}"
    images = f"{tally.images} image{'' if tally.images == 1 else 's'}"
    return (f"batch{where}: {jobs}: " + ", ".join(parts)
            + f"; {images} in {tally.elapsed:.1f} s, {spent}")


def stderr_is_terminal() -> bool:
    return is_terminal(sys.stderr)


# ---------------------------------------------------------------- one run's progress

class StderrReporter(Reporter):
    """Notices only: used when stderr is not a terminal or with -q."""

    def __init__(self, quiet: bool) -> None:
        super().__init__()
        self.quiet = quiet

    def note(self, text: str) -> None:
        if not self.quiet:
            note(text)


class RichReporter(LiveDisplay):
    """A spinner with elapsed time, then a bar for downloads and steps (stderr only)."""

    quiet = False

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        class Remaining(TimeRemainingColumn):
            """`eta 0:12` once a rate is known (steps, downloads); blank before."""

            def render(self, task: Any) -> Any:
                from rich.text import Text

                if task.total is None or task.time_remaining is None or task.finished:
                    return Text("")
                left = int(task.time_remaining)
                return Text(f"eta {left // 60}:{left % 60:02d}", style="progress.remaining")

        super().__init__(SpinnerColumn(), TextColumn("{task.description}"),
                         BarColumn(bar_width=24), TextColumn("{task.fields[detail]}"),
                         TimeElapsedColumn(), Remaining())
        self.task = self.progress.add_task("starting", total=None, detail="")
        self.job_states: dict[str, str] = {}
        self.done_text = ""
        self.download_started: float | None = None

    def status(self, text: str) -> None:
        with self.lock:
            self.progress.update(self.task, description=redact(text), total=None,
                                 detail=self._with_done(""))

    def step(self, done: int, total: int) -> None:
        with self.lock:
            detail = f"{done}/{total}" if total and total < 10_000 else ""
            self.progress.update(self.task, completed=done, total=total or None,
                                 detail=self._with_done(detail))

    def note(self, text: str) -> None:
        from rich.markup import escape

        self.progress.console.print(f"[cyan]note[/cyan]: {escape(redact(text))}",
                                    highlight=False, markup=True)

    def retry(self, text: str) -> None:
        self.note(text)
        self.status(text)

    def job_status(self, job_id: str, status: str) -> None:
        # Every job of the command, not just the last one to speak.
        with self.lock:
            self.job_states[job_id] = status
            text = ", ".join(f"job {j[:8]} {st}" for j, st in self.job_states.items())
        self.status(text)

    def download(self, done: int, total: int) -> None:
        now = time.monotonic()
        with self.lock:
            if self.download_started is None or done == 0:
                self.download_started = now
            took = max(now - self.download_started, 1e-3)
            size = f"{human_bytes(done)}" + (f" / {human_bytes(total)}" if total else "")
            detail = f"{size}, {human_bytes(done / took)}/s"
            self.progress.update(self.task, completed=done, total=total or None,
                                 detail=self._with_done(detail))

    def written(self, done: int, total: int) -> None:
        with self.lock:
            self.done_text = f"{done}/{total} written" if total > 1 else ""
            self.progress.update(self.task, detail=self._with_done(""))

    def _with_done(self, detail: str) -> str:
        return ", ".join(t for t in (self.done_text, detail) if t)


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def make_reporter(quiet: bool) -> Reporter:
    if quiet or not sys.stderr.isatty():
        return StderrReporter(quiet)
    return RichReporter()
