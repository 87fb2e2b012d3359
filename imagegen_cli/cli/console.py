"""stdout carries results only; stderr carries progress, notices and errors.

The streams and the one-line messages every command prints with; the progress
displays are in report.py. Light on purpose: `main` imports it on every run,
`--help` included."""

from __future__ import annotations

import os
import sys
from typing import Any

from imagegen_cli.secrets import redact


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
