"""`imagegen config ...`: dotted keys, typed values, comments kept, 0600, redaction."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_config


@pytest.fixture
def cfg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "cfg" / "config.toml"
    monkeypatch.setenv("IMAGEGEN_CONFIG", str(path))
    return path


def test_path_follows_env_and_platformdirs(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli(["config", "path"]).lines() == [str(cfg)]
    monkeypatch.delenv("IMAGEGEN_CONFIG")
    (line,) = run_cli(["config", "path"]).lines()
    assert line.endswith("imagegen/config.toml") and line.startswith(os.environ["HOME"]) \
        or os.environ["XDG_CONFIG_HOME"] in line


def test_init_refuses_overwrite(cfg: Path) -> None:
    r = run_cli(["config", "init"])
    assert r.code == 0 and cfg.exists()
    assert "# imagegen configuration" in cfg.read_text()
    r = run_cli(["config", "init"])
    assert r.code == 2 and "--force" in r.err
    assert run_cli(["config", "init", "--force"]).code == 0


def test_set_get_unset_typed_and_comments_kept(cfg: Path) -> None:
    run_cli(["config", "init"])
    assert run_cli(["config", "set", "defaults.size", "1536x1024"]).code == 0
    assert run_cli(["config", "set", "defaults.count", "3"]).code == 0
    assert run_cli(["config", "set", "defaults.sidecar", "true"]).code == 0
    assert run_cli(["config", "set", "providers.nebula.model", "x/y"]).code == 0
    text = cfg.read_text()
    assert "# Precedence: command-line flag" in text  # comments survive
    assert "count = 3" in text and "sidecar = true" in text
    assert run_cli(["config", "get", "defaults.count"]).lines() == ["3"]
    assert run_cli(["config", "get", "providers.nebula.model"]).lines() == ["x/y"]
    r = run_cli(["config", "show", "--json"])
    assert json.loads(r.stdout)["defaults"]["size"] == "1536x1024"
    assert run_cli(["config", "unset", "providers.nebula.model"]).code == 0
    assert "[providers.nebula]" not in cfg.read_text()
    r = run_cli(["config", "get", "providers.nebula.model"])
    assert r.code == 2 and "not set" in r.err


@pytest.mark.parametrize("argv, needle", [
    (["defaults.count", "three"], "whole number"),
    (["defaults.sidecar", "yes"], "true or false"),
    (["defaults.colour", "red"], "Unknown key 'defaults.colour'"),
    (["providers.nebula.frob", "1"], "Unknown key 'providers.nebula.frob'"),
    (["providers.newone.model", "m"], "imagegen providers add newone"),
    (["nonsense", "1"], "Unknown key 'nonsense'"),
    (["defaults..size", "1"], "Bad key"),
])
def test_set_validates(cfg: Path, argv: list[str], needle: str) -> None:
    r = run_cli(["config", "set", *argv])
    assert r.code == 2, r.err
    assert needle in r.err
    assert not cfg.exists()


def test_set_unknown_default_provider_refused(cfg: Path) -> None:
    r = run_cli(["config", "set", "default_provider", "nope"])
    assert r.code == 2 and "not a known provider" in r.err and "not stored" in r.err
    assert run_cli(["config", "set", "default_provider", "nebula"]).code == 0


def test_api_key_from_stdin_stored_0600_and_redacted(cfg: Path) -> None:
    r = run_cli(["config", "set", "providers.nebula.api_key"], stdin="neb-very-secret\n")
    assert r.code == 0, r.err
    assert "neb-very-secret" not in r.err + r.stdout
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert 'api_key = "neb-very-secret"' in cfg.read_text()
    for argv in (["config", "show"], ["config", "show", "--json"],
                 ["config", "get", "providers.nebula.api_key"], ["providers", "list"]):
        r = run_cli(argv)
        assert "neb-very-secret" not in r.stdout + r.err, argv
    assert "***" in run_cli(["config", "show"]).stdout


def test_api_key_needs_a_value_from_somewhere(cfg: Path) -> None:
    r = run_cli(["config", "set", "providers.nebula.api_key"], stdin="")
    assert r.code == 2 and "No value" in r.err
    r = run_cli(["config", "set", "defaults.size"])
    assert r.code == 2 and "needs a VALUE" in r.err


def test_group_readable_key_file_warns_on_any_command(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    p = write_config('[providers.nebula]\napi_key = "k-123456"\n', monkeypatch, tmp_path)
    p.chmod(0o640)
    r = run_cli(["providers", "list"])
    assert "readable by others" in r.err and "chmod 600" in r.err


def test_malformed_file_exit_3_names_file_and_line(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    p = write_config('[defaults]\nsize = "1"\nsize = "2"\n', monkeypatch, tmp_path)
    for argv in (["config", "show"], ["providers", "list"], ["config", "set",
                                                             "defaults.count", "2"]):
        r = run_cli(argv)
        assert r.code == 3, (argv, r.err)
        assert str(p) in r.err and "line 3" in r.err or str(p) in r.err


def test_edit_validates_after(cfg: Path, monkeypatch: pytest.MonkeyPatch,
                              tmp_path: Path) -> None:
    editor = tmp_path / "ed.py"
    editor.write_text("import sys\nopen(sys.argv[1], 'a').write(sys.argv[0] and "
                      "open(sys.argv[0] + '.txt').read())\n")
    (tmp_path / "ed.py.txt").write_text('\n[providers.gw]\ntype = "openai"\n'
                                        'base_url = "https://g/v1"\n')
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    r = run_cli(["config", "edit"])
    assert r.code == 0, r.err
    assert "[providers.gw]" in cfg.read_text()
    (tmp_path / "ed.py.txt").write_text('\n[defaults\n')
    r = run_cli(["config", "edit"])
    assert r.code == 3 and str(cfg) in r.err
    monkeypatch.delenv("EDITOR")
    monkeypatch.delenv("VISUAL", raising=False)
    assert run_cli(["config", "edit"]).code == 2


def test_edit_runs_an_editor_whose_path_has_spaces(cfg: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # shlex.split cut such a path in two (and mangles Windows backslashes): the editor
    # is now launched by click, the way the platform's shell runs it.
    folder = tmp_path / "My Editors"
    folder.mkdir()
    editor = folder / "ed it.sh"
    editor.write_text('#!/bin/sh\nprintf \'\\n[providers.gw9]\\ntype = "openai"\\n\' >> "$1"\n')
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    r = run_cli(["config", "edit"])
    assert r.code == 0, r.err
    assert "[providers.gw9]" in cfg.read_text() and "is valid" in r.err
    monkeypatch.setenv("EDITOR", str(folder / "missing editor"))
    r = run_cli(["config", "edit"])
    assert r.code == 2 and "missing editor" in r.err
