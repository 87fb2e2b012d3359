"""`imagegen edit`: reference images without a mask, files or URLs; img2img locally."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import run_cli, write_config
from tests.fakes.multipart import parse_multipart
from tests.fakes.openai_fake import OpenAIFake


def make(name: str, size: tuple[int, int] = (48, 32), color: str = "red",
         fmt: str | None = None) -> str:
    Image.new("RGB", size, color).save(name, format=fmt)
    return name


def test_two_references_no_mask_multipart(openai_today: OpenAIFake) -> None:
    make("a.png")
    make("b.jpg", (40, 40), "blue", "JPEG")
    r = run_cli(["edit", "put the product from A on the table from B", "-i", "a.png", "-i",
                 "b.jpg", "--input-fidelity", "high", "-o", "e.png", "-q"])
    assert r.code == 0, r.err
    assert r.lines() == ["e.png"]
    call = openai_today.server.calls("/images/edits")[0]
    fields, files = parse_multipart(call.body, call.headers["content-type"])
    assert fields["model"] == "gpt-image-2.6-flare" and fields["input_fidelity"] == "high"
    assert "mask" not in files
    parts = files["image[]"]
    assert [p[1] for p in parts] == ["image/png", "image/jpeg"]
    assert parts[1][2] == Path("b.jpg").read_bytes()  # sent as it is, not re-encoded


def test_mask_is_optional_and_used_when_given(openai_today: OpenAIFake) -> None:
    make("a.png", (32, 32))
    m = Image.new("L", (32, 32), 0)
    m.paste(255, (0, 0, 16, 16))
    m.save("m.png")
    r = run_cli(["edit", "x", "-i", "a.png", "--mask", "m.png", "-q", "-o", "e.png"])
    assert r.code == 0, r.err
    call = openai_today.server.calls("/images/edits")[0]
    _, files = parse_multipart(call.body, call.headers["content-type"])
    assert len(files["mask"]) == 1 and files["image"][0][0] == "a.png"


def test_inpaint_still_needs_a_mask(openai_today: OpenAIFake) -> None:
    make("a.png")
    r = run_cli(["inpaint", "x", "-i", "a.png"])
    assert r.code == 2 and "no --mask was given" in r.err


def test_more_than_16_images_refused_before_sending(openai_today: OpenAIFake) -> None:
    make("a.png")
    r = run_cli(["edit", "x", *["-i", "a.png"] * 17])
    assert r.code == 2 and "17 input images" in r.err and "at most 16" in r.err
    assert openai_today.server.requests == []
    r = run_cli(["edit", "x", *["-i", "a.png"] * 16, "-q", "-o", "e.png"])
    assert r.code == 0, r.err


def test_input_fidelity_only_where_the_model_has_it(fake: OpenAIFake) -> None:
    make("a.png")
    r = run_cli(["edit", "x", "-i", "a.png", "-m", "gpt-image-1-mini", "--input-fidelity",
                 "high"])
    assert r.code == 2 and "--input-fidelity is not supported" in r.err
    assert fake.server.calls("/images/edits") == []
    r = run_cli(["edit", "x", "-i", "a.png", "--input-fidelity", "exact"])
    assert r.code == 2 and "use one of high, low" in r.err


def test_url_references_go_as_json_image_url(openai_today: OpenAIFake) -> None:
    make("local.png")
    url = "https://images.example.com/shelf.png"
    r = run_cli(["edit", "x", "-i", url, "-i", "local.png", "--json", "-o", "u.png"])
    assert r.code == 0, r.err
    call = openai_today.server.calls("/images/edits")[0]
    assert call.headers["content-type"].startswith("application/json")
    body = json.loads(call.body)
    assert body["images"][0] == {"image_url": url}
    local = body["images"][1]["image_url"]
    assert local.startswith("data:image/png;base64,")
    assert base64.b64decode(local.split(",", 1)[1]) == Path("local.png").read_bytes()
    assert "image" not in body and body["model"] == "gpt-image-2.6-flare"


def test_url_downloaded_first_when_its_size_is_needed(
        fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch) -> None:
    # With --mask the first image's size must be checked here: that URL is fetched
    # first (without the key), and still sent as its URL in the JSON edit body, the
    # body --dry-run shows (issue 19 W3: the run sent multipart, dry-run JSON).
    import io

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "green").save(buf, format="PNG")
    fake.files["ref.png"] = buf.getvalue()
    Image.new("L", (32, 32), 255).save("m.png")
    url = f"{fake.server.url}/files/ref.png"
    args = ["edit", "x", "-m", "gpt-image-1", "-i", url, "--mask", "m.png", "-o", "d.png"]
    r = run_cli([*args, "--dry-run"])
    assert r.code == 0, r.err
    shown = json.loads(r.stdout)["requests"][0]
    assert fake.server.requests == []
    r = run_cli([*args, "-q"])
    assert r.code == 0, r.err
    (get,) = fake.server.calls("/files/ref.png")
    assert "authorization" not in get.headers  # the fake also answers 400 if it is
    call = fake.server.calls("/images/edits")[0]
    assert call.headers["content-type"].startswith("application/json")
    assert "multipart" not in shown and shown["url"].endswith("/images/edits")
    body = json.loads(call.body)
    assert body["images"] == [{"image_url": url}] == shown["body"]["images"]
    assert body["mask"]["image_url"].startswith("data:image/png;base64,")
    assert {k: v for k, v in shown["body"].items() if k != "mask"} == \
        {k: v for k, v in body.items() if k != "mask"}
    # A mask of another size than the fetched image is still caught before sending.
    Image.new("L", (16, 16), 255).save("m.png")
    r = run_cli([*args, "-q", "--overwrite"])
    assert r.code == 2 and "Traceback" not in r.err
    assert len(fake.server.calls("/images/edits")) == 1


def test_bad_url_and_not_an_image(fake: OpenAIFake) -> None:
    r = run_cli(["edit", "x", "-i", "ftp://example.com/a.png"])
    assert r.code == 2 and "only http(s) URLs" in r.err
    Path("notes.txt").write_text("hello")
    r = run_cli(["edit", "x", "-i", "notes.txt"])
    assert r.code == 2 and "is not an image" in r.err
    r = run_cli(["edit", "x"])
    assert r.code == 2


def test_provider_that_cannot_edit_names_those_that_can(
        nebula: object, monkeypatch: pytest.MonkeyPatch) -> None:
    make("a.png")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    r = run_cli(["edit", "x", "-p", "nebula", "-i", "a.png"])
    assert r.code == 2
    assert "Provider nebula (model black-forest-labs/FLUX.1-schnell) cannot edit" in r.err
    assert "openai (gpt-image-2.6-flare)" in r.err and "local (" in r.err


def test_edit_dry_run_shows_the_request(openai_today: OpenAIFake) -> None:
    make("a.png")
    r = run_cli(["edit", "x", "-i", "a.png", "--dry-run"])
    assert r.code == 0, r.err
    call = json.loads(r.stdout)["requests"][0]
    assert call["url"].endswith("/images/edits")
    assert call["multipart"]["files"][0]["name"] == "image"
    assert openai_today.server.requests == []


# ------------------------------------------------------------------ local img2img


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("diffusers")
    pytest.importorskip("torch")
    from tests.tiny_pipelines import build

    return build(tmp_path_factory.mktemp("models"))[0]


def test_local_edit_is_img2img_with_strength(tiny: Path, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    import imagegen_cli.providers.local as local

    seen: list[dict[str, object]] = []
    real = local.load_pipeline

    def spy(model: str, **kw: object) -> object:
        pipe = real(model, **kw)
        seen.append({"cls": type(pipe).__name__, **kw})
        return pipe

    monkeypatch.setattr(local, "load_pipeline", spy)
    make("ref.png", (40, 24), "blue")
    base = ["edit", "a cat", "-p", "local", "-m", str(tiny), "-i", "ref.png", "--steps", "4",
            "--seed", "3", "-q"]
    r1 = run_cli([*base, "--strength", "0.5", "-o", "a.png"])
    assert r1.code == 0, r1.err
    assert seen[0]["cls"] == "StableDiffusionImg2ImgPipeline" and seen[0]["img2img"] is True
    with Image.open("a.png") as im:
        assert im.size == (40, 24)  # back at the reference's size
    r2 = run_cli([*base, "--strength", "1.0", "-o", "b.png"])
    assert r2.code == 0, r2.err
    with Image.open("a.png") as a, Image.open("b.png") as b:
        assert a.tobytes() != b.tobytes()  # strength reaches the pipeline
    r = run_cli([*base, "--strength", "0.2"])  # 4 steps x 0.2: no step at all
    assert r.code == 2 and "runs no denoising step" in r.err
    r = run_cli([*base, "--strength", "1.5"])
    assert r.code == 2 and "--strength 1.5 is out of range" in r.err
    r = run_cli([*base, "-i", "ref.png"])
    assert r.code == 2 and "Several --image are not accepted by provider local" in r.err


def test_local_edit_downloads_url_references(tiny: Path, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    f = OpenAIFake(keep_retired=True).start()
    try:
        import io

        buf = io.BytesIO()
        Image.new("RGB", (32, 32), "white").save(buf, format="PNG")
        f.files["ref.png"] = buf.getvalue()
        monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-travel")
        write_config("", monkeypatch, tmp_path)
        r = run_cli(["edit", "x", "-p", "local", "-m", str(tiny), "-i",
                     f"{f.server.url}/files/ref.png", "--steps", "2", "-q", "-o", "l.png"])
        assert r.code == 0, r.err
        (get,) = f.server.calls("/files/ref.png")
        assert "authorization" not in get.headers
        assert Path("l.png").exists()
    finally:
        f.stop()


def test_dry_run_fetches_no_url(fake: OpenAIFake) -> None:
    fake.files["ref.png"] = b"never fetched"
    r = run_cli(["edit", "x", "-p", "local", "-i", f"{fake.server.url}/files/ref.png",
                 "--dry-run"])
    assert r.code == 0, r.err
    assert json.loads(r.stdout)["requests"][0]["body"]["strength"] == 0.6
    assert fake.server.requests == []


def test_input_image_size_limit_checked_before_sending(
        openai_today: OpenAIFake, monkeypatch: pytest.MonkeyPatch) -> None:
    import imagegen_cli.providers.openai as oa

    make("a.png", (64, 64))
    monkeypatch.setattr(oa, "MAX_EDIT_IMAGE_BYTES", 100)  # the real one is 50 MB
    r = run_cli(["edit", "x", "-i", "a.png"])
    assert r.code == 2 and "a.png is 0 MB" in r.err and "under 50 MB" in r.err
    assert openai_today.server.requests == []


@pytest.mark.parametrize(("model", "flag", "needle"), [
    ("gpt-image-2", ["--size", "1344x768"], "takes sizes auto, 1024x1024"),
    ("gpt-image-2", ["--aspect", "16:9"], "takes sizes auto, 1024x1024"),
    ("gpt-image-2.5-flare", ["--quality", "xhigh"], "takes quality low, medium, high, auto"),
    ("gpt-image-2.6-flare", ["--complexity", "high"], "has no complexity"),
])
def test_url_edit_refuses_what_the_json_body_cannot_carry(
        openai_today: OpenAIFake, model: str, flag: list[str], needle: str) -> None:
    # Issue 19 W4: the JSON edit body's enums are narrower than multipart's.
    url = "https://images.example.com/shelf.png"
    r = run_cli(["edit", "x", "-m", model, "-i", url, *flag, "-o", "u.png"])
    assert r.code == 2, r.err
    assert needle in r.err and "-i FILE goes as multipart" in r.err
    assert "Traceback" not in r.err and openai_today.server.requests == []
    make("a.png", (64, 64))  # a file goes multipart, which takes it
    r = run_cli(["edit", "x", "-m", model, "-i", "a.png", *flag, "-q", "-o", "f.png"])
    assert r.code == 0, r.err


def test_fake_refuses_json_edit_values_the_spec_forbids(openai_today: OpenAIFake) -> None:
    import httpx

    from tests.conftest import KEY

    for extra in ({"size": "1344x768"}, {"quality": "xhigh"}, {"complexity": "high"}):
        body = {"model": "gpt-image-2.6-flare", "prompt": "x",
                "images": [{"image_url": "https://images.example.com/a.png"}], **extra}
        resp = httpx.post(f"{openai_today.url}/images/edits", json=body,
                          headers={"authorization": f"Bearer {KEY}"})
        assert resp.status_code == 400, (extra, resp.text)
