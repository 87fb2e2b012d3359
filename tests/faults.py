"""Shared helpers of the fault and fuzz suites."""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import KEY, Result, write_config
from tests.fakes.hostile import Hostile

ROOT = Path(__file__).resolve().parent.parent


def chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(
        ">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


def bomb_png(w: int = 100_000, h: int = 100_000) -> bytes:
    """A tiny, structurally whole PNG whose header declares W x H pixels."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 4096, 9)) + chunk(b"IEND", b""))


def noisy_png(w: int, h: int, seed: int = 0) -> bytes:
    """A valid PNG that does not compress: about W*H*3 bytes."""
    rnd = random.Random(seed)
    raw = b"".join(b"\x00" + rnd.randbytes(w * 3) for _ in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 0))
            + chunk(b"IEND", b""))


def files_under(folder: Path) -> list[Path]:
    """Every file and link below FOLDER, hidden ones (temp files) included."""
    return sorted(p for p in folder.rglob("*") if not p.is_dir() or p.is_symlink())


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def assert_clean_failure(r: Result, code: int, folder: Path | None = None) -> str:
    """Exit CODE, exactly one error line, no traceback, nothing left in FOLDER.
    Returns the error line."""
    assert r.code == code, (r.code, r.err)
    assert "Traceback" not in r.err and "Exception ignored" not in r.err, r.err
    lines = error_lines(r.err)
    assert len(lines) == 1, r.err
    if folder is not None and folder.exists():
        assert files_under(folder) == [], files_under(folder)
    return lines[0]


def serve_openai(h: Hostile, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                 extra: str = "") -> Hostile:
    """Make the hostile server the `openai` provider, with the valid key set."""
    h.start()
    write_config(f'[providers.openai]\nbase_url = "{h.url}/v1"\n{extra}', monkeypatch, tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return h


def hostile_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Hostile]:
    """A started Hostile server as the openai provider (a fixture: `hostile =
    pytest.fixture(hostile_server)` in a test module)."""
    h = serve_openai(Hostile(), monkeypatch, tmp_path)
    yield h
    h.stop()


def imagegen_argv(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "imagegen_cli", *args]


def imagegen_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def imagegen(args: list[str], **kw: object) -> subprocess.Popen[bytes]:
    """The command as a user runs it, in a child process (the test's environment)."""
    return subprocess.Popen(imagegen_argv(args), env=imagegen_env(),
                            **kw)  # type: ignore[call-overload,no-any-return]


def mount_tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """FOLDER as a fresh tmpfs mounted with OPTIONS (size=64k, ro, ...); skips the test
    where mounting is not allowed (CI runs as root, so there it runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def tiny_disk_fixture(tmp_path: Path) -> Iterator[Path]:
    """A 64 kB disk (a fixture: `tiny_disk = pytest.fixture(tiny_disk_fixture)`)."""
    yield from mount_tmpfs(tmp_path / "tiny", "size=64k,mode=0777")
