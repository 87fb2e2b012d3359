"""The process as users and scripts see it: entry points, --help cost, stdout/stderr."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import run_cli
from tests.fakes.openai_fake import OpenAIFake  # noqa: F401 - fixture type


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def test_help_imports_no_heavy_modules() -> None:
    code = ("import sys, io, contextlib\n"
            "from imagegen_cli.cli.app import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['--help'])\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['generate', '--help'])\n"
            "heavy = {'httpx', 'PIL', 'torch', 'diffusers', 'rich', 'httpcore', 'textual_image',"
            " 'anyascii', 'c2pa'}\n"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n")
    r = _run("-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_help_imports_only_what_it_shows() -> None:
    """--help loads the command line and the option table: no engine, provider,
    transport, config file, price or image code."""
    allowed = {"imagegen_cli", "imagegen_cli.cli", "imagegen_cli.errors", "imagegen_cli.secrets",
               "imagegen_cli.settings", "imagegen_cli.settings.options"}
    for args in (["--help"], ["generate", "--help"], ["batch", "--help"],
                 ["config", "--help"], ["providers", "list", "--help"]):
        code = ("import sys, io, contextlib\n"
                "from imagegen_cli.cli.app import main\n"
                f"with contextlib.redirect_stdout(io.StringIO()): main({args!r})\n"
                "print('\\n'.join(m for m, v in sys.modules.items() if v is not None and "
                "m.startswith('imagegen_cli')))\n")
        r = _run("-c", code)
        assert r.returncode == 0, r.stderr
        ours = set(r.stdout.split())
        assert ours - allowed <= {m for m in ours if m.startswith("imagegen_cli.cli.")}, args
        assert "imagegen_cli.cli.report" not in ours  # progress displays: the engine's events


def test_python_dash_m_and_version() -> None:
    r = _run("-m", "imagegen_cli", "--version")
    assert r.returncode == 0 and r.stdout.startswith("imagegen ")


def test_no_args_shows_help() -> None:
    r = run_cli([])
    assert "generate" in r.stdout + r.err


def test_errors_go_to_stderr_without_traceback() -> None:
    r = _run("-m", "imagegen_cli", "generate", "x", "--size", "huge",
             IMAGEGEN_PROVIDER="openai", OPENAI_API_KEY="k")
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith("error: --size 'huge'")
    assert "Traceback" not in r.stderr


def test_internal_error_exits_1_and_debug_shows_traceback(monkeypatch: object) -> None:
    import pytest

    mp = pytest.MonkeyPatch()
    mp.setenv("OPENAI_API_KEY", "k")

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("kaput")

    mp.setattr("imagegen_cli.cli.imageargs.read_prompt", boom)
    try:
        r = run_cli(["generate", "x", "-p", "openai"])
        assert r.code == 1 and "internal error" in r.err and "Traceback" not in r.err
        r = run_cli(["--debug", "generate", "x", "-p", "openai"])
        assert r.code == 1 and "Traceback" in r.err and "kaput" in r.err
    finally:
        mp.undo()


def test_hosted_generate_never_imports_torch(fake: object, tmp_path: object) -> None:
    """Nor rich when stderr is not a terminal, nor httpx's own command-line client
    (click, rich, pygments: transport/__init__ keeps it out)."""
    code = ("import sys\n"
            "from imagegen_cli.cli.app import main\n"
            "rc = main(['generate', 'x', '-q', '-o', sys.argv[1]])\n"
            "heavy = {'torch', 'diffusers', 'transformers', 'rich', 'pygments'}\n"
            "print(rc, sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n")
    r = _run("-c", code, str(tmp_path) + "/x.png")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "0 []"


def test_commands_built_on_demand_answer_as_typer_builds_them(monkeypatch: object) -> None:
    """main builds only the command it runs (cli/lazy.py): help, errors and typo
    suggestions must read as typer's full build of every command does."""
    import pytest
    import typer.main

    from imagegen_cli.cli import app as root

    argvs = [["--help"], ["generate", "--help"], ["batch", "--help"], ["providers"],
             ["providers", "--help"], ["job", "--help"], ["job"], ["config", "set", "--help"],
             ["generat", "x"], ["providers", "lis"], ["generate", "--nope"], ["nosuch"]]
    lazy = [run_cli(a) for a in argvs]
    mp = pytest.MonkeyPatch()
    mp.setattr(root, "command_for", lambda app, args: typer.main.get_command(app))
    try:
        eager = [run_cli(a) for a in argvs]
    finally:
        mp.undo()
    for a, got, want in zip(argvs, lazy, eager, strict=True):
        assert (got.code, got.stdout, got.err) == (want.code, want.stdout, want.err), a
    assert "Commands:" in lazy[0].stdout and "Did you mean 'generate'?" in lazy[8].err
