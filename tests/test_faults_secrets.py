"""The key never appears anywhere: stdout, stderr, --debug, --dry-run, --json,
sidecars, embedded metadata, config show, providers show, tracebacks; whatever
characters it holds and wherever it was put (env, config, base_url, --param)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import Result, run_cli, write_config
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.server import Response

CORE = "Zq7SECRETcore"  # in every key below: any leak, escaped or not, shows it
ODD_KEYS = [
    f"sk-{CORE}-plain-0123456789",
    f"sk-{CORE}\"'$`\\%{{}}<>&;|*?~!#+=,",
    f"{CORE}/with+base64/like==",
]


def _leaks(text: str | bytes) -> bool:
    if isinstance(text, bytes):
        return CORE.encode() in text or CORE.encode("utf-16-be") in text
    return CORE in text


@pytest.fixture(params=ODD_KEYS, ids=["plain", "odd-characters", "base64-like"])
def keyed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
          tmp_path: Path) -> Iterator[tuple[OpenAIFake, str]]:
    key: str = request.param
    fake = OpenAIFake(keys=(key,), image_size=(32, 32)).start()
    write_config(f'[providers.openai]\nbase_url = "{fake.url}"\n', monkeypatch, tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    yield fake, key
    fake.stop()


def _check(runs: list[Result]) -> None:
    for r in runs:
        assert not _leaks(r.stdout) and not _leaks(r.err), (r.stdout, r.err)


def test_key_never_printed_on_any_path(keyed: tuple[OpenAIFake, str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    fake, key = keyed
    runs = [
        run_cli(["generate", "x", "--dry-run"]),
        run_cli(["--debug", "generate", "x", "-o", "a.png", "--sidecar", "--json"]),
        run_cli(["--debug", "generate", "x", "-o", "b.jpg", "--param", f"user={key}",
                 "--sidecar"]),
        run_cli(["generate", "x", "--dry-run", "--param", f"user={key}", "--param",
                 f"api_key={key}", "--param", "api_token=tok-Zq7SECRETcore-2"]),
        run_cli(["providers", "show", "openai"]),
        run_cli(["providers", "show", "openai", "--json"]),
        run_cli(["providers", "list"]),
        run_cli(["providers", "list", "--json"]),
        run_cli(["--debug", "providers", "check", "openai"]),
    ]
    assert runs[1].code == 0 and runs[2].code == 0, (runs[1].err, runs[2].err)
    assert "Bearer ***" in runs[1].err
    _check(runs)
    # Nor in what was written: image bytes (PNG text, JPEG EXIF/XMP) and sidecars.
    written = sorted(Path(".").glob("*.*"))
    assert {p.suffix for p in written} == {".png", ".jpg", ".json"}
    for p in written:
        assert not _leaks(p.read_bytes()), p
    side = json.loads(Path("b.json").read_text())
    assert side["params"] == {"user": "***"}
    # The fake did get the key (the check is not vacuous).
    assert fake.server.requests[0].headers["authorization"] == f"Bearer {key}"


def test_key_not_in_error_paths(keyed: tuple[OpenAIFake, str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake, key = keyed
    # A server that echoes the key back in its error message.
    fake.server.script.extend([Response.json({"error": {"message": f"bad key {key}"}}, 500)]
                              * 3)
    r1 = run_cli(["--debug", "generate", "x", "--json"])
    assert r1.code == 6
    # An internal error whose message holds the key: the --debug traceback is redacted.
    from imagegen_cli.providers import openai as mod

    def boom(self: object, req: object) -> None:
        raise RuntimeError(f"boom {key} {quote(key)}")

    monkeypatch.setattr(mod.OpenAIProvider, "body", boom)
    r2 = run_cli(["--debug", "generate", "x"])
    assert r2.code == 1 and "Traceback" in r2.err and "RuntimeError: boom ***" in r2.err
    _check([r1, r2])


def test_key_in_env_with_non_ascii_exits_3_without_showing_it(
        keyed: tuple[OpenAIFake, str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake, key = keyed
    monkeypatch.setenv("OPENAI_API_KEY", key + "é")
    r = run_cli(["--debug", "generate", "x"])
    assert r.code == 3 and "OPENAI_API_KEY holds the character U+00E9" in r.err
    _check([r])
    assert fake.server.requests == []


def test_stored_key_and_config_files_are_private(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    cfg = tmp_path / "fresh" / "dir" / "config.toml"
    monkeypatch.setenv("IMAGEGEN_CONFIG", str(cfg))
    key = ODD_KEYS[1]
    r = run_cli(["config", "set", "providers.nebula.api_key"], stdin=key + "\n")
    assert r.code == 0, r.err
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert stat.S_IMODE(cfg.parent.stat().st_mode) == 0o700
    runs = [run_cli(a) for a in (["config", "show"], ["config", "show", "--json"],
                                 ["config", "get", "providers.nebula.api_key"],
                                 ["providers", "show", "nebula"], ["providers", "list"],
                                 ["generate", "x", "-p", "nebula", "--dry-run"])]
    _check(runs)
    assert runs[5].code == 0 and "Bearer ***" in runs[5].stdout
    cfg.unlink()
    assert run_cli(["config", "init"]).code == 0
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600


def test_keys_in_base_url_and_query(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = OpenAIFake(image_size=(16, 16)).start()
    try:
        host = fake.url.removeprefix("http://")
        a, b, c = (f"{CORE}-{n}" for n in ("user", "query", "token"))
        write_config(f'[providers.gw]\ntype = "openai"\nmodel = "gpt-image-1"\n'
                     f'api_key_env = "OPENAI_API_KEY"\n'
                     f'base_url = "http://{a}@{host}?api-key={b}&x=1&access_token={c}"\n',
                     monkeypatch, tmp_path)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-123")
        runs = [run_cli(["generate", "x", "-p", "gw", "--dry-run"]),
                run_cli(["--debug", "generate", "x", "-p", "gw", "--retries", "0"]),
                run_cli(["providers", "show", "gw", "--json"]),
                run_cli(["config", "show", "--json"])]
    finally:
        fake.stop()
    _check(runs)
    url = json.loads(runs[0].stdout)["requests"][0]["url"]
    assert url.startswith("http://***@") and "api-key=***" in url and "x=1" in url
