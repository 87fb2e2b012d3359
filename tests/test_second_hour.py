"""Issue 22: the second first hour (what a new user still trips over)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import run_cli


def on_terminal(args: list[str], columns: int,
                env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run imagegen with stdout and stderr on a pseudo-terminal COLUMNS wide: (exit code,
    the text it showed)."""
    import fcntl
    import pty
    import struct
    import termios

    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    run_env = dict(os.environ, COLUMNS=str(columns), TERM="xterm", **(env or {}))
    proc = subprocess.Popen([sys.executable, "-m", "imagegen_cli", *args],
                            stdout=child, stderr=child, env=run_env)
    os.close(child)
    data = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    os.close(main)
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", data.decode()).replace("\r", "")
    return proc.wait(), text


# ------------------------------------------------- 1. tables at 60, 80, 120 columns


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_providers_list_never_drops_or_cuts_a_name(columns: int) -> None:
    code, text = on_terminal(["providers", "list"], columns,
                             {"DISTRIBUTE_API_KEY": "k-1"})
    assert code == 0, text
    assert "…" not in text
    for name in ("openai", "azure", "xai", "distribute", "nebula", "truefoundry",
                 "yescale", "gemini", "local"):
        assert any(line.split()[:1] == [name] for line in text.splitlines()), (name, text)
    assert "set via DISTRIBUTE_API_KEY" in text
    if columns < 100:  # one block per provider: every value whole on its line
        assert "  base url: https://api.nebulablock.com/api/v1" in text
    assert all(len(line) <= columns for line in text.splitlines()
               if "http" not in line)  # only a URL longer than the terminal may wrap


@pytest.mark.parametrize("columns", [60, 80, 120])
@pytest.mark.parametrize("args", [["providers", "show", "openai"],
                                  ["providers", "show", "nebula"],
                                  ["providers", "models", "openai"],
                                  ["config", "show"], ["config", "path"]])
def test_other_tables_are_never_cut(columns: int, args: list[str]) -> None:
    code, text = on_terminal(args, columns)
    assert code in (0, 3), text  # models: no key -> the known list or exit 3
    assert "…" not in text


def test_providers_show_is_short() -> None:
    r = run_cli(["providers", "show", "openai"])
    assert r.code == 0
    assert len(r.lines()) < 60
    assert "at most 3840x2160 pixels" in r.stdout and "8294400" not in r.stdout
    assert "    gpt-image-2.5-flare (active): no --complexity; formats png, jpeg, webp" \
        in r.lines()
    assert "key      : missing (variable OPENAI_API_KEY)" in r.stdout


def test_providers_show_key_set_is_said_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    r = run_cli(["providers", "show", "openai"])
    assert "key      : set via OPENAI_API_KEY\n" in r.stdout
