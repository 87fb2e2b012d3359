"""Shell completion in real shells (bash, fish, zsh where installed), and
`imagegen completion SHELL [--install]`.

Each shell runs the script we ship, which calls the `imagegen` on PATH: the
one installed in this virtual environment, as a user's shell would.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from imagegen_cli.cli.completion import PACKAGE_DIR, SHELLS, script
from tests.conftest import run_cli, write_config

BIN = Path(sys.executable).parent


def _shell(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed here (apt-get install {name}; .ci/run does)")
    if not (BIN / "imagegen").exists():
        pytest.skip("no imagegen entry point beside this Python (pip install -e .)")
    return path


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return write_config('[providers.mygw]\ntype = "openai"\nbase_url = "https://g/v1"\n',
                        monkeypatch, tmp_path)


# ------------------------------------------------------------------- bash


def bash_complete(words: list[str], cword: int | None = None) -> list[str]:
    """COMPREPLY after the shipped function runs on COMP_WORDS (as bash calls it)."""
    bash = _shell("bash")
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    cword = len(words) - 1 if cword is None else cword
    code = (f"source {PACKAGE_DIR / 'imagegen.bash'}; COMP_WORDS=({quoted}); "
            f"COMP_CWORD={cword}; _imagegen_completion imagegen; "
            "printf '%s\\n' \"${COMPREPLY[@]}\"")
    r = subprocess.run([bash, "--norc", "-c", code], capture_output=True, text=True,
                       env=_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines() if line]


@pytest.mark.parametrize("option, expected", [
    ("--format", ["png", "jpeg", "webp", "gif", "svg"]),
    ("--quality", ["low", "medium", "high", "xhigh", "max", "auto", "standard", "hd"]),
    ("--complexity", ["low", "medium", "high"]),
    ("--background", ["transparent", "opaque", "auto"]),
    ("--moderation", ["low", "auto"]),
    ("--device", ["auto", "cpu", "cuda", "mps"]),
    ("--dtype", ["auto", "float32", "float16", "bfloat16"]),
    ("--style", ["vivid", "natural"]),
])
def test_bash_value_options_offer_their_values(option: str, expected: list[str]) -> None:
    assert bash_complete(["imagegen", "generate", option, ""]) == expected


def test_bash_provider_equals_value(configured: Path) -> None:
    # bash splits `--provider=my` into `--provider`, `=`, `my`.
    assert bash_complete(["imagegen", "generate", "--provider", "=", "my"]) == ["mygw"]
    assert "mygw" in bash_complete(["imagegen", "generate", "--provider", "=", ""])
    assert bash_complete(["imagegen", "generate", "-p", "my"]) == ["mygw"]
    # An earlier --opt=value does not confuse what follows.
    assert bash_complete(["imagegen", "generate", "--format", "=", "png", "--dtype", "b"]) \
        == ["bfloat16"]


def test_bash_config_set_keys_and_values(configured: Path) -> None:
    assert bash_complete(["imagegen", "config", "set", "defaults.for"]) == ["defaults.format"]
    assert "providers.mygw.model" in bash_complete(["imagegen", "config", "set", "providers."])
    assert bash_complete(["imagegen", "config", "set", "defaults.format", ""]) \
        == ["png", "jpeg", "webp", "gif", "svg"]
    assert bash_complete(["imagegen", "config", "set", "defaults.sidecar", ""]) \
        == ["true", "false"]
    assert bash_complete(["imagegen", "config", "set", "default_provider", "my"]) == ["mygw"]


# ------------------------------------------------------------------- fish


def fish_complete(line: str) -> list[str]:
    fish = _shell("fish")
    code = f"source {PACKAGE_DIR / 'imagegen.fish'}; complete -C {_fish_quote(line)}"
    r = subprocess.run([fish, "--no-config", "-c", code], capture_output=True, text=True,
                       env=_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    return [line.split("\t")[0] for line in r.stdout.splitlines() if line]


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def test_fish_values_and_equals(configured: Path) -> None:
    assert sorted(fish_complete("imagegen generate --format ")) \
        == ["gif", "jpeg", "png", "svg", "webp"]
    assert fish_complete("imagegen generate --provider=my") == ["--provider=mygw"]
    assert sorted(fish_complete("imagegen generate --dtype=float")) \
        == ["--dtype=float16", "--dtype=float32"]
    assert fish_complete("imagegen config set defaults.backg") == ["defaults.background"]


# -------------------------------------------------------------------- zsh


def zsh_session(tmp_path: Path, keys: str, until: str, timeout: float = 30) -> tuple[str, str]:
    """Type KEYS into a fresh interactive zsh (our script autoloaded from $fpath) in a
    pseudo-terminal. Returns (what the terminal showed, the edit buffer afterwards)."""
    import pty

    zsh = _shell("zsh")
    zdot, fdir = tmp_path / "zdot", tmp_path / "zfunc"
    zdot.mkdir(exist_ok=True)
    fdir.mkdir(exist_ok=True)
    shutil.copy(PACKAGE_DIR / "_imagegen", fdir / "_imagegen")
    buf = zdot / "buffer"
    buf.unlink(missing_ok=True)
    (zdot / ".zshrc").write_text(
        f"fpath=({fdir} $fpath)\nautoload -Uz compinit\ncompinit -u -d {zdot}/compdump\n"
        "PS1='READY> '\nunsetopt beep\n"
        f"dumpbuf() {{ print -r -- \"$BUFFER\" > {buf}; }}\nzle -N dumpbuf\n"
        "bindkey '^X' dumpbuf\n")
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(zsh, [zsh, "-i"], _env(ZDOTDIR=str(zdot), TERM="xterm", COLUMNS="200"))
    seen = b""

    def pump(stop: Callable[[], bool]) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stop():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    return

    try:
        pump(lambda: b"READY> " in seen)
        start = len(seen)
        os.write(fd, keys.encode() + b"\x18")  # then ^X: write the edit buffer to a file
        pump(lambda: buf.exists() and buf.read_text().endswith("\n")
             and until in _plain(seen[start:]))
        buffer = buf.read_text().rstrip("\n") if buf.exists() else ""
        return _plain(seen[start:]), buffer
    finally:
        os.write(fd, b"\x03exit\n")
        time.sleep(0.2)
        os.close(fd)
        os.waitpid(pid, 0)


def _plain(raw: bytes) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r", "", raw.decode(errors="replace"))


def test_zsh_first_tab_in_a_fresh_shell_completes(tmp_path: Path) -> None:
    shown, buffer = zsh_session(tmp_path, "imagegen generate --form\t", until="")
    assert buffer == "imagegen generate --format ", shown


def test_zsh_values_and_provider_equals(tmp_path: Path, configured: Path) -> None:
    shown, _ = zsh_session(tmp_path, "imagegen generate --dtype \t", until="bfloat16")
    assert "float32" in shown and "bfloat16" in shown, shown
    _, buffer = zsh_session(tmp_path, "imagegen generate --provider=my\t", until="")
    assert buffer == "imagegen generate --provider=mygw ", buffer


# ------------------------------------------------------ the command itself


def test_completion_prints_the_shipped_script() -> None:
    for shell, name in SHELLS.items():
        r = run_cli(["completion", shell])
        assert r.code == 0
        assert r.stdout == (PACKAGE_DIR / name).read_text() == script(shell), (
            f"imagegen_cli/completions/{name} is stale: run "
            "`python -m imagegen_cli.cli.completion`")
    r = run_cli(["completion", "tcsh"])
    assert r.code == 2 and "bash, zsh, fish, powershell" in r.err


def test_scripts_ship_as_package_data() -> None:
    from importlib import resources

    files = resources.files("imagegen_cli") / "completions"
    assert sorted(p.name for p in files.iterdir() if not p.name.startswith("_")
                  or p.name == "_imagegen") == sorted(SHELLS.values())


def test_install_puts_scripts_where_shells_look(monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(os.environ["HOME"])
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    r = run_cli(["completion", "--install", "bash"])
    target = home / ".local/share/bash-completion/completions/imagegen"
    assert r.code == 0 and r.lines() == [str(target)]
    assert str(target) in r.err and target.read_text() == script("bash")
    r = run_cli(["completion", "--install", "fish"])
    assert r.lines() == [str(home / ".config/fish/completions/imagegen.fish")]
    monkeypatch.setenv("SHELL", "/usr/bin/zsh")
    r = run_cli(["completion", "--install"])
    assert r.code == 0
    assert r.lines() == [str(home / ".zfunc/_imagegen"), str(home / ".zshrc")]
    assert ".zfunc" in (home / ".zshrc").read_text()
    r = run_cli(["completion", "--install", "zsh"])  # again: .zshrc is left alone
    assert r.lines() == [str(home / ".zfunc/_imagegen")]
    r = run_cli(["completion", "--install", "powershell"])
    assert r.code == 2 and "$PROFILE" in r.err


def test_installed_bash_script_loads_through_bash_completion(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    bash = _shell("bash")
    loader = Path("/usr/share/bash-completion/bash_completion")
    if not loader.exists():
        pytest.skip("bash-completion is not installed (apt-get install bash-completion)")
    data = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    assert run_cli(["completion", "--install", "bash"]).code == 0
    code = (f"source {loader}; __load_completion imagegen; "
            "COMP_WORDS=(imagegen generate -f ''); COMP_CWORD=3; "
            "$(complete -p imagegen | sed 's/.*-F \\([^ ]*\\).*/\\1/') imagegen; "
            "printf '%s\\n' \"${COMPREPLY[@]}\"")
    r = subprocess.run([bash, "--norc", "-c", code], capture_output=True, text=True,
                       env=_env(XDG_DATA_HOME=str(data)), timeout=60)
    assert r.stdout.split() == ["png", "jpeg", "webp", "gif", "svg"], r.stderr



def test_checkout_copies_match_the_packaged_scripts() -> None:
    """completions/ (for packagers and checkouts) holds the same scripts the package ships."""
    top = Path(__file__).resolve().parent.parent / "completions"
    shipped = sorted(p.name for p in PACKAGE_DIR.iterdir() if p.is_file())
    assert shipped, "no completion scripts in the package"
    for name in shipped:
        assert (top / name).read_bytes() == (PACKAGE_DIR / name).read_bytes(), name
