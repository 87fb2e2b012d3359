"""The terminal details: binary never to a terminal, colours, ETA, --preview."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagegen_cli.cli import console, report
from tests.conftest import run_cli
from tests.fakes.openai_fake import OpenAIFake

BIN = Path(sys.executable).parent


def on_terminal(args: list[str], **env: str) -> tuple[int, bytes, str]:
    """Run imagegen with stdout on a pseudo-terminal (stderr piped)."""
    import fcntl
    import struct
    import termios

    main, child = pty.openpty()
    # 40 rows, 120 columns, 8x16-pixel cells: what a terminal window reports.
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 960, 640))
    proc = subprocess.Popen([sys.executable, "-m", "imagegen_cli", *args], stdout=child,
                            stderr=subprocess.PIPE, stdin=child,
                            env={**os.environ, **env})
    os.close(child)
    out = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=60)
    err = proc.stderr.read().decode() if proc.stderr else ""
    os.close(main)
    return code, out, err


def test_dash_o_to_a_terminal_is_refused(fake: OpenAIFake) -> None:
    code, out, err = on_terminal(["generate", "a fox", "-o", "-"])
    assert code == 2
    assert err == ("error: refusing to write image bytes to a terminal; redirect to a file "
                   "or pass -o FILE\n")
    assert b"PNG" not in out
    assert not [r for r in fake.server.requests if "images" in r.path]
    r = run_cli(["generate", "a fox", "-o", "-"])  # a pipe: fine
    assert r.code == 0 and r.out.startswith(b"\x89PNG")


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("env, tty, coloured", [
    ({}, True, True),
    ({}, False, False),
    ({"NO_COLOR": "1"}, True, False),
    ({"TERM": "dumb"}, True, False),
    ({"FORCE_COLOR": "1"}, False, True),
    ({"FORCE_COLOR": "1", "TERM": "dumb"}, False, True),
    ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, True, False),
    ({"FORCE_COLOR": "0"}, False, False),
])
def test_error_and_warning_colours_follow_the_environment(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tty: bool, coloured: bool) -> None:
    for var in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    stream = _Stream(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    console.err("boom", prefix="error")
    console.warn("careful")
    text = stream.getvalue()
    assert ("\x1b[31merror\x1b[0m: boom" in text) is coloured
    assert ("\x1b[33mwarning\x1b[0m: careful" in text) is coloured
    if not coloured:
        assert text == "error: boom\nwarning: careful\n"


def test_force_color_reaches_a_real_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")
    r = run_cli(["generate", "x", "--size", "huge", "-p", "openai"])
    assert r.code == 2 and r.err.startswith("\x1b[31merror\x1b[0m: ")


def test_progress_shows_time_remaining_once_known(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    rep = report.RichReporter()
    buf = io.StringIO()
    out = Console(file=buf, width=120, force_terminal=False)

    def row() -> str:
        buf.seek(0)
        buf.truncate()
        out.print(rep.progress.make_tasks_table(rep.progress.tasks))
        return buf.getvalue()

    rep.status("waiting")
    assert "eta" not in row()  # no total: nothing to estimate
    rep.step(1, 40)
    time.sleep(0.3)
    rep.step(11, 40)
    line = row()
    assert "11/40" in line and "eta 0:0" in line, line


# ------------------------------------------------------------------ preview


def test_preview_iterm2_inline_image(fake: OpenAIFake) -> None:
    code, out, err = on_terminal(["generate", "a fox", "-o", "p.png", "--preview"],
                                 TERM_PROGRAM="iTerm.app")
    assert code == 0, err
    assert b"p.png" in out and b"\x1b]1337;File=" in out and b"inline=1" in out


def test_preview_half_blocks_elsewhere(fake: OpenAIFake) -> None:
    code, out, err = on_terminal(["generate", "a fox", "-o", "p.png", "--preview"],
                                 TERM_PROGRAM="", TERM="xterm-256color")
    assert code == 0, err
    text = out.decode(errors="replace")
    assert "p.png" in text
    assert "▀" in text or "▄" in text, text[:400]


def test_preview_from_config_and_never_without_a_terminal(fake: OpenAIFake) -> None:
    cfg = Path(os.environ["IMAGEGEN_CONFIG"])
    cfg.write_text(cfg.read_text() + "\n[defaults]\npreview = true\n")
    code, out, err = on_terminal(["generate", "a fox", "-o", "q.png"],
                                 TERM_PROGRAM="iTerm.app")
    assert code == 0 and b"\x1b]1337;File=" in out, err
    code_text = ("import sys\nfrom imagegen_cli.cli.app import main\n"
                 "rc = main(['generate', 'x', '-q', '--preview', '-o', sys.argv[1]])\n"
                 "print(rc, 'textual_image' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code_text, "r.png"], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "TERM_PROGRAM": ""})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["r.png", "0 False"]
