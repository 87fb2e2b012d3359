"""Every test runs with its own HOME and config, no API keys, and no colour."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_fake import OpenAIFake

KEY = "sk-test-key-123"
# The day every test lives on (the product reads it through imagegen_cli.clock.today):
# the day the shipped model table was read. A test about another day sets it itself.
TODAY = "2026-11-23"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    for var in list(os.environ):
        if var.endswith(("_API_KEY", "_TOKEN")) or var.startswith(("IMAGEGEN_", "TFY_")) \
                or var in ("OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("IMAGEGEN_TODAY", TODAY)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    # State (job notes, the history database) under this test's home, never the real one.
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("NO_COLOR", "1")
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                  "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # No test may reach a model hub.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    # Retries must not slow the suite: back-off waits are recorded, not slept.
    from imagegen_cli.transport import client as http

    monkeypatch.setattr(http, "_sleep", lambda s: SLEEPS.append(s))
    SLEEPS.clear()
    # Secrets registered by one test must not mask another's output.
    import imagegen_cli.secrets as secrets

    monkeypatch.setattr(secrets, "_secrets", set())
    return work


SLEEPS: list[float] = []


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def stdout(self) -> str:
        return self.out.decode()

    def lines(self) -> list[str]:
        return self.stdout.splitlines()


class _Stdin(io.TextIOWrapper):
    def isatty(self) -> bool:
        return False


def run_cli(args: list[str], stdin: str | None = None) -> Result:
    from imagegen_cli.cli.app import main

    out_b = io.BytesIO()
    err_b = io.BytesIO()
    out = io.TextIOWrapper(out_b, encoding="utf-8", write_through=True)
    err = io.TextIOWrapper(err_b, encoding="utf-8", write_through=True)
    old = sys.stdout, sys.stderr, sys.stdin
    sys.stdout, sys.stderr = out, err
    if stdin is not None:
        sys.stdin = _Stdin(io.BytesIO(stdin.encode()), encoding="utf-8")
    try:
        code = main(args)
    finally:
        sys.stdout, sys.stderr, sys.stdin = old
    return Result(code, out_b.getvalue(), err_b.getvalue().decode())


@pytest.fixture
def cli() -> Any:
    return run_cli


def write_config(text: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    monkeypatch.setenv("IMAGEGEN_CONFIG", str(path))
    return path


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[OpenAIFake]:
    """A strict OpenAI fake, configured as the `openai` provider, with a valid key set.

    It keeps shut-down models alive (as a gateway does) so the dall-e and gpt-image-1
    rules stay covered; `openai_today` refuses them as OpenAI itself does."""
    f = OpenAIFake(image_size=(64, 64), keep_retired=True).start()
    write_config(f'[providers.openai]\nbase_url = "{f.url}"\n', monkeypatch, tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    yield f
    f.stop()


@pytest.fixture
def openai_today(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[OpenAIFake]:
    """The strict OpenAI fake without retired models, as the `openai` provider."""
    f = OpenAIFake(image_size=(64, 64)).start()
    write_config(f'[providers.openai]\nbase_url = "{f.url}"\n', monkeypatch, tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    yield f
    f.stop()


def _serve(fake: Any, name: str, env_var: str, monkeypatch: pytest.MonkeyPatch,
           tmp_path: Path) -> Any:
    """Start FAKE and make it provider NAME, with its valid key in ENV_VAR."""
    fake.start()
    write_config(f'[providers.{name}]\nbase_url = "{fake.url}"\n', monkeypatch, tmp_path)
    monkeypatch.setenv(env_var, fake.key)
    return fake


@pytest.fixture
def distribute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    from tests.fakes.distribute_fake import DistributeFake

    f = _serve(DistributeFake(), "distribute", "DISTRIBUTE_API_KEY", monkeypatch, tmp_path)
    yield f
    f.stop()


@pytest.fixture
def nebula(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    from tests.fakes.nebula_fake import NebulaFake

    f = _serve(NebulaFake(), "nebula", "NEBULA_API_KEY", monkeypatch, tmp_path)
    yield f
    f.stop()


@pytest.fixture
def slow(fake: OpenAIFake) -> Iterator[OpenAIFake]:
    """The fake answering each request after 0.2 s (for real processes to kill, or to
    watch a display run)."""
    from tests.fakes.server import Request, Response

    real = fake.server.app

    def app(req: Request) -> Response:
        resp = real(req)
        resp.delay = 0.2
        return resp

    fake.server.app = app
    return fake


def stderr_on_terminal(*args: str) -> tuple[int, str, str]:
    """Run imagegen with stderr on a pseudo-terminal (the progress display shows) and
    stdout a pipe, as `imagegen ... > paths.txt` typed in a terminal: (exit code,
    stdout, the terminal's text without escape sequences)."""
    import pty
    import re
    import subprocess
    import threading

    main, child = pty.openpty()
    env = dict(os.environ, COLUMNS="120", TERM="xterm")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "imagegen_cli", *args],
                            stdout=subprocess.PIPE, stderr=child, env=env)
    os.close(child)
    out: list[bytes] = []

    def drain() -> None:  # stdout read beside the terminal: neither fills up
        assert proc.stdout is not None
        out.append(proc.stdout.read())

    reader = threading.Thread(target=drain)
    reader.start()
    shown = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        shown.append(data)
    code = proc.wait(timeout=60)
    reader.join()
    os.close(main)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(shown).decode())
    return code, b"".join(out).decode(), screen


@contextmanager
def provider_pair(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, first_model: str,
                  backup_model: str) -> Iterator[tuple[OpenAIFake, OpenAIFake]]:
    """`first` and `backup`, openai-type providers on their own fakes (drawing 32 and 48
    pixels, keeping retired models as gateways do), each with its key variable set."""
    a = OpenAIFake(image_size=(32, 32), keep_retired=True).start()
    b = OpenAIFake(image_size=(48, 48), keep_retired=True).start()
    write_config(
        f'[providers.first]\ntype = "openai"\nbase_url = "{a.url}"\n'
        f'api_key_env = "FIRST_API_KEY"\nmodel = "{first_model}"\n'
        f'[providers.backup]\ntype = "openai"\nbase_url = "{b.url}"\n'
        f'api_key_env = "BACKUP_API_KEY"\nmodel = "{backup_model}"\n',
        monkeypatch, tmp_path)
    monkeypatch.setenv("FIRST_API_KEY", KEY)
    monkeypatch.setenv("BACKUP_API_KEY", KEY)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def unavailable(fake: OpenAIFake, times: int = 1) -> None:
    """FAKE answers its next TIMES requests with a 503."""
    from tests.fakes.openai_fake import error

    for _ in range(times):
        fake.server.script.append(error(503, "The server is overloaded", etype="server_error"))
