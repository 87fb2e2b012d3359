"""Confinement (issue 19): a batch writes only inside its -o folder unless asked,
never follows a symlink it did not create, and config writes are never lost."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import run_cli
from tests.fakes.openai_fake import OpenAIFake


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error")]
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------- 10: no symlinks followed

def test_journal_symlink_is_refused_not_appended_to(fake: OpenAIFake, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = Path("out")
    out.mkdir()
    (out / ".imagegen-batch.jsonl").symlink_to(victim)
    Path("p.txt").write_text("a fox\n")
    r = run_cli(["batch", "p.txt", "-o", "out/"])
    assert r.code == 7, r.err
    assert "Traceback" not in r.err
    line = _error_line(r.err)
    assert ".imagegen-batch.jsonl" in line and "symlink" in line
    assert victim.read_text() == "precious\n"
    assert fake.server.requests == []


def test_summary_symlink_is_refused(fake: OpenAIFake, tmp_path: Path) -> None:
    victim = tmp_path / "victim.json"
    victim.write_text("precious\n")
    Path("s.json").symlink_to(victim)
    Path("p.txt").write_text("a fox\n")
    r = run_cli(["batch", "p.txt", "-o", "out/", "--summary", "s.json"])
    assert r.code == 7, r.err
    line = _error_line(r.err)
    assert "s.json" in line and "symlink" in line
    assert victim.read_text() == "precious\n" and os.path.islink("s.json")
    assert fake.server.requests == []
