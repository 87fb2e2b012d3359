"""`imagegen providers ...` and shell completions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KEY, run_cli, write_config
from tests.fakes.openai_fake import OpenAIFake

ROOT = Path(__file__).resolve().parent.parent


def test_list_json_never_shows_keys(fake: OpenAIFake) -> None:
    r = run_cli(["providers", "list", "--json"])
    assert r.code == 0, r.err
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["openai"]["key"] == "set via OPENAI_API_KEY"
    assert rows["nebula"]["key"] == "missing"
    assert rows["openai"]["base_url"] == fake.url
    assert KEY not in r.stdout


def test_list_table(fake: OpenAIFake) -> None:
    r = run_cli(["providers", "list"])
    assert r.code == 0
    lines = r.lines()
    assert lines[0].split()[:3] == ["name", "type", "base"]
    assert any("Flux.1 [dev]" in line for line in lines)
    assert KEY not in r.stdout


def test_stored_key_status(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    p = write_config('[providers.nebula]\napi_key = "neb-secret-1"\n', monkeypatch, tmp_path)
    p.chmod(0o600)
    r = run_cli(["providers", "list", "--json"])
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["nebula"]["key"] == "stored in config"
    assert "neb-secret-1" not in r.stdout + r.err


def test_show(fake: OpenAIFake) -> None:
    r = run_cli(["providers", "show", "openai", "--json"])
    info = json.loads(r.stdout)
    models = info["models"]
    # Current models only: shut-down ones are left out (gpt-image-1, dall-e-*).
    assert list(models)[:2] == ["gpt-image-2.6-flare", "gpt-image-2.6-sunburst"]
    assert not {"gpt-image-1", "dall-e-3", "dall-e-2"} & set(models)
    flare = models["gpt-image-2.6-flare"]
    assert flare["status"] == "active" and flare["stream"] is True and flare["edit"] is True
    assert "--complexity" in flare["options"] and "svg" in flare["formats"]
    assert flare["values"]["--quality"] == ["low", "medium", "high", "xhigh", "max", "auto"]
    assert "--complexity" not in models["gpt-image-2.5-flare"]["options"]
    assert models["gpt-image-2"]["values"]["--quality"] == ["low", "medium", "high", "auto"]
    assert "multiples of 16" in models["gpt-image-2"]["sizes"]
    r = run_cli(["providers", "show", "openai"])
    assert "model gpt-image-2.6-flare: (active)" in r.stdout
    assert "gpt-image-1:" not in r.stdout
    r = run_cli(["providers", "show", "distribute"])
    assert "--steps : 1..50" in r.stdout and "sides 1..1024" in r.stdout
    r = run_cli(["providers", "show", "nope"])
    assert r.code == 3


def test_models_live_openai_filtered(fake: OpenAIFake) -> None:
    r = run_cli(["providers", "models", "openai"])
    assert r.code == 0, r.err
    rows = {line.split()[0]: line.split(None, 1)[1:] for line in r.lines()}
    assert "gpt-image-1" in rows and "whisper-1" not in rows
    assert rows["gpt-image-1"] == ["shut down 2026-10-23, use gpt-image-2.6-flare"]
    assert rows["gpt-image-2.6-flare"] == ["active"]
    assert rows["gpt-image-1.5"][0].startswith("deprecated: shuts down 2026-12-01, use "
                                               "gpt-image-2.6-flare or gpt-image-2.6-sunburst") \
        or rows["gpt-image-1.5"][0].startswith("shut down 2026-12-01")
    r = run_cli(["providers", "models", "openai", "--json"])
    status = json.loads(r.stdout)["status"]
    assert status["dall-e-3"].startswith("shut down 2026-05-12") and \
        status["gpt-image-2"] == "active"
    entry = json.loads(r.stdout)["lifecycle"]["gpt-image-1"]
    assert entry["status"] == "shut down" and entry["shutdown"] == "2026-10-23"
    assert entry["replacement"] == "gpt-image-2.6-flare" and entry["read"] == "2026-11-23"
    assert entry["source"].startswith("https://")
    assert fake.server.calls("/models")


def test_models_live_nebula(nebula: Any) -> None:
    r = run_cli(["providers", "models", "nebula", "--json"])
    out = json.loads(r.stdout)
    assert out["live"] is True
    assert "black-forest-labs/FLUX.1-Fill-dev" in out["models"]
    assert "meta-llama/Llama-3.3-70B" not in out["models"]


def test_models_static_distribute() -> None:
    r = run_cli(["providers", "models", "distribute"])
    assert r.code == 0 and "Flux.1 [dev]" in r.lines()


def test_check_good_bad_missing_unreachable(fake: OpenAIFake,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    r = run_cli(["providers", "check", "openai"])
    assert r.code == 0 and r.stdout.startswith("openai: ok")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-bad-bad")
    r = run_cli(["providers", "check", "openai"])
    assert r.code == 4 and "sk-bad-bad" not in r.err + r.stdout
    monkeypatch.delenv("OPENAI_API_KEY")
    r = run_cli(["providers", "check", "openai"])
    assert r.code == 3 and "OPENAI_API_KEY" in r.err
    r = run_cli(["providers", "check"])
    assert r.code == 2


def test_check_unreachable_exits_6(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_config('[providers.openai]\nbase_url = "http://127.0.0.1:9/v1"\n', monkeypatch,
                 tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    r = run_cli(["providers", "check", "openai"])
    assert r.code == 6 and "Cannot reach" in r.err


def test_check_all(fake: OpenAIFake, nebula: Any, distribute: Any,
                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_config(f'[providers.openai]\nbase_url = "{fake.url}"\n'
                 f'[providers.nebula]\nbase_url = "{nebula.url}"\n'
                 f'[providers.distribute]\nbase_url = "{distribute.url}"\n', monkeypatch,
                 tmp_path)
    r = run_cli(["providers", "check", "--all", "--json"])
    assert r.code == 0, r.err
    rows = {row["provider"]: row for row in json.loads(r.stdout)}
    rows.pop("local", None)  # needs no key: checked when diffusers is installed
    assert {n: row["ok"] for n, row in rows.items()} == {
        "openai": True, "distribute": True, "nebula": True, "bfl": None, "truefoundry": None,
        "yescale": None, "azure": None, "xai": None, "gemini": None}
    assert rows["yescale"]["detail"] == "no key (set YESCALE_API_KEY)"
    monkeypatch.setenv("NEBULA_API_KEY", "wrong")
    r = run_cli(["providers", "check", "--all"])
    assert r.code == 4 and "nebula: failed" in r.stdout and "openai: ok" in r.stdout


def test_add_and_remove_gateway(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = write_config("# my settings\n", monkeypatch, tmp_path)
    r = run_cli(["providers", "add", "gw", "--type", "openai", "--base-url",
                 "https://gw.example/v1", "--api-key-env", "GW_KEY", "--model", "gpt-image-1"])
    assert r.code == 0, r.err
    text = cfg.read_text()
    assert text.startswith("# my settings\n") and "[providers.gw]" in text
    r = run_cli(["providers", "list", "--json"])
    assert any(row["name"] == "gw" and row["key_env"] == "GW_KEY"
               for row in json.loads(r.stdout))
    r = run_cli(["providers", "add", "gw", "--type", "openai", "--base-url", "https://x/v1"])
    assert r.code == 2 and "--force" in r.err
    r = run_cli(["providers", "add", "bad", "--type", "soap", "--base-url", "https://x"])
    assert r.code == 2 and "--type soap" in r.err
    r = run_cli(["providers", "add", "bad", "--type", "openai", "--base-url", "ftp://x"])
    assert r.code == 2 and "base_url" in r.err
    r = run_cli(["providers", "remove", "gw"])
    assert r.code == 0 and "[providers.gw]" not in cfg.read_text()
    r = run_cli(["providers", "remove", "gw"])
    assert r.code == 2


def _complete(env_extra: dict[str, str]) -> str:
    env = {**os.environ, "_IMAGEGEN_COMPLETE": "complete_zsh", **env_extra}
    r = subprocess.run([sys.executable, "-m", "imagegen_cli"], env=env, capture_output=True,
                       text=True, timeout=60)
    return r.stdout


def test_dynamic_completion_of_providers_and_models(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    write_config('[providers.mygw]\ntype = "openai"\nbase_url = "https://g/v1"\n'
                 'model = "gw-model-1"\n', monkeypatch, tmp_path)
    out = _complete({"_TYPER_COMPLETE_ARGS": "imagegen generate -p my"})
    assert "mygw" in out
    out = _complete({"_TYPER_COMPLETE_ARGS": "imagegen generate -p nebula -m black"})
    assert "black-forest-labs/FLUX.1-Fill-dev" in out
