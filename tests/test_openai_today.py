"""The OpenAI dialect as of 2026-11-23: model lifecycle, the gpt-image-2 family's
limits, the newer request fields, what the provider resolved, gif/svg output."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import httpx
import pytest
from PIL import Image

from imagegen_cli.errors import UsageError
from imagegen_cli.providers import openai_lifecycle as lifecycle
from tests.conftest import KEY, run_cli, write_config
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.server import Response, png

# ------------------------------------------------------------------ lifecycle table


def test_table_has_every_status_with_source_and_date() -> None:
    t = lifecycle.table()
    nov23 = date(2026, 11, 23)
    assert t["gpt-image-2.6-flare"].status(nov23) == lifecycle.ACTIVE
    assert t["gpt-image-2-2026-04-21"].status(nov23) == lifecycle.ACTIVE
    mini = t["gpt-image-1-mini"]
    assert mini.status(nov23) == lifecycle.DEPRECATED
    assert mini.shutdown == date(2026, 12, 1) and mini.replacement == "gpt-image-2.6-flare"
    # The date decides: the day it shuts down, the table says so without an update.
    assert mini.status(date(2026, 12, 1)) == lifecycle.SHUTDOWN
    assert t["gpt-image-1"].status(nov23) == lifecycle.SHUTDOWN
    assert t["dall-e-2"].shutdown == date(2026, 5, 12)
    for e in t.values():
        assert e.source.startswith("https://") and e.read == "2026-11-23"
    assert lifecycle.lookup("openai-main/gpt-image-1") is t["gpt-image-1"]  # gateway ids
    assert lifecycle.lookup("flux-pro") is None


def test_check_by_status_and_base_url() -> None:
    official = "https://api.openai.com/v1"
    nov23 = date(2026, 11, 23)
    assert lifecycle.check("gpt-image-2.6-sunburst", official, nov23) is None
    with pytest.raises(UsageError, match="shut down by OpenAI on 2026-10-23: pass "
                       "-m gpt-image-2.6-flare"):
        lifecycle.check("gpt-image-1", official, nov23)
    gw = lifecycle.check("gpt-image-1", "https://gateway.truefoundry.ai/api/llm", nov23)
    assert gw and "shut down by OpenAI on 2026-10-23" in gw and "gpt-image-2.6-flare" in gw
    dep = lifecycle.check("gpt-image-1.5", official, nov23)
    assert dep == ("model gpt-image-1.5 is deprecated by OpenAI and shuts down on 2026-12-01: "
                   "switch to gpt-image-2.6-flare or gpt-image-2.6-sunburst")
    with pytest.raises(UsageError):
        lifecycle.check("gpt-image-1.5", official, date(2026, 12, 2))


def test_table_is_loaded_lazily_and_shipped_in_the_wheel(tmp_path: Path) -> None:
    code = ("import sys, imagegen_cli.cli.app as a; "
            "print('imagegen_cli.providers.openai_lifecycle' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
    root = Path(__file__).resolve().parent.parent
    pytest.importorskip("setuptools")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(root)], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"cannot build a wheel offline here: {built.stderr[-200:]}")
    import zipfile

    (wheel,) = tmp_path.glob("imagegen_cli-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "imagegen_cli/data/openai_models.json" in names


def test_shut_down_model_on_openai_exits_2_before_sending(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The preset's own base URL is api.openai.com; a proxy on loopback catches any
    # request that would leave, so nothing can reach beyond 127.0.0.1.
    trap = OpenAIFake().start()
    monkeypatch.setenv("HTTPS_PROXY", trap.server.url)
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    try:
        for argv in (["generate", "x", "-m", "gpt-image-1"],
                     ["generate", "x", "-m", "dall-e-3", "--dry-run"]):
            r = run_cli(argv)
            assert r.code == 2, r.err
            assert "was shut down by OpenAI" in r.err and "-m gpt-image-2.6-flare" in r.err
            assert r.stdout == ""
        assert trap.server.requests == []
    finally:
        trap.stop()


def test_shut_down_model_on_a_gateway_only_warns(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-m", "gpt-image-1", "-q", "-o", "g.png"])
    assert r.code == 0, r.err
    assert r.err.count("warning: model gpt-image-1 was shut down by OpenAI on 2026-10-23") == 1
    assert "gpt-image-2.6-flare" in r.err
    assert Path("g.png").exists()


def test_deprecated_model_warns_once_with_date_and_replacement(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-m", "gpt-image-1-mini", "-n", "2", "-o", "d/"])
    assert r.code == 0, r.err
    assert r.err.count("deprecated by OpenAI and shuts down on 2026-12-01") == 1
    assert "switch to gpt-image-2.6-flare" in r.err


@pytest.mark.parametrize("day", ["2026-12-01", "2028-12-31"])
def test_after_its_shutdown_day_a_deprecated_model_is_shut_down(
        fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch, day: str) -> None:
    monkeypatch.setenv("IMAGEGEN_TODAY", day)
    r = run_cli(["generate", "x", "-m", "gpt-image-1-mini", "-q", "-o", "g.png"])
    assert r.code == 0, r.err  # a gateway (the `fake` keeps retired models): warned
    assert r.err.count("shut down by OpenAI on 2026-12-01") == 1
    assert "replacement is gpt-image-2.6-flare" in r.err
    assert lifecycle.lookup("gpt-image-1-mini").status() == lifecycle.SHUTDOWN  # type: ignore[union-attr]


def test_a_bad_pinned_day_is_a_usage_error(fake: OpenAIFake,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEGEN_TODAY", "tomorrow")
    r = run_cli(["generate", "x", "-m", "gpt-image-1-mini", "--dry-run"])
    assert r.code == 2 and "IMAGEGEN_TODAY='tomorrow' is not a date" in r.err
    assert "Traceback" not in r.err


def test_the_strict_fake_refuses_shut_down_models(openai_today: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-m", "gpt-image-1"])
    assert r.code == 5 and "was shut down on 2026-10-23" in r.err  # the API's own 404


def test_unknown_gpt_image_model_gets_newest_rules_with_a_note(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-m", "gpt-image-3", "--complexity", "high", "--quality",
                 "max", "--size", "2048x1152", "--dry-run"])
    assert r.code == 0, r.err
    assert "gpt-image-3 is not in imagegen's model table: using gpt-image-2.6's rules" in r.err
    body = json.loads(r.stdout)["requests"][0]["body"]
    assert body["complexity"] == "high" and body["size"] == "2048x1152"
    r = run_cli(["generate", "x", "-m", "gpt-image-3", "--size", "1000x1000", "--dry-run"])
    assert r.code == 2 and "multiples of 16" in r.err


# ------------------------------------------------------------------ gpt-image-2 family


def test_free_sizes_quality_and_complexity_sent(openai_today: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "--size", "3840x2160", "--quality", "max",
                 "--complexity", "low", "-o", "a.png", "-q"])
    assert r.code == 0, r.err
    body = openai_today.server.calls("/images/generations")[0].json()
    assert body == {"model": "gpt-image-2.6-flare", "prompt": "x", "n": 1,
                    "size": "3840x2160", "quality": "max", "complexity": "low",
                    "output_format": "png"}
    r = run_cli(["generate", "x", "-m", "gpt-image-2.5-sunburst", "--quality", "xhigh",
                 "--size", "768x2304", "-o", "b.png", "-q"])
    assert r.code == 0, r.err


@pytest.mark.parametrize("argv, needle", [
    (["--size", "3856x2160"], "--size 3856x2160"),
    (["--size", "3840x1024"], "ratio"),
    (["--size", "1000x1000"], "multiples of 16"),
    (["-m", "gpt-image-2", "--quality", "xhigh"], "use one of low, medium, high, auto"),
    (["-m", "gpt-image-2.5-flare", "--complexity", "high"], "--complexity is not supported"),
    (["--complexity", "extreme"], "--complexity extreme"),
    (["--output-compression", "101", "-f", "jpeg"], "0..100"),
    (["--output-compression", "50"], "add -f jpeg or -f webp"),
    (["--background", "transparent", "-f", "jpeg"], "pass -f png or -f webp"),
    (["--background", "transparent", "-o", "t.jpg"], "pass -f png or -f webp"),
    (["--param", "stream=true"], "pass --stream instead"),
    (["--param", "input_fidelity=high"], "use `imagegen edit"),
    (["-m", "gpt-image-2", "-f", "svg"], "does not draw svg"),
])
def test_checked_before_sending(openai_today: OpenAIFake, argv: list[str],
                                needle: str) -> None:
    r = run_cli(["generate", "sky", *argv])
    assert r.code == 2, r.err
    assert needle in r.err and r.stdout == ""
    assert openai_today.server.requests == []


@pytest.mark.parametrize("body, param", [
    ({"model": "gpt-image-2", "quality": "xhigh"}, "quality"),
    ({"model": "gpt-image-2.5-flare", "complexity": "high"}, "complexity"),
    ({"model": "gpt-image-2.6-flare", "output_compression": 50}, "output_compression"),
    ({"model": "gpt-image-2.6-flare", "output_format": "jpeg", "background": "transparent"},
     "background"),
    ({"model": "gpt-image-2.6-flare", "input_fidelity": "high"}, "input_fidelity"),
    ({"model": "gpt-image-2.6-flare", "size": "4096x2160"}, "size"),
    ({"model": "gpt-image-2", "output_format": "svg"}, "output_format"),
])
def test_the_fake_refuses_what_the_api_would(openai_today: OpenAIFake, body: dict[str, str],
                                            param: str) -> None:
    resp = httpx.post(f"{openai_today.url}/images/generations", json={"prompt": "x", **body},
                      headers={"authorization": f"Bearer {KEY}"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == param


def test_the_fake_refuses_gif_and_too_many_images_on_edits(openai_today: OpenAIFake) -> None:
    ref = {"image_url": "https://example.com/a.png"}
    base = {"model": "gpt-image-2.6-flare", "prompt": "x"}
    auth = {"authorization": f"Bearer {KEY}"}
    url = f"{openai_today.url}/images/edits"
    resp = httpx.post(url, json={**base, "images": [ref], "output_format": "gif"}, headers=auth)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "output_format"
    resp = httpx.post(url, json={**base, "images": [ref] * 17}, headers=auth)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "images"
    resp = httpx.post(url, json={**base, "images": [ref]}, headers=auth)
    assert resp.status_code == 200


# ------------------------------------------------------------------ new fields


def test_compression_user_and_format_sent(openai_today: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "--output-compression", "40", "-f", "webp", "--user",
                 "user-42", "-o", "c.webp", "-q"])
    assert r.code == 0, r.err
    body = openai_today.server.calls("/images/generations")[0].json()
    assert body["output_compression"] == 40 and body["output_format"] == "webp"
    assert body["user"] == "user-42"
    assert Path("c.webp").read_bytes()[8:12] == b"WEBP"


def test_stream_asks_for_events_and_sums_usage(openai_today: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "--stream", "--partial-images", "1", "-n", "2",
                 "--keep-partials", "--json", "-o", "s/{index}.{ext}"])
    assert r.code == 0, r.err
    call = openai_today.server.calls("/images/generations")[0]
    assert call.headers["accept"] == "text/event-stream"
    report = json.loads(r.stdout)
    # Two completed events of 100 tokens each: summed, not the last one.
    assert report["usage"]["total_tokens"] == 200
    assert report["usage"]["input_tokens_details"]["text_tokens"] == 20
    assert sorted(p.name for p in Path("s").iterdir()) == [
        "1.partial-1.png", "1.png", "2.partial-1.png", "2.png"]
    resolved = report["images"][0]["resolved"]
    assert resolved["quality"] == "medium" and resolved["size"] == "1024x1024"
    assert isinstance(resolved["created"], int)


def test_non_stream_requests_accept_json(openai_today: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-q", "-o", "j.png"])
    assert r.code == 0, r.err
    assert openai_today.server.calls("/images/generations")[0].headers["accept"] == \
        "application/json"


def test_resolved_values_recorded_in_json_sidecar_and_metadata(
        openai_today: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "--quality", "auto", "--sidecar", "--json", "-o", "r.png"])
    assert r.code == 0, r.err
    img = json.loads(r.stdout)["images"][0]
    assert img["resolved"]["quality"] == "medium"
    assert img["resolved"]["background"] == "opaque"
    assert img["resolved"]["output_format"] == "png"
    assert img["resolved"]["generation_id"].startswith("gen_")
    side = json.loads(Path("r.json").read_text())
    assert side["quality"] == "medium" and side["background"] == "opaque"
    assert side["resolved"]["size"] == "1024x1024" and "created" in side["resolved"]
    with Image.open("r.png") as im:
        meta = json.loads(im.text["imagegen"])  # type: ignore[attr-defined]
    assert meta["quality"] == "medium" and meta["resolved"]["quality"] == "medium"


# ------------------------------------------------------------------ gif and svg


def test_svg_written_as_received_with_sidecar(openai_today: OpenAIFake) -> None:
    r = run_cli(["generate", "a logo", "-f", "svg", "--json", "-o", "logo.svg"])
    assert r.code == 0, r.err
    assert "written as received" in r.err and "sidecar" in r.err
    report = json.loads(r.stdout)
    img = report["images"][0]
    assert img["path"] == "logo.svg" and img["format"] == "svg"
    assert (img["width"], img["height"]) == (64, 64)
    assert img["resolved"]["svg_usage"] == {"elements": 1}
    data = Path("logo.svg").read_bytes()
    assert data.startswith(b"<?xml") and b"imagegen" not in data  # untouched
    assert json.loads(Path("logo.json").read_text())["prompt"] == "a logo"
    body = openai_today.server.calls("/images/generations")[0].json()
    assert body["output_format"] == "svg"


def test_animated_gif_written_as_received(openai_today: OpenAIFake) -> None:
    r = run_cli(["generate", "a spinner", "-f", "gif", "-q", "-o", "spin/"])
    assert r.code == 0, r.err
    (path,) = r.lines()
    assert path.endswith(".gif")
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 2  # type: ignore[attr-defined]
    assert Path(path).with_suffix(".json").exists()


def test_svg_only_accepted_when_asked(openai_today: OpenAIFake) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"></svg>'
    answer = {"created": 1, "data": [{"b64_json": base64.b64encode(svg).decode()}]}
    openai_today.server.script.append(Response.json(answer))
    r = run_cli(["generate", "x", "-o", "p.png"])
    assert r.code == 6 and not Path("p.png").exists()
    # Asked for svg, got a PNG: refused too.
    answer = {"created": 1, "data": [{"b64_json": base64.b64encode(png(4, 4)).decode()}]}
    openai_today.server.script.append(Response.json(answer))
    r = run_cli(["generate", "x", "-f", "svg", "-o", "p.svg"])
    assert r.code == 6 and "Asked for SVG" in r.err and not Path("p.svg").exists()


def test_gif_on_edit_refused_before_sending(openai_today: OpenAIFake) -> None:
    Image.new("RGB", (32, 32), "red").save("a.png")
    r = run_cli(["edit", "x", "-i", "a.png", "-f", "gif"])
    assert r.code == 2 and "generations only" in r.err
    assert openai_today.server.requests == []


def test_gateway_model_keeps_its_own_limits(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    f = OpenAIFake(mode="truefoundry", keys=("tfy",), image_size=(16, 16)).start()
    try:
        write_config(f'[providers.truefoundry]\nbase_url = "{f.url}"\n', monkeypatch,
                     tmp_path)
        monkeypatch.setenv("TFY_API_KEY", "tfy")
        r = run_cli(["generate", "x", "-p", "truefoundry", "-m",
                     "openai-main/gpt-image-2.6-sunburst", "--complexity", "medium", "-q",
                     "-o", "t.png"])
        assert r.code == 0, r.err
        assert f.server.calls("/images/generations")[0].json()["complexity"] == "medium"
    finally:
        f.stop()


def test_jsonl_records_carry_what_was_resolved(openai_today: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-n", "2", "--jsonl", "-o", "jl/"])
    assert r.code == 0, r.err
    recs = [json.loads(line) for line in r.lines()]
    assert [rec["resolved"]["quality"] for rec in recs] == ["medium", "medium"]


def test_providers_models_says_when_the_table_was_checked(
        fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.list_models = False
    monkeypatch.setenv("IMAGEGEN_TODAY", "2027-03-01")
    r = run_cli(["providers", "models", "openai"])
    assert r.code == 0, r.err
    assert f"docs on {lifecycle.read_on()}, as of 2027-03-01" in r.err
    assert "gpt-image-1-mini" not in r.stdout  # shut down by then: not offered
    assert all(line.split()[0] for line in r.lines())  # stdout: models only
    r = run_cli(["providers", "models", "openai", "--json"])
    assert json.loads(r.stdout)["table_checked"] == lifecycle.read_on() == "2026-11-23"
