"""stdout carries results only; stderr carries progress, notices and errors."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from imagegen_cli.secrets import redact
from imagegen_cli.types import Reporter


def use_color(stream: Any) -> bool:
    """NO_COLOR (no-color.org) wins, then FORCE_COLOR, then TERM=dumb, then a terminal."""
    env = os.environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR") and env["FORCE_COLOR"] != "0":
        return True
    if env.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


_stdout: dict[str, Any] = {"closed": False, "error": None}  # stdout during this command


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced by an object without it, or closed
        return False


def out(line: str) -> None:
    """One result line on stdout. A reader that went away (`| head -1`) stops the
    printing, never the work: every image is still written. Any other failure to
    print (a full disk) is remembered: the command then ends in exit 7."""
    if _stdout["closed"]:
        return
    try:
        sys.stdout.write(redact(line) + "\n")
        sys.stdout.flush()
    except OSError as exc:
        _stdout["closed"] = True
        if not isinstance(exc, BrokenPipeError):
            _stdout["error"] = exc.strerror or str(exc)
        silence_stdout()


def reset_stdout() -> None:
    _stdout.update(closed=False, error=None)


def stdout_error() -> str | None:
    """Why results could not be printed (not a closed pipe), if that happened."""
    error = _stdout["error"]
    return str(error) if error else None


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of a broken or
    full stdout neither fails nor prints 'Exception ignored ...'."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (tests): nothing will be flushed to a descriptor
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass


def err(text: str, *, prefix: str = "") -> None:
    text = redact(text)
    if prefix and use_color(sys.stderr):
        colors = {"error": "31", "warning": "33", "note": "36"}
        code = colors.get(prefix, "0")
        prefix = f"\x1b[{code}m{prefix}\x1b[0m"
    sys.stderr.write(f"{prefix}: {text}\n" if prefix else text + "\n")
    sys.stderr.flush()


def warn(text: str) -> None:
    err(text, prefix="warning")


def note(text: str) -> None:
    err(text, prefix="note")


class StderrReporter(Reporter):
    """Notices only: used when stderr is not a terminal or with -q."""

    def __init__(self, quiet: bool) -> None:
        super().__init__()
        self.quiet = quiet

    def note(self, text: str) -> None:
        if not self.quiet:
            note(text)


class RichReporter(Reporter):
    quiet = False

    """A spinner with elapsed time, then a bar for downloads and steps (stderr only)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
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

        super().__init__()
        self.console = Console(stderr=True, no_color=not use_color(sys.stderr))
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            Remaining(),
            console=self.console,
            transient=True,
            # Results go to stdout whatever the display does: rich would otherwise take
            # over sys.stdout while it runs and print them on the terminal (stderr),
            # leaving `imagegen generate x > paths.txt` empty. Only when stdout is that
            # same terminal are they printed above the display, to keep it whole.
            redirect_stdout=is_terminal(sys.stdout),
        )
        self.task = self.progress.add_task("starting", total=None, detail="")
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.job_states: dict[str, str] = {}
        self.done_text = ""
        self.download_started: float | None = None

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

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
