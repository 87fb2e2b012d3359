"""The Gemini dialect, against the strict Gemini fake (tests/fakes/gemini_fake.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import KEY, run_cli, write_config
from tests.fakes.gemini_fake import GeminiFake, error
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.server import Response, png

GEN = ":generateContent"


@pytest.fixture
def gemini(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[GeminiFake]:
    f = GeminiFake().start()
    write_config(f'[providers.gemini]\nbase_url = "{f.url}"\n', monkeypatch, tmp_path)
    monkeypatch.setenv("GEMINI_API_KEY", f.key)
    yield f
    f.stop()


def body_of(fake: GeminiFake, i: int = 0) -> dict[str, Any]:
    return fake.server.calls(GEN)[i].json()  # type: ignore[no-any-return]


def test_generate_sends_the_documented_request(gemini: GeminiFake) -> None:
    r = run_cli(["generate", "a fox", "-p", "gemini", "--seed", "7", "-o", "fox.png"])
    assert r.code == 0, r.err
    (call,) = gemini.server.calls(GEN)
    assert call.path == "/v1beta/models/gemini-nano-banana-2.1:generateContent"
    assert call.headers["x-goog-api-key"] == gemini.key
    assert "authorization" not in call.headers
    assert call.json() == {
        "contents": [{"role": "user", "parts": [{"text": "a fox"}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "seed": 7}}
    with Image.open("fox.png") as im:
        assert im.size == (64, 64)  # 1024x1024 / 16: the model's 1:1 at 1K
        assert im.text["provider"] == "gemini"  # type: ignore[attr-defined]
        assert im.text["model"] == "gemini-nano-banana-2.1"  # type: ignore[attr-defined]


def test_count_makes_one_call_per_image(gemini: GeminiFake) -> None:
    r = run_cli(["generate", "a fox", "-p", "gemini", "-n", "3", "-o", "n/{index}.png"])
    assert r.code == 0, r.err
    assert r.lines() == ["n/1.png", "n/2.png", "n/3.png"]
    assert len(gemini.server.calls(GEN)) == 3
    assert all("candidateCount" not in body_of(gemini, i)["generationConfig"]
               for i in range(3))


def test_aspect_goes_to_the_nearest_ratio_with_a_notice(gemini: GeminiFake) -> None:
    r = run_cli(["generate", "a fox", "-p", "gemini", "--aspect", "2:1", "-o", "w.png"])
    assert r.code == 0, r.err
    assert "using the nearest ratio gemini-nano-banana-2.1 takes, 16:9" in r.err
    assert body_of(gemini)["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9"}
    with Image.open("w.png") as im:
        assert im.size == (86, 48)  # 1376x768 / 16


def test_wide_ratio_only_2_1_takes(gemini: GeminiFake) -> None:
    r = run_cli(["generate", "x", "-p", "gemini", "--aspect", "8:1", "-o", "p.png"])
    assert r.code == 0, r.err
    assert body_of(gemini)["generationConfig"]["imageConfig"]["aspectRatio"] == "8:1"
    r = run_cli(["generate", "x", "-p", "gemini", "-m", "gemini-3-pro-image", "--aspect",
                 "8:1", "-o", "q.png"])
    assert r.code == 0, r.err
    assert body_of(gemini, 1)["generationConfig"]["imageConfig"]["aspectRatio"] == "21:9"


def test_size_accepted_is_sent_as_ratio_and_tier(gemini: GeminiFake) -> None:
    r = run_cli(["generate", "x", "-p", "gemini", "-s", "2752x1536", "-o", "s.png"])
    assert r.code == 0, r.err
    assert body_of(gemini)["generationConfig"]["imageConfig"] == {
        "aspectRatio": "16:9", "imageSize": "2K"}
    with Image.open("s.png") as im:
        assert im.size == (172, 96)


def test_size_refused_lists_the_documented_sizes(gemini: GeminiFake) -> None:
    r = run_cli(["generate", "x", "-p", "gemini", "-s", "1000x1000"])
    assert r.code == 2, r.err
    assert "1024x1024" in r.err and "1376x768" in r.err and "5504x3072" in r.err
    r = run_cli(["generate", "x", "-p", "gemini", "-s", "1024x1024", "--resolution", "2K"])
    assert r.code == 2 and "--resolution 2K" in r.err
    r = run_cli(["generate", "x", "-p", "gemini", "-m", "gemini-3.1-flash-lite-image", "-s",
                 "2048x2048"])
    assert r.code == 2 and "1024x1024" in r.err
    assert gemini.server.requests == []


def test_resolution_tiers_per_model(gemini: GeminiFake) -> None:
    r = run_cli(["generate", "x", "-p", "gemini", "--resolution", "4K", "-o", "k.png"])
    assert r.code == 0, r.err
    assert body_of(gemini)["generationConfig"]["imageConfig"] == {"imageSize": "4K"}
    with Image.open("k.png") as im:
        assert im.size == (256, 256)
    r = run_cli(["generate", "x", "-p", "gemini", "-m", "gemini-3.1-flash-lite-image",
                 "--resolution", "2K"])
    assert r.code == 2 and "use one of 1K" in r.err
    r = run_cli(["generate", "x", "-p", "gemini", "--resolution", "1k"])
    assert r.code == 2 and "1K, 2K, 4K" in r.err  # xAI's spelling is not Gemini's
    assert len(gemini.server.calls(GEN)) == 1


def test_edit_sends_references_in_order_with_their_types(gemini: GeminiFake) -> None:
    Path("a.png").write_bytes(png(8, 8))
    Image.new("RGB", (8, 8), (1, 2, 3)).save("b.jpg", "JPEG")
    r = run_cli(["edit", "-p", "gemini", "-i", "a.png", "-i", "b.jpg", "put them together",
                 "-o", "e.png"])
    assert r.code == 0, r.err
    parts = body_of(gemini)["contents"][0]["parts"]
    assert parts[0] == {"text": "put them together"}
    assert [p["inlineData"]["mimeType"] for p in parts[1:]] == ["image/png", "image/jpeg"]
    assert base64.b64decode(parts[1]["inlineData"]["data"]) == Path("a.png").read_bytes()
    assert base64.b64decode(parts[2]["inlineData"]["data"]) == Path("b.jpg").read_bytes()


def test_edit_downloads_a_url_reference(gemini: GeminiFake) -> None:
    from tests.fakes.server import FakeServer

    picture = png(12, 12, (9, 9, 9))
    host = FakeServer(lambda req: Response(200, picture, {"content-type": "image/png"}))
    with host:
        r = run_cli(["edit", "-p", "gemini", "-i", f"{host.url}/ref.png", "make it blue",
                     "-o", "u.png"])
    assert r.code == 0, r.err
    part = body_of(gemini)["contents"][0]["parts"][1]["inlineData"]
    assert part["mimeType"] == "image/png" and base64.b64decode(part["data"]) == picture


def test_returned_text_reaches_json_and_sidecar_and_thoughts_are_not_images(
        gemini: GeminiFake) -> None:
    gemini.mode = "text+image"
    r = run_cli(["generate", "a fox", "-p", "gemini", "--json", "--sidecar", "-o", "t.png"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    assert report["images"][0]["resolved"]["text"] == "Here is a fox."
    assert json.loads(Path("t.json").read_text())["resolved"]["text"] == "Here is a fox."
    gemini.mode = "thoughts"
    r = run_cli(["generate", "a fox", "-p", "gemini", "--json", "-o", "th.png"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    assert len(report["images"]) == 1  # the interim thought image is not saved
    assert "text" not in report["images"][0].get("resolved", {})  # nor the thought text
    with Image.open("th.png") as im:
        assert im.size == (64, 64)


@pytest.mark.parametrize(("mode", "reason"), [
    ("block", "PROHIBITED_CONTENT"), ("IMAGE_SAFETY", "IMAGE_SAFETY"),
    ("NO_IMAGE", "NO_IMAGE"), ("IMAGE_RECITATION", "IMAGE_RECITATION"),
    ("text_only", "NO_IMAGE"),
])
def test_refusals_exit_5_naming_the_reason(gemini: GeminiFake, mode: str, reason: str) -> None:
    gemini.mode = mode
    r = run_cli(["generate", "a fox", "-p", "gemini", "-o", "r.png"])
    assert r.code == 5, r.err
    assert reason in r.err
    assert not Path("r.png").exists()
    assert len(gemini.server.calls(GEN)) == 1  # a refusal is not retried
    if mode == "text_only":
        assert "I can describe it" in r.err


def test_wrong_and_missing_key_are_auth_errors(gemini: GeminiFake,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-wrong")
    r = run_cli(["generate", "x", "-p", "gemini", "-o", "a.png"])
    assert r.code == 4, r.err
    assert "API key not valid" in r.err and "INVALID_ARGUMENT" in r.err
    gemini.server.script.append(error(403, "PERMISSION_DENIED", "Permission denied."))
    r = run_cli(["generate", "x", "-p", "gemini", "-o", "a.png"])
    assert r.code == 4 and "PERMISSION_DENIED" in r.err
    monkeypatch.delenv("GEMINI_API_KEY")
    r = run_cli(["generate", "x", "-p", "gemini"])
    assert r.code == 3 and "GEMINI_API_KEY" in r.err and "GOOGLE_API_KEY" in r.err


def test_invalid_argument_is_refused_not_retried(gemini: GeminiFake) -> None:
    r = run_cli(["generate", "x", "-p", "gemini", "--param", "tools=[]", "--param",
                 "bogus=1", "-o", "a.png"])
    assert r.code == 5, r.err
    assert 'Unknown name "bogus"' in r.err and "INVALID_ARGUMENT" in r.err
    assert len(gemini.server.calls(GEN)) == 1


def test_param_fields_are_merged(gemini: GeminiFake) -> None:
    r = run_cli(["generate", "x", "-p", "gemini", "--param",
                 'generationConfig={"temperature": 0.5}', "--param",
                 'safetySettings=[{"category": "HARM_CATEGORY_HARASSMENT", '
                 '"threshold": "BLOCK_NONE"}]', "-o", "a.png"])
    assert r.code == 0, r.err
    body = body_of(gemini)
    assert body["generationConfig"]["temperature"] == 0.5
    assert body["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    r = run_cli(["generate", "x", "-p", "gemini", "--param",
                 'generationConfig={"candidateCount": 4}'])
    assert r.code == 2 and "-n" in r.err


@pytest.mark.parametrize(("status", "name"), [(429, "RESOURCE_EXHAUSTED"),
                                              (503, "UNAVAILABLE"), (500, "INTERNAL")])
def test_retried_errors(gemini: GeminiFake, status: int, name: str) -> None:
    gemini.server.script.append(error(status, name, "try later"))
    r = run_cli(["generate", "x", "-p", "gemini", "-o", "a.png"])
    assert r.code == 0, r.err
    assert len(gemini.server.calls(GEN)) == 2
    assert f"{status} from gemini" in r.err


def test_unavailable_after_retries_exits_6(gemini: GeminiFake) -> None:
    for _ in range(3):
        gemini.server.script.append(error(503, "UNAVAILABLE", "The model is overloaded."))
    r = run_cli(["generate", "x", "-p", "gemini", "-o", "a.png"])
    assert r.code == 6 and "UNAVAILABLE" in r.err and "overloaded" in r.err


def test_bad_base64_in_the_answer_is_unavailable(gemini: GeminiFake) -> None:
    gemini.server.script.append(Response.json({"candidates": [{"content": {"parts": [
        {"inlineData": {"mimeType": "image/png", "data": "not base64!"}}]},
        "finishReason": "STOP"}]}))
    r = run_cli(["generate", "x", "-p", "gemini", "-o", "a.png"])
    assert r.code == 6 and "base64" in r.err
    assert not Path("a.png").exists()


def test_dry_run_prints_the_request_with_the_key_redacted(gemini: GeminiFake) -> None:
    r = run_cli(["generate", "a fox", "-p", "gemini", "--aspect", "3:4", "--resolution",
                 "2K", "--dry-run"])
    assert r.code == 0, r.err
    assert gemini.key not in r.stdout and gemini.key not in r.err
    shown = json.loads(r.stdout)
    (req,) = shown["requests"]
    assert req["headers"]["x-goog-api-key"] == "***"
    assert req["url"].endswith("/v1beta/models/gemini-nano-banana-2.1:generateContent")
    assert req["body"]["generationConfig"]["imageConfig"] == {"aspectRatio": "3:4",
                                                              "imageSize": "2K"}
    assert gemini.server.requests == []


def test_costs_and_max_cost(gemini: GeminiFake) -> None:
    r = run_cli(["generate", "x", "-p", "gemini", "-m", "gemini-3-pro-image", "-n", "2",
                 "--resolution", "4K", "--dry-run"])
    assert r.code == 0, r.err
    est = json.loads(r.stdout)["estimated_cost"]
    assert est["total_usd"] == {"min": 0.48, "max": 0.48}
    r = run_cli(["generate", "x", "-p", "gemini", "-m", "gemini-3-pro-image", "-n", "2",
                 "--resolution", "4K", "--max-cost", "0.40"])
    assert r.code == 2 and "over --max-cost" in r.err
    assert gemini.server.requests == []
    r = run_cli(["generate", "x", "-p", "gemini", "-m", "gemini-3-pro-image", "--json",
                 "-o", "c.png"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    # usageMetadata: 12 text tokens in at $2/M, 1290 image tokens out at $120/M.
    assert report["images"][0]["cost_usd"] == pytest.approx(12 * 2e-6 + 1290 * 120e-6)
    r = run_cli(["generate", "x", "-p", "gemini", "--resolution", "2K", "--max-cost", "1"])
    assert r.code == 2 and "unknown" in r.err  # no published 2K price for 2.1: no guess


def test_batch_records_name_the_provider(gemini: GeminiFake) -> None:
    Path("jobs.jsonl").write_text(
        '{"id": "a", "prompt": "a fox", "provider": "gemini", "aspect": "16:9"}\n'
        '{"id": "b", "prompt": "an owl", "provider": "gemini", "resolution": "2K"}\n')
    r = run_cli(["batch", "jobs.jsonl", "-o", "out/", "--json", "-j", "1"])
    assert r.code == 0, r.err
    records = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    images = [x for x in records if x.get("path")]
    assert len(images) == 2 and {x["provider"] for x in images} == {"gemini"}
    configs = sorted(json.dumps(body_of(gemini, i)["generationConfig"].get("imageConfig"))
                     for i in range(2))
    assert configs == ['{"aspectRatio": "16:9"}', '{"imageSize": "2K"}']


def test_fallback_chain_gemini_then_openai(gemini: GeminiFake, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    o = OpenAIFake(image_size=(32, 32)).start()
    try:
        write_config(f'[providers.gemini]\nbase_url = "{gemini.url}"\n'
                     f'[providers.openai]\nbase_url = "{o.url}"\n', monkeypatch, tmp_path)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        for _ in range(3):
            gemini.server.script.append(error(503, "UNAVAILABLE", "overloaded"))
        r = run_cli(["generate", "a fox", "-p", "gemini,openai", "--json", "-o", "f.png"])
        assert r.code == 0, r.err
        report = json.loads(r.stdout)
        assert report["images"][0]["provider"] == "openai"
        assert report["images"][0]["fallback_from"] == "gemini"
        assert len(o.server.calls("/images/generations")) == 1
    finally:
        o.stop()


def test_info_and_from_round_trip(gemini: GeminiFake) -> None:
    r = run_cli(["generate", "a quiet harbour", "-p", "gemini", "-s", "1264x848", "--seed",
                 "5", "-o", "h.png"])
    assert r.code == 0, r.err
    r = run_cli(["info", "h.png"])
    assert r.code == 0, r.err
    assert "a quiet harbour" in r.stdout and "gemini-nano-banana-2.1" in r.stdout
    r = run_cli(["generate", "--from", "h.png", "-o", "h2.png"])
    assert r.code == 0, r.err
    first, second = body_of(gemini, 0), body_of(gemini, 1)
    assert second == first
    assert second["generationConfig"]["imageConfig"] == {"aspectRatio": "3:2",
                                                         "imageSize": "1K"}


def test_google_api_key_wins_and_says_so(gemini: GeminiFake,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", gemini.key)
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-other")
    r = run_cli(["generate", "x", "-p", "gemini", "-o", "a.png"])
    assert r.code == 0, r.err  # GEMINI_API_KEY's wrong key was not used
    assert "GOOGLE_API_KEY and GEMINI_API_KEY are both set" in r.err
    assert "using GOOGLE_API_KEY" in r.err
    assert gemini.server.calls(GEN)[0].headers["x-goog-api-key"] == gemini.key


def test_shut_down_model_refused_naming_the_replacement(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-x")
    r = run_cli(["generate", "x", "-p", "gemini", "-m", "imagen-4.0-ultra-generate-001",
                 "--dry-run"])
    assert r.code == 2
    assert "shut down by Google on 2026-08-17" in r.err and "gemini-3-pro-image" in r.err


def test_shut_down_model_on_the_fake_is_404(gemini: GeminiFake) -> None:
    r = run_cli(["generate", "x", "-p", "gemini", "-m", "gemini-2.5-flash-image", "-o", "a.png"])
    assert r.code == 5 and "NOT_FOUND" in r.err
    assert "was shut down by Google on 2026-10-02" in r.err  # the warning, on a proxy


def test_deprecated_model_warns(gemini: GeminiFake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEGEN_TODAY", "2026-10-15")
    r = run_cli(["generate", "x", "-p", "gemini", "-m", "gemini-3.1-flash-image", "--dry-run"])
    assert r.code == 0, r.err
    assert "deprecated by Google and shuts down on 2026-10-29" in r.err
    assert "gemini-nano-banana-2.1" in r.err


def test_providers_models_check_show(gemini: GeminiFake) -> None:
    r = run_cli(["providers", "models", "gemini", "--json"])
    assert r.code == 0, r.err
    shown = json.loads(r.stdout)
    assert shown["live"] is True
    assert shown["models"] == ["gemini-3-pro-image", "gemini-3.1-flash-lite-image",
                               "gemini-nano-banana-2.1"]  # two pages; text models left out
    assert shown["status"]["gemini-nano-banana-2.1"] == "active"
    r = run_cli(["providers", "check", "gemini"])
    assert r.code == 0, r.err
    assert "gemini-nano-banana-2.1" in r.stdout + r.err
    assert gemini.server.calls("/v1beta/models/gemini-nano-banana-2.1")
    r = run_cli(["providers", "show", "gemini"])
    assert r.code == 0, r.err
    assert "gemini-nano-banana-2.1" in r.stdout and "--resolution" in r.stdout


def test_models_from_the_table_without_a_list(gemini: GeminiFake) -> None:
    gemini.server.script.append(error(404, "NOT_FOUND", "no list here"))
    r = run_cli(["providers", "models", "gemini"])
    assert r.code == 0, r.err
    assert r.lines()[0].startswith("gemini-nano-banana-2.1")
    assert not any(line.startswith("imagen") for line in r.lines())  # shut down


def test_providers_add_a_gemini_type(gemini: GeminiFake,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    r = run_cli(["providers", "add", "proxy", "--type", "gemini", "--base-url", gemini.url,
                 "--api-key-env", "PROXY_KEY", "--model", "gemini-3-pro-image"])
    assert r.code == 0, r.err
    monkeypatch.setenv("PROXY_KEY", gemini.key)
    r = run_cli(["generate", "x", "-p", "proxy", "--aspect", "4:5", "-o", "p.png"])
    assert r.code == 0, r.err
    call = gemini.server.calls(GEN)[0]
    assert call.path == "/v1beta/models/gemini-3-pro-image:generateContent"
    assert call.headers["x-goog-api-key"] == gemini.key


def test_show_lists_ratios_and_both_key_variables(gemini: GeminiFake) -> None:
    r = run_cli(["providers", "show", "gemini", "--json"])
    assert r.code == 0, r.err
    models = json.loads(r.stdout)["models"]
    assert "8:1" in models["gemini-nano-banana-2.1"]["aspect_ratios"]
    assert "8:1" not in models["gemini-3-pro-image"]["aspect_ratios"]
    r = run_cli(["providers", "show", "gemini"])
    assert "GOOGLE_API_KEY, GEMINI_API_KEY: the first one set wins" in r.stdout
    assert "ratios  : 1:1, 2:3" in r.stdout


def test_image_data_is_spooled_not_held() -> None:
    from imagegen_cli.transport import jsonstream

    picture = png(4, 4)
    doc = json.dumps({"candidates": [{"content": {"parts": [{"inlineData": {
        "mimeType": "image/png", "data": base64.b64encode(picture).decode()}}]}}]})
    got = jsonstream.load([doc.encode()[i:i + 7] for i in range(0, len(doc), 7)], "data")
    spool = got["candidates"][0]["content"]["parts"][0]["inlineData"]["data"]
    assert isinstance(spool, jsonstream.Spool) and spool.read() == picture
