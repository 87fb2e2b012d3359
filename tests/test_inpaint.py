"""`imagegen inpaint`: one mask convention, converted per provider; bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.fakes.multipart import parse_multipart
from tests.fakes.openai_fake import OpenAIFake

W, H = 64, 48


def make_image(path: str, size: tuple[int, int] = (W, H), alpha_box: bool = False,
               fmt: str = "PNG") -> str:
    im = Image.new("RGBA" if alpha_box else "RGB", size, (40, 90, 160) + ((255,) if alpha_box
                                                                         else ()))
    if alpha_box:
        im.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    im.save(path, format=fmt)
    return path


def white_left_mask(path: str, size: tuple[int, int] = (W, H)) -> str:
    m = Image.new("L", size, 0)
    m.paste(255, (0, 0, size[0] // 2, size[1]))
    m.save(path)
    return path


def transparent_left_mask(path: str) -> str:
    m = Image.new("RGBA", (W, H), (0, 0, 0, 255))
    m.paste((0, 0, 0, 0), (0, 0, W // 2, H))
    m.save(path)
    return path


def alpha_left_zero(alpha: bytes, size: tuple[int, int] = (W, H)) -> bool:
    w, h = size
    rows = [alpha[y * w:(y + 1) * w] for y in range(h)]
    return all(set(r[: w // 2]) == {0} and set(r[w // 2:]) == {255} for r in rows)


def edit_parts(fake: OpenAIFake) -> tuple[dict[str, str], dict[str, Any]]:
    (call,) = fake.server.calls("/images/edits")
    return parse_multipart(call.body, call.headers["content-type"])


def test_white_mask_becomes_openai_alpha(fake: OpenAIFake) -> None:
    make_image("in.png")
    white_left_mask("mask.png")
    r = run_cli(["inpaint", "a red door", "--image", "in.png", "--mask", "mask.png",
                 "-o", "out.png"])
    assert r.code == 0, r.err
    assert r.lines() == ["out.png"]
    fields, files = edit_parts(fake)
    assert fields["model"] == "gpt-image-2.6-flare" and fields["prompt"] == "a red door"
    assert fields["n"] == "1"
    assert "response_format" not in fields
    (_, ctype, data), = files["image"]
    assert ctype == "image/png" and data.startswith(b"\x89PNG")
    assert alpha_left_zero(fake.last_mask_alpha)


def test_transparent_mask_detected(fake: OpenAIFake) -> None:
    make_image("in.png")
    transparent_left_mask("mask.png")
    r = run_cli(["inpaint", "x", "-i", "in.png", "--mask", "mask.png", "-o", "o.png"])
    assert r.code == 0, r.err
    assert alpha_left_zero(fake.last_mask_alpha)


def test_invert_mask(fake: OpenAIFake) -> None:
    make_image("in.png")
    white_left_mask("mask.png")
    r = run_cli(["inpaint", "x", "-i", "in.png", "--mask", "mask.png", "--invert-mask",
                 "-o", "o.png"])
    assert r.code == 0, r.err
    inverted = bytes(255 - b for b in fake.last_mask_alpha)
    assert alpha_left_zero(inverted)


def test_image_transparency_without_mask(fake: OpenAIFake) -> None:
    make_image("in.png", alpha_box=True)
    r = run_cli(["inpaint", "x", "-i", "in.png", "-o", "o.png"])
    assert r.code == 0, r.err
    assert alpha_left_zero(fake.last_mask_alpha)


def test_jpeg_input_sent_as_png(fake: OpenAIFake) -> None:
    make_image("in.jpg", fmt="JPEG")
    white_left_mask("mask.png")
    r = run_cli(["inpaint", "x", "-i", "in.jpg", "--mask", "mask.png", "-o", "o.png"])
    assert r.code == 0, r.err
    _, files = edit_parts(fake)
    assert files["image"][0][2].startswith(b"\x89PNG")


def test_several_images_for_gpt_image(fake: OpenAIFake) -> None:
    make_image("a.png")
    make_image("b.png")
    white_left_mask("mask.png")
    r = run_cli(["inpaint", "x", "-i", "a.png", "-i", "b.png", "--mask", "mask.png",
                 "-o", "o.png"])
    assert r.code == 0, r.err
    _, files = edit_parts(fake)
    assert len(files["image[]"]) == 2 and "image" not in files


def test_dalle2_one_square_png(fake: OpenAIFake) -> None:
    make_image("sq.png", size=(64, 64))
    white_left_mask("m.png", size=(64, 64))
    r = run_cli(["inpaint", "x", "-m", "dall-e-2", "-i", "sq.png", "--mask", "m.png",
                 "-o", "o.png"])
    assert r.code == 0, r.err
    fields, _ = edit_parts(fake)
    assert fields["response_format"] == "b64_json"
    make_image("wide.png")
    white_left_mask("m2.png")
    r = run_cli(["inpaint", "x", "-m", "dall-e-2", "-i", "wide.png", "--mask", "m2.png"])
    assert r.code == 2 and "square" in r.err and "wide.png" in r.err
    r = run_cli(["inpaint", "x", "-m", "dall-e-2", "-i", "sq.png", "-i", "sq.png",
                 "--mask", "m.png"])
    assert r.code == 2 and "Several --image" in r.err


def test_dalle2_large_png_shrunk_under_4mb(fake: OpenAIFake) -> None:
    import os

    Image.frombytes("RGB", (1400, 1400), os.urandom(1400 * 1400 * 3)).save("big.png")
    assert Path("big.png").stat().st_size > 4 * 1024 * 1024
    white_left_mask("m.png", size=(1400, 1400))
    r = run_cli(["inpaint", "x", "-m", "dall-e-2", "-i", "big.png", "--mask", "m.png",
                 "-o", "o.png"])
    assert r.code == 0, r.err
    assert "4 MB" in r.err
    _, files = edit_parts(fake)
    assert len(files["image"][0][2]) < 4 * 1024 * 1024


def test_stream_edit_events(fake: OpenAIFake) -> None:
    make_image("in.png", alpha_box=True)
    r = run_cli(["inpaint", "x", "-i", "in.png", "--stream", "--partial-images", "1",
                 "--keep-partials", "-o", "s.png"])
    assert r.code == 0, r.err
    assert Path("s.png").exists() and Path("s.partial-1.png").exists()
    fields, _ = edit_parts(fake)
    assert fields["stream"] == "true" and fields["partial_images"] == "1"


def test_dry_run_describes_multipart(fake: OpenAIFake) -> None:
    make_image("in.png", alpha_box=True)
    r = run_cli(["inpaint", "x", "-i", "in.png", "--dry-run"])
    assert r.code == 0, r.err
    req = json.loads(r.stdout)["requests"][0]
    assert req["url"].endswith("/images/edits")
    names = [f["name"] for f in req["multipart"]["files"]]
    assert names == ["image", "mask"]
    assert fake.server.requests == []


@pytest.mark.parametrize("setup, argv, needle", [
    (lambda: (make_image("in.png"), white_left_mask("m.png", size=(10, 10))),
     ["-i", "in.png", "--mask", "m.png"], "must be the same size"),
    (lambda: make_image("in.png"), ["-i", "in.png"], "no transparent pixels"),
    (lambda: Path("in.png").write_text("not an image"), ["-i", "in.png"], "is not an image"),
    (lambda: None, ["-i", "missing.png"], "Cannot read missing.png"),
    (lambda: (make_image("in.png"), Path("m.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")),
     ["-i", "in.png", "--mask", "m.png"], "m.png is not a readable image"),
    (lambda: (make_image("in.png"), Image.new("L", (W, H), 0).save("m.png")),
     ["-i", "in.png", "--mask", "m.png"], "marks nothing to repaint"),
    (lambda: make_image("in.png", alpha_box=True), ["-i", "in.png", "-m", "dall-e-3"],
     "Inpainting is not supported by provider openai (model dall-e-3)"),
])
def test_bad_input_exits_2_before_sending(fake: OpenAIFake, setup: Any, argv: list[str],
                                          needle: str) -> None:
    setup()
    r = run_cli(["inpaint", "x", *argv])
    assert r.code == 2, r.err
    assert needle in r.err and "Traceback" not in r.err
    assert fake.server.requests == []


def test_image_option_required(fake: OpenAIFake) -> None:
    r = run_cli(["inpaint", "x"])
    assert r.code == 2 and "--image" in r.err


def test_nebula_fill_base64_white_mask(nebula: Any) -> None:
    make_image("in.png", size=(128, 96))
    white_left_mask("m.png", size=(128, 96))
    r = run_cli(["inpaint", "a cap", "-p", "nebula", "-i", "in.png", "--mask", "m.png",
                 "-o", "o.png"])
    assert r.code == 0, r.err
    body = nebula.server.calls("/images/generation")[0].json()
    assert body["model"] == "black-forest-labs/FLUX.1-Fill-dev"
    assert (body["width"], body["height"]) == (128, 96)
    mask = nebula.last_inpaint["mask"].convert("L")
    assert mask.getpixel((0, 0)) == 255 and mask.getpixel((127, 0)) == 0  # white = repaint
    assert nebula.last_inpaint["image"].size == (128, 96)


def test_nebula_pads_to_16_and_returns_input_size(nebula: Any) -> None:
    make_image("in.png", size=(130, 100))
    white_left_mask("m.png", size=(130, 100))
    r = run_cli(["inpaint", "a cap", "-p", "nebula", "-i", "in.png", "--mask", "m.png",
                 "-o", "o.png"])
    assert r.code == 0, r.err
    assert "multiples of 16" in r.err and "128x96" in r.err
    body = nebula.server.calls("/images/generation")[0].json()
    assert (body["width"], body["height"]) == (128, 96)
    with Image.open("o.png") as im:
        assert im.size == (130, 100)


def test_distribute_cannot_inpaint(distribute: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEBULA_API_KEY", "k")
    make_image("in.png", alpha_box=True)
    r = run_cli(["inpaint", "x", "-p", "distribute", "-i", "in.png"])
    assert r.code == 2
    assert "distribute cannot inpaint" in r.err
    assert "nebula (black-forest-labs/FLUX.1-Fill-dev)" in r.err and "openai" in r.err
    assert distribute.server.requests == []


def test_mask_conversions_unit() -> None:
    from imagegen_cli.files.masks import area_from_mask

    grey = Image.new("L", (4, 1))
    grey.putdata([0, 127, 128, 255])
    assert area_from_mask(grey).tobytes() == bytes([0, 0, 255, 255])
    rgba = Image.new("RGBA", (2, 1), (255, 255, 255, 255))
    rgba.putpixel((0, 0), (255, 255, 255, 0))
    # Transparency wins over colour when present.
    assert area_from_mask(rgba).tobytes() == bytes([255, 0])
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
