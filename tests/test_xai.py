"""xAI (type `xai`, preset `xai`) driven through the CLI against the strict fake."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import KEY, SLEEPS, run_cli, write_config
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.server import Response, png
from tests.fakes.xai_fake import KEY as XAI_KEY
from tests.fakes.xai_fake import XAIFake


@pytest.fixture
def xai(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[XAIFake]:
    f = XAIFake().start()
    write_config(f'[providers.xai]\nbase_url = "{f.url}"\n', monkeypatch, tmp_path)
    monkeypatch.setenv("XAI_API_KEY", XAI_KEY)
    yield f
    f.stop()


def test_generate_downloads_urls_without_the_key(xai: XAIFake) -> None:
    r = run_cli(["generate", "a lighthouse", "-p", "xai", "-n", "2", "-o", "x/{index}.png"])
    assert r.code == 0, r.err
    assert r.lines() == ["x/1.png", "x/2.png"]
    (call,) = xai.server.calls("/images/generations")
    assert call.headers["authorization"] == f"Bearer {XAI_KEY}"
    assert call.json() == {"model": "grok-imagine-image", "prompt": "a lighthouse", "n": 2}
    fetched = xai.images.requests
    assert len(fetched) == 2
    assert all(not {"authorization", "api-key"} & set(f.headers) for f in fetched)
    with Image.open("x/1.png") as im:
        assert im.size == (32, 32)


def test_aspect_and_resolution(xai: XAIFake) -> None:
    r = run_cli(["generate", "x", "-p", "xai", "--aspect", "16:9", "--resolution", "2k",
                 "-o", "w.png"])
    assert r.code == 0, r.err
    body = xai.server.calls("/images/generations")[-1].json()
    assert body["aspect_ratio"] == "16:9" and body["resolution"] == "2k"
    assert "size" not in body and "quality" not in body
    with Image.open("w.png") as im:
        assert im.size == (114, 64)  # 16:9 at the fake's "2k"
    # Not a documented ratio: the nearest, said on stderr.
    r = run_cli(["generate", "x", "-p", "xai", "--aspect", "21:9", "-o", "u.png"])
    assert r.code == 0, r.err
    assert xai.server.calls("/images/generations")[-1].json()["aspect_ratio"] == "20:9"
    assert "20:9" in r.err
    r = run_cli(["generate", "x", "-p", "xai", "--aspect", "9:19.5", "--dry-run"])
    assert json.loads(r.stdout)["requests"][0]["body"]["aspect_ratio"] == "9:19.5"


@pytest.mark.parametrize("args, words", [
    (["-s", "1024x1024"], "--aspect"),
    (["--quality", "high"], "--quality"),
    (["--style", "vivid"], "--style"),
    (["--resolution", "4K"], "1k, 2k"),
    (["--background", "transparent"], "--background"),
    (["--stream"], "--stream"),
])
def test_what_xai_does_not_take_is_refused_before_sending(xai: XAIFake, args: list[str],
                                                          words: str) -> None:
    r = run_cli(["generate", "x", "-p", "xai", *args])
    assert r.code == 2, r.err
    assert words in r.err
    assert xai.server.requests == []


def test_fake_refuses_what_xai_refuses(xai: XAIFake) -> None:
    """A raw field xAI does not take reaches the fake and comes back as its message."""
    r = run_cli(["generate", "x", "-p", "xai", "--param", "style=vivid", "-o", "s.png"])
    assert r.code == 5 and "Argument not supported: style" in r.err
    r = run_cli(["generate", "x", "-p", "xai", "--param", "aspect_ratio=5:4", "-o", "s.png"])
    assert r.code == 5 and "aspect_ratio" in r.err


def test_n_is_split_at_ten(xai: XAIFake) -> None:
    r = run_cli(["generate", "x", "-p", "xai", "-n", "12", "-o", "n/"])
    assert r.code == 0, r.err
    assert sorted(c.json()["n"] for c in xai.server.calls("/images/generations")) == [2, 10]
    assert len(list(Path("n").iterdir())) == 12


def test_edits_are_json_with_data_urls(xai: XAIFake) -> None:
    Path("a.png").write_bytes(png(40, 30))
    Path("b.png").write_bytes(png(30, 40))
    r = run_cli(["edit", "make it night", "-p", "xai", "-i", "a.png", "--aspect", "16:9",
                 "-o", "e1.png"])
    assert r.code == 0, r.err
    (call,) = xai.server.calls("/images/edits")
    assert call.headers["content-type"].startswith("application/json")
    body = call.json()
    assert body["image"]["url"].startswith("data:image/png;base64,")
    assert base64.b64decode(body["image"]["url"].split(",", 1)[1]) == png(40, 30)
    assert "images" not in body and "aspect_ratio" not in body  # one image keeps its ratio
    assert "keeps the input's aspect ratio" in r.err
    r = run_cli(["edit", "combine", "-p", "xai", "-i", "a.png", "-i", "b.png",
                 "-i", "https://example.com/c.png", "--aspect", "1:1", "-o", "e2.png"])
    assert r.code == 0, r.err
    body = xai.server.calls("/images/edits")[-1].json()
    assert len(body["images"]) == 3 and "image" not in body
    assert body["images"][2]["url"] == "https://example.com/c.png"
    assert body["aspect_ratio"] == "1:1"
    r = run_cli(["edit", "too many", "-p", "xai", *(x for _ in range(4)
                                                     for x in ("-i", "a.png"))])
    assert r.code == 2 and "at most 3" in r.err
    r = run_cli(["inpaint", "x", "-p", "xai", "--image", "a.png", "--mask", "a.png"])
    assert r.code == 2
    assert len(xai.server.calls("/images/edits")) == 2


def test_multipart_edit_refused_by_the_fake(xai: XAIFake) -> None:
    """The fake refuses what xAI refuses: OpenAI's multipart edit."""
    import httpx

    resp = httpx.post(xai.url + "/images/edits", headers={"authorization": f"Bearer {XAI_KEY}"},
                      files={"image": ("a.png", png(8, 8), "image/png")},
                      data={"prompt": "x", "model": "grok-imagine-image"})
    assert resp.status_code == 415


def test_dry_run_shows_the_exact_request(xai: XAIFake) -> None:
    r = run_cli(["generate", "x", "-p", "xai", "--aspect", "3:4", "--resolution", "1k",
                 "--user", "u1", "--dry-run"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    (req,) = report["requests"]
    assert req["url"] == xai.url + "/images/generations"
    assert req["headers"]["authorization"] == "Bearer ***"
    assert req["body"] == {"model": "grok-imagine-image", "prompt": "x", "n": 1,
                           "aspect_ratio": "3:4", "resolution": "1k", "user": "u1"}
    assert XAI_KEY not in r.stdout + r.err
    assert report["estimated_cost"]["total_usd"] == {"min": 0.02, "max": 0.02}
    assert xai.server.requests == []


def test_json_costs_and_max_cost(xai: XAIFake) -> None:
    r = run_cli(["generate", "x", "-p", "xai", "-n", "3", "-o", "j/", "--json"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    assert report["provider"] == "xai" and report["model"] == "grok-imagine-image"
    assert report["cost_usd"] == pytest.approx(0.06)
    assert report["request_id"].startswith("xreq-")
    assert len(report["images"]) == 3
    r = run_cli(["generate", "x", "-p", "xai", "-n", "3", "--max-cost", "0.05"])
    assert r.code == 2 and "0.06" in r.err
    assert len(xai.server.calls("/images/generations")) == 1
    # A model without a published price: --max-cost cannot be honoured.
    r = run_cli(["generate", "x", "-p", "xai", "-m", "grok-imagine-image-quality",
                 "--max-cost", "1"])
    assert r.code == 2


def test_errors_and_retries(xai: XAIFake, monkeypatch: pytest.MonkeyPatch) -> None:
    xai.server.script.append(Response.json({"code": "Internal", "error": "overloaded"}, 503))
    r = run_cli(["generate", "x", "-p", "xai", "-o", "r.png"])
    assert r.code == 0, r.err
    assert len(SLEEPS) == 1 and len(xai.server.calls("/images/generations")) == 2
    r = run_cli(["generate", "blocked prompt", "-p", "xai", "-o", "b.png"])
    assert r.code == 5 and "prohibited_content" in r.err
    r = run_cli(["generate", "x", "-p", "xai", "-m", "grok-9", "-o", "m.png"])
    assert r.code == 5 and "does not exist" in r.err
    monkeypatch.setenv("XAI_API_KEY", "wrong-key-000")
    r = run_cli(["generate", "x", "-p", "xai", "-o", "k.png"])
    assert r.code == 4 and "wrong-key-000" not in r.err


def test_deprecated_model_warns(xai: XAIFake) -> None:
    r = run_cli(["generate", "x", "-p", "xai", "-m", "grok-imagine-image-pro", "-o", "p.png",
                 "-q"])
    assert r.code == 0, r.err
    assert "deprecated since 2026-05-15, use grok-imagine-image-quality" in r.err


def test_batch_and_fallback(xai: XAIFake, monkeypatch: pytest.MonkeyPatch,
                            tmp_path: Path) -> None:
    Path("jobs.jsonl").write_text(
        '{"prompt": "one", "output": "b/1.png", "aspect": "2:1"}\n'
        '{"prompt": "two", "output": "b/2.png", "resolution": "2k"}\n')
    r = run_cli(["batch", "jobs.jsonl", "-p", "xai"])
    assert r.code == 0, r.err
    bodies = sorted((c.json() for c in xai.server.calls("/images/generations")),
                    key=lambda b: b["prompt"])
    assert bodies[0]["aspect_ratio"] == "2:1" and bodies[1]["resolution"] == "2k"
    assert sorted(p.name for p in Path("b").iterdir()) == ["1.png", "2.png"]
    # openai down -> the same prompt goes to xai, by xai's own rules.
    o = OpenAIFake(image_size=(32, 32)).start()
    try:
        path = tmp_path / "config.toml"
        path.write_text(path.read_text() + f'[providers.openai]\nbase_url = "{o.url}"\n')
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        o.server.script.extend(Response(503, b"down") for _ in range(3))
        r = run_cli(["generate", "x", "-p", "openai,xai", "--aspect", "16:9", "-o", "f.png",
                     "--json", "--retries", "2"])
        assert r.code == 0, r.err
        report = json.loads(r.stdout)
        assert report["provider"] == "xai" and report["fallbacks"][0]["from"] == "openai"
        assert xai.server.calls("/images/generations")[-1].json()["aspect_ratio"] == "16:9"
    finally:
        o.stop()


def test_providers_list_show_add(xai: XAIFake) -> None:
    r = run_cli(["providers", "show", "xai", "--json"])
    assert r.code == 0, r.err
    info = json.loads(r.stdout)
    assert info["type"] == "xai" and info["model"] == "grok-imagine-image"
    caps = info["models"]["grok-imagine-image"]
    assert caps["values"]["--resolution"] == ["1k", "2k"] and "16:9" in caps["aspect_ratios"]
    assert caps["n_per_request"] == 10 and caps["max_images"] == 3
    r = run_cli(["providers", "models", "xai"])
    assert r.code == 0, r.err
    assert "grok-imagine-image" in r.stdout
    r = run_cli(["providers", "check", "xai"])
    assert r.code == 0, r.err
    r = run_cli(["providers", "add", "grok2", "--type", "xai", "--base-url", xai.url,
                 "--api-key-env", "XAI_API_KEY"])
    assert r.code == 0, r.err
    r = run_cli(["generate", "x", "-p", "grok2", "-o", "g.png"])
    assert r.code == 0, r.err
