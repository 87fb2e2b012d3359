"""Issue 22: the second first hour (what a new user still trips over)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# ------------------------------------------------- 2. CSV quotes


def test_csv_unclosed_quote_is_exit_2_naming_its_line(fake: Any) -> None:
    Path("r.csv").write_text('prompt,n\n"a cat,1\nan owl,1\na dog,1\n')
    r = run_cli(["batch", "r.csv", "-o", "o/"])
    assert r.code == 2, r.err
    assert "r.csv, line 2: a quoted cell opens on this line" in r.err
    assert "csv-multiline" in r.err
    assert not fake.server.calls("/images/generations")
    # --skip-invalid: the other lines are still records of their own.
    r = run_cli(["batch", "r.csv", "-o", "o/", "--skip-invalid", "--json"])
    assert r.code == 0, r.err
    assert sorted(json.loads(x)["id"] for x in r.lines()) == ["2", "3"]


def test_csv_multiline_asked_for_still_refuses_a_quote_open_to_the_end(fake: Any) -> None:
    Path("r.csv").write_text('prompt\nan owl\n"a cat\nasleep\non a mat\n')
    r = run_cli(["batch", "r.csv", "-o", "o/", "--input-format", "csv-multiline"])
    assert r.code == 2 and "r.csv, line 3: a quoted cell opens on this line and is never " \
        "closed (it runs to the end of the file)" in r.err, r.err
    assert not fake.server.calls("/images/generations")
    Path("r.csv").write_text('prompt\n"a cat\nasleep"\n')
    r = run_cli(["batch", "r.csv", "-o", "o/", "--input-format", "csv-multiline", "--json"])
    assert r.code == 0, r.err
    assert [c.json()["prompt"] for c in fake.server.calls("/images/generations")] \
        == ["a cat\nasleep"]


def test_csv_ids_start_at_1_for_the_first_record(fake: Any) -> None:
    Path("r.csv").write_text('prompt\na fox\nan owl\n')
    r = run_cli(["batch", "r.csv", "-o", "o/", "--json"])
    assert r.code == 0, r.err
    got = sorted((x["id"], x["line"]) for x in map(json.loads, r.lines()))
    assert got == [("1", 2), ("2", 3)]
    assert Path("o").joinpath("1-a-fox-1.png").exists()
