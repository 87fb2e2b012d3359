"""Presets that speak the OpenAI dialect (TrueFoundry, YEScale), capabilities, --aspect."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from imagegen_cli.providers.base import SizeRule
from imagegen_cli.registry import create
from imagegen_cli.settings import config
from tests.conftest import run_cli, write_config
from tests.fakes.openai_fake import OpenAIFake


@pytest.fixture
def tfy(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIFake]:
    f = OpenAIFake(mode="truefoundry", keys=("tfy-token",), image_size=(32, 32)).start()
    monkeypatch.setenv("TFY_BASE_URL", f.url)
    monkeypatch.setenv("TFY_API_KEY", "tfy-token")
    yield f
    f.stop()


@pytest.fixture
def yescale(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[OpenAIFake]:
    f = OpenAIFake(mode="yescale", keys=("ys-key",)).start()
    write_config(f'[providers.yescale]\nbase_url = "{f.url}"\n', monkeypatch, tmp_path)
    monkeypatch.setenv("YESCALE_API_KEY", "ys-key")
    yield f
    f.stop()


def test_presets_table() -> None:
    cfg = config.load({"IMAGEGEN_CONFIG": "", "XDG_CONFIG_HOME": "/nonexistent"})
    rows = {n: (p.type, p.base_url, p.api_key_env, p.model) for n, p in cfg.providers.items()}
    assert rows["openai"] == ("openai", "https://api.openai.com/v1", "OPENAI_API_KEY",
                              "gpt-image-2.6-flare")
    assert rows["distribute"] == ("distribute", "https://api.distribute.ai",
                                  "DISTRIBUTE_API_KEY", "Flux.1 [dev]")
    assert rows["nebula"] == ("nebula", "https://api.nebulablock.com/api/v1", "NEBULA_API_KEY",
                              "black-forest-labs/FLUX.1-schnell")
    assert rows["truefoundry"] == ("openai", "https://gateway.truefoundry.ai", "TFY_API_KEY",
                                   None)
    assert rows["yescale"] == ("openai", "https://api.yescale.io/v1", "YESCALE_API_KEY",
                               "flux-pro")


def test_truefoundry_needs_model(tfy: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-p", "truefoundry"])
    assert r.code == 2 and "-m MODEL" in r.err
    assert tfy.server.requests == []


def test_truefoundry_account_model(tfy: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-p", "truefoundry", "-m", "openai-main/gpt-image-1",
                 "--quality", "low", "-o", "t.png", "--json"])
    assert r.code == 0, r.err
    (call,) = tfy.server.calls("/images/generations")
    assert call.path == "/api/llm/images/generations"
    body = call.json()
    assert body["model"] == "openai-main/gpt-image-1" and "response_format" not in body
    assert json.loads(r.stdout)["extra"]["resolved_model"] == "openai/gpt-image-1"
    # The gpt-image rules apply to the account-prefixed id too.
    r = run_cli(["generate", "x", "-p", "truefoundry", "-m", "openai-main/gpt-image-1",
                 "--style", "vivid"])
    assert r.code == 2


def test_yescale_urls_with_explicit_nulls(yescale: OpenAIFake) -> None:
    r = run_cli(["generate", "a river", "-p", "yescale", "--size", "1024x576", "-n", "2",
                 "-o", "y/{index}.png"])
    assert r.code == 0, r.err
    assert r.lines() == ["y/1.png", "y/2.png"]
    calls = yescale.server.calls("/images/generations")
    assert [c.json() for c in calls] == [{"model": "flux-pro", "prompt": "a river", "n": 1,
                                          "size": "1024x576"}] * 2
    downloads = yescale.server.calls(".png")
    assert len(downloads) == 2 and all("authorization" not in d.headers for d in downloads)
    with Image.open("y/1.png") as im:
        assert im.size == (1024, 576)


def test_yescale_sizes_checked(yescale: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-p", "yescale", "--size", "1000x1000"])
    assert r.code == 2 and "1344x576" in r.err
    r = run_cli(["generate", "x", "-p", "yescale", "--aspect", "16:9", "--dry-run"])
    assert json.loads(r.stdout)["requests"][0]["body"]["size"] == "1024x576"
    r = run_cli(["generate", "x", "-p", "yescale", "--aspect", "4:3", "--dry-run"])
    assert json.loads(r.stdout)["requests"][0]["body"]["size"] == "1280x960"  # exact, nearer 1 MP
    r = run_cli(["generate", "x", "-p", "yescale", "--aspect", "16:9", "--size", "1024x576"])
    assert r.code == 2 and "--size and --aspect" in r.err


@pytest.mark.parametrize("model, aspect, size", [
    ("dall-e-3", "16:9", "1792x1024"),
    ("dall-e-3", "1:1", "1024x1024"),
    ("dall-e-3", "9:16", "1024x1792"),
    ("gpt-image-1", "3:2", "1536x1024"),
    ("gpt-image-2", "16:9", None),
])
def test_aspect_closest_for_openai_models(model: str, aspect: str, size: str | None) -> None:
    p = create(config.load({"XDG_CONFIG_HOME": "/x"}).providers["openai"], {})
    rule = p.capabilities(model).sizes
    assert rule is not None
    w, h = (float(x) for x in aspect.split(":"))
    got = rule.closest(w / h)
    if size:
        assert got == size
    else:
        gw, gh = (int(x) for x in got.split("x"))
        assert gw % 16 == 0 and gh % 16 == 0 and abs(gw / gh - 16 / 9) < 0.02
        assert rule.check(got) is None


def test_size_rule_describe_and_check() -> None:
    rule = SizeRule(min_side=1, max_side=1024)
    assert rule.check("1024x1") is None
    assert rule.check("1025x10") is not None
    assert "multiples of 16" in SizeRule(multiple=16, max_side=64).describe()


def test_bad_aspect_exits_2(yescale: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-p", "yescale", "--aspect", "wide"])
    assert r.code == 2 and "W:H" in r.err
