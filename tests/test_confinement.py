"""Confinement (issue 19): a batch writes only inside its -o folder unless asked,
never follows a symlink it did not create, and config writes are never lost."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

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


# ---------------------------------------------------------------- 12: cleanup stays home

def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_foreign_journal_cannot_steer_cleanup_elsewhere(fake: OpenAIFake,
                                                          tmp_path: Path) -> None:
    import json

    from imagegen_cli.files import atomic

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    name = f".x.png.{_dead_pid()}@{atomic._HOST}.abcdefgh.part"
    theirs = elsewhere / name
    theirs.write_bytes(b"someone else's download")
    Path("out").mkdir()
    ours = Path("out") / name
    ours.write_bytes(b"half")
    journal = Path("journal.jsonl")
    journal.write_text(json.dumps({"key": "k", "index": 1, "path": str(elsewhere / "x.png"),
                                   "bytes": 1}) + "\n")
    Path("p.txt").write_text("a fox\n")
    r = run_cli(["batch", "p.txt", "-o", "out/", "--state", str(journal)])
    assert r.code == 0, r.err
    assert theirs.read_bytes() == b"someone else's download"
    assert not ours.exists()  # the -o folder's own leftovers still go


def test_cleanup_removes_only_our_regular_temp_files(tmp_path: Path) -> None:
    from imagegen_cli.files import atomic

    dead = _dead_pid()
    tmp_path = tmp_path / "folder"
    tmp_path.mkdir()
    target = tmp_path / "target.bin"
    target.write_bytes(b"keep")
    (tmp_path / f".a.png.{dead}@{atomic._HOST}.abcdefgh.part").symlink_to(target)
    (tmp_path / f".a.png.{dead}.abcdefgh.part").write_bytes(b"another tool's")
    (tmp_path / f".b.png.{dead}@{atomic._HOST}.abcdefgh.part").mkdir()
    assert atomic.clean_stale_parts(tmp_path) == 0
    assert target.read_bytes() == b"keep" and len(list(tmp_path.iterdir())) == 4


# ---------------------------------------------------------------- 11: records stay in -o

def test_record_output_outside_o_is_refused(fake: OpenAIFake, tmp_path: Path) -> None:
    import json

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "fox.png").write_bytes(b"precious")
    Path("out").mkdir()
    (Path("out") / "link").symlink_to(elsewhere)
    for output in (str(elsewhere / "{id}.png"), "../elsewhere/{id}.png",
                   "out/../../elsewhere/{id}.png", "out/link/{id}.png"):
        Path("jobs.jsonl").write_text(
            json.dumps({"id": "ok", "prompt": "an owl", "output": "out/{id}.png"}) + "\n"
            + json.dumps({"id": "fox", "prompt": "a fox", "output": output,
                          "overwrite": True}) + "\n")
        r = run_cli(["batch", "jobs.jsonl", "-o", "out/"])
        assert r.code == 2, (output, r.err)
        assert "Traceback" not in r.err
        line = _error_line(r.err)
        assert "jobs.jsonl, line 2, field 'output'" in line and "--allow-outside" in line
        assert (elsewhere / "fox.png").read_bytes() == b"precious"
        assert fake.server.requests == []
    # Inside -o (the record's own folder under it) is fine; --allow-outside lets it out.
    Path("jobs.jsonl").write_text(json.dumps({"id": "fox", "prompt": "a fox",
                                              "output": "out/sub/{id}.png"}) + "\n")
    assert run_cli(["batch", "jobs.jsonl", "-o", "out/"]).code == 0
    Path("jobs.jsonl").write_text(json.dumps({"id": "fox", "prompt": "a fox", "overwrite": True,
                                              "output": "../elsewhere/{id}.png"}) + "\n")
    r = run_cli(["batch", "jobs.jsonl", "-o", "out/", "--allow-outside"])
    assert r.code == 0, r.err
    assert (elsewhere / "fox.png").read_bytes() != b"precious"


# ---------------------------------------------------------------- 13: through symlinks

def test_zsh_install_writes_through_a_symlinked_zshrc_and_keeps_its_mode(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = Path(os.environ["HOME"])
    monkeypatch.delenv("ZDOTDIR", raising=False)
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "zshrc"
    real.write_text("export A=1\n")
    real.chmod(0o600)
    (home / ".zshrc").symlink_to(real)
    r = run_cli(["completion", "--install", "zsh"])
    assert r.code == 0, r.err
    assert (home / ".zshrc").is_symlink()
    assert real.read_text().startswith("export A=1\n") and ".zfunc" in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert [p.name for p in dotfiles.iterdir()] == ["zshrc"]  # no temp file left


def test_zsh_install_refuses_a_non_utf8_zshrc_writing_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(os.environ["HOME"])
    monkeypatch.delenv("ZDOTDIR", raising=False)
    rc = home / ".zshrc"
    rc.write_bytes(b"export A='caf\xe9'\n")
    r = run_cli(["completion", "--install", "zsh"])
    assert r.code == 7, r.err
    assert "Traceback" not in r.err
    line = _error_line(r.err)
    assert ".zshrc" in line and "UTF-8" in line and "nothing installed" in line
    assert rc.read_bytes() == b"export A='caf\xe9'\n"
    assert not (home / ".zfunc").exists()


def test_config_set_writes_through_a_symlinked_config(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "imagegen.toml"
    real.parent.mkdir()
    real.write_text("[defaults]\nsize = \"1024x1024\"\n")
    link = tmp_path / "config-link.toml"
    link.symlink_to(real)
    monkeypatch.setenv("IMAGEGEN_CONFIG", str(link))
    r = run_cli(["config", "set", "defaults.count", "2"])
    assert r.code == 0, r.err
    assert link.is_symlink()
    assert "count = 2" in real.read_text() and "1024x1024" in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o600


# ---------------------------------------------------------------- 14: no write lost

def test_ten_concurrent_config_writers_lose_nothing(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    import subprocess
    import tomllib

    from tests.faults import imagegen

    cfg = tmp_path / "cfg" / "config.toml"
    monkeypatch.setenv("IMAGEGEN_CONFIG", str(cfg))
    adds = [["providers", "add", f"gw{i}", "--type", "openai",
             "--base-url", f"https://gw{i}.example.com/v1"] for i in range(6)]
    sets = [["config", "set", "defaults.timeout", "30"],
            ["config", "set", "defaults.retries", "1"],
            ["config", "set", "defaults.format", "webp"],
            ["config", "set", "defaults.count", "2"]]
    procs = [imagegen(a, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for a in adds + sets]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    data = tomllib.loads(cfg.read_text())
    assert sorted(data["providers"]) == [f"gw{i}" for i in range(6)]
    assert data["defaults"] == {"timeout": 30, "retries": 1, "format": "webp", "count": 2}
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600


# ---------------------------------------------------------------- 15: config edit keeps 0600

_EDITOR_644 = """\
import os, sys
path = sys.argv[1]
text = open(path).read() + '\\n[providers.gw]\\ntype = "openai"\\n' \\
    'base_url = "https://g.example.com/v1"\\napi_key = "sk-edited-0123456789"\\n'
os.unlink(path)  # as editors that save a new file do: the umask's 0644
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, text.encode())
os.close(fd)
os.chmod(path, 0o644)
"""


def _editing_with_a_644_editor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The config path, with $EDITOR a program that adds a key and saves the file 0644."""
    import sys

    cfg = tmp_path / "cfg" / "config.toml"
    monkeypatch.setenv("IMAGEGEN_CONFIG", str(cfg))
    editor = tmp_path / "ed.py"
    editor.write_text(_EDITOR_644)
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    monkeypatch.delenv("VISUAL", raising=False)
    return cfg


def test_config_edit_restores_0600_on_a_key_bearing_file(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    cfg = _editing_with_a_644_editor(monkeypatch, tmp_path)
    r = run_cli(["config", "edit"])
    assert r.code == 0, r.err
    assert "api_key" in cfg.read_text()
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert "600" in r.err and "is valid" in r.err


def test_config_edit_says_loudly_when_0600_cannot_be_restored(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = _editing_with_a_644_editor(monkeypatch, tmp_path)
    real_chmod = os.chmod

    def chmod(path: object, mode: int, **kw: object) -> None:
        if str(path) == str(cfg):
            raise PermissionError(1, "Operation not permitted")
        real_chmod(path, mode, **kw)  # type: ignore[arg-type]

    run_cli(["config", "init"])
    monkeypatch.setattr(os, "chmod", chmod)
    r = run_cli(["config", "edit"])
    monkeypatch.undo()
    assert r.code == 0, r.err
    assert "warning:" in r.err and "holds a key" in r.err and "chmod 600" in r.err
    assert "sk-edited" not in r.err
