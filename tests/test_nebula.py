"""The Nebula Block dialect."""

from __future__ import annotations

import json
from typing import Any

import pytest
from PIL import Image

from tests.conftest import run_cli


def test_request_mapping(nebula: Any) -> None:
    r = run_cli(["generate", "a fox", "-p", "nebula", "--size", "768x512", "--steps", "6",
                 "--guidance", "3.5", "--seed", "11", "-o", "f.png"])
    assert r.code == 0, r.err
    (call,) = nebula.server.calls("/images/generation")
    assert call.headers["authorization"] == f"Bearer {nebula.key}"
    assert call.json() == {"model": "black-forest-labs/FLUX.1-schnell", "prompt": "a fox",
                           "width": 768, "height": 512, "num_steps": 6,
                           "guidance_scale": 3.5, "seed": 11}
    with Image.open("f.png") as im:
        assert im.size == (768, 512)


def test_sdxl_takes_negative_prompt(nebula: Any) -> None:
    r = run_cli(["generate", "a fox", "-p", "nebula", "-m",
                 "stabilityai/stable-diffusion-xl-base-1.0", "--negative-prompt", "blur",
                 "-o", "s.png"])
    assert r.code == 0, r.err
    body = nebula.server.calls("/images/generation")[0].json()
    assert body["negative_prompt"] == "blur" and body["num_steps"] == 25


@pytest.mark.parametrize("argv, needle", [
    (["--negative-prompt", "x"], "--negative-prompt is not supported by provider nebula"),
    (["-m", "stabilityai/stable-diffusion-xl-base-1.0", "--seed", "1"], "--seed"),
    (["--size", "1000x1000"], "multiples of 16"),
    (["-m", "black-forest-labs/FLUX.1-Fill-dev"], "imagegen inpaint"),
])
def test_refused_before_sending(nebula: Any, argv: list[str], needle: str) -> None:
    r = run_cli(["generate", "x", "-p", "nebula", *argv])
    assert r.code == 2, r.err
    assert needle in r.err
    assert nebula.server.requests == []


def test_timings_in_json_and_sidecar(nebula: Any) -> None:
    r = run_cli(["generate", "a fox", "-p", "nebula", "--json", "--sidecar", "-o", "t.png"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    timings = report["images"][0]["timings"]
    assert timings["inference_s"] == 1.235  # Nebula's own figure
    assert set(timings) == {"inference_s", "request_s"} and timings["request_s"] > 0
    with open("t.json") as fh:
        assert json.load(fh)["timings"] == timings


def test_failed_status_exits_5_with_message(nebula: Any) -> None:
    r = run_cli(["generate", "nsfw thing", "-p", "nebula", "-o", "x.png"])
    assert r.code == 5 and "Prompt flagged by safety checker" in r.err


def test_count_sends_one_request_per_image(nebula: Any) -> None:
    r = run_cli(["generate", "a fox", "-p", "nebula", "-n", "3", "-o", "n/{index}.png"])
    assert r.code == 0, r.err
    assert r.lines() == ["n/1.png", "n/2.png", "n/3.png"]
    assert len(nebula.server.calls("/images/generation")) == 3


def test_aspect_multiple_of_16(nebula: Any) -> None:
    r = run_cli(["generate", "x", "-p", "nebula", "--aspect", "16:9", "--dry-run"])
    assert r.code == 0, r.err
    body = json.loads(r.stdout)["requests"][0]["body"]
    assert body["width"] % 16 == 0 and body["height"] % 16 == 0
    assert abs(body["width"] / body["height"] - 16 / 9) < 0.05


def test_dry_run_summarises_base64_fields(nebula: Any) -> None:
    from tests.test_inpaint import make_image, white_left_mask

    make_image("in.png", size=(256, 256))
    white_left_mask("m.png", size=(256, 256))
    r = run_cli(["inpaint", "x", "-p", "nebula", "-i", "in.png", "--mask", "m.png",
                 "--dry-run"])
    assert r.code == 0, r.err
    body = json.loads(r.stdout)["requests"][0]["body"]
    assert body["image"].startswith("<") and body["image"].endswith(" characters>")
    assert len(r.stdout) < 2000
