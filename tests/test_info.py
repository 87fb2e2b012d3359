"""`imagegen info` and `imagegen generate --from`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.conftest import run_cli
from tests.fakes.openai_fake import OpenAIFake


def test_info_reads_what_generate_wrote(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "a lighthouse, at dusk", "-o", "m.webp", "--quality", "low"])
    assert r.code == 0, r.err
    r = run_cli(["info", "m.webp"])
    assert r.code == 0, r.err
    out = r.stdout
    assert out.startswith("m.webp: WEBP 64x64\n")
    assert "  prompt:          a lighthouse, at dusk\n" in out
    assert "  model:           gpt-image-2.6-flare\n" in out
    assert "  provider:        openai\n" in out
    assert "request id:" in out
    assert "AI-generated:    yes" in out
    r = run_cli(["info", "m.webp", "--json"])
    report = json.loads(r.stdout)
    assert report[0]["metadata"]["prompt"] == "a lighthouse, at dusk"
    assert report[0]["metadata"]["quality"] == "low"
    assert report[0]["metadata"]["request_id"]
    assert report[0]["ai_generated"] is True and report[0]["format"] == "webp"


def test_info_reads_a1111_parameters() -> None:
    info = PngInfo()
    info.add_text("parameters", "castle\nNegative prompt: fog\nSteps: 20, Sampler: Euler a, "
                  "CFG scale: 7, Seed: 42, Size: 8x8, Model: sdxl")
    Image.new("RGB", (8, 8)).save("a.png", pnginfo=info)
    r = run_cli(["info", "a.png", "--json"])
    assert r.code == 0
    got = json.loads(r.stdout)[0]
    assert got["source"] == "a1111" and got["ai_generated"] is False
    assert got["metadata"]["negative_prompt"] == "fog" and got["metadata"]["seed"] == 42
    assert "sampler:         Euler a" in run_cli(["info", "a.png"]).stdout


def test_info_no_metadata_and_not_an_image() -> None:
    Image.new("RGB", (4, 4)).save("plain.png")
    Path("notes.txt").write_text("hello")
    r = run_cli(["info", "plain.png"])
    assert r.code == 0 and "no metadata" in r.stdout
    r = run_cli(["info", "notes.txt"])
    assert r.code == 2 and r.stdout == ""
    assert r.err == "error: notes.txt is not an image (PNG, JPEG, WebP or GIF expected)\n"
    r = run_cli(["info", "plain.png", "notes.txt"])
    assert r.code == 2 and "plain.png" in r.stdout and "notes.txt is not an image" in r.err


def _body(fake: OpenAIFake) -> dict[str, object]:
    req = [q for q in fake.server.requests if q.path.endswith("/images/generations")][-1]
    return dict(json.loads(req.body))


def test_generate_from_image_takes_prompt_and_settings(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "@notes", "-o", "first.png", "--quality", "low", "--size",
                 "1024x1536"]) if Path("notes").write_text("a fox: on snow") else None
    assert r is not None and r.code == 0, r.err
    r = run_cli(["generate", "--from", "first.png", "-o", "second.png"])
    assert r.code == 0, r.err
    body = _body(fake)
    assert body["prompt"] == "a fox: on snow"
    assert body["quality"] == "low" and body["size"] == "1024x1536"
    # Flags beside --from win.
    r = run_cli(["generate", "--from", "first.png", "--quality", "high", "-o", "third.png"])
    assert r.code == 0, r.err
    assert _body(fake)["quality"] == "high" and _body(fake)["prompt"] == "a fox: on snow"
    r = run_cli(["generate", "a cat", "--from", "first.png", "-o", "fourth.png"])
    assert _body(fake)["prompt"] == "a cat"


def test_generate_from_sidecar_and_bad_files(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "@x", "-o", "s.jpg", "--sidecar"]) \
        if Path("x").write_text("-") else None  # a prompt that looks like an option
    assert r is not None and r.code == 0, r.err
    r = run_cli(["generate", "--from", "s.json", "-o", "t.png"])
    assert r.code == 0, r.err
    assert _body(fake)["prompt"] == "-"
    Image.new("RGB", (4, 4)).save("plain.png")
    r = run_cli(["generate", "--from", "plain.png"])
    assert r.code == 2 and "carries no prompt" in r.err
    Path("junk.bin").write_bytes(b"\x00\x01")
    r = run_cli(["generate", "--from", "junk.bin"])
    assert r.code == 2 and "neither an image" in r.err
    r = run_cli(["generate"])
    assert r.code == 2 and "Missing PROMPT" in r.err and "--from" in r.err


def test_generate_from_a1111_jpeg_elsewhere(fake: OpenAIFake) -> None:
    from imagegen_cli.files.metadata import write as metadata

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    data, _ = metadata.embed(buf.getvalue(), "jpeg", {"prompt": "old mill",
                                                            "size": "1536x1024"})
    # Keep only the A1111 text: drop our XMP (an image made elsewhere has none).
    Path("mill.jpg").write_bytes(data.replace(b"imagegen:json", b"imagegen:xjsn"))
    r = run_cli(["generate", "--from", "mill.jpg", "-o", "o.png"])
    assert r.code == 0, r.err
    assert _body(fake)["prompt"] == "old mill" and _body(fake)["size"] == "1536x1024"


@pytest.mark.parametrize("via_config", [True])
def test_from_same_seed_same_local_model_same_pixels(tmp_path: Path, via_config: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("diffusers")
    pytest.importorskip("torch")
    from tests.conftest import write_config
    from tests.tiny_pipelines import build

    sd, _ = build(tmp_path / "models")
    write_config(f'[providers.local]\nmodel = "{sd}"\n', monkeypatch, tmp_path)

    def pixels(path: str) -> bytes:
        with Image.open(path) as im:
            return im.convert("RGB").tobytes()

    r = run_cli(["generate", "a red fox", "-p", "local", "--seed", "11", "--size", "64x48",
                 "-q", "-o", "a.png"])
    assert r.code == 0, r.err
    r = run_cli(["generate", "--from", "a.png", "-q", "-o", "b.png"])
    assert r.code == 0, r.err
    assert pixels("a.png") == pixels("b.png")
    r = run_cli(["generate", "--from", "a.png", "--seed", "12", "-q", "-o", "c.png"])
    assert r.code == 0, r.err
    assert pixels("a.png") != pixels("c.png")
    with Image.open("c.png") as im:
        assert im.size == (64, 48)
        assert json.loads(im.text["imagegen"])["seed"] == 12  # type: ignore[attr-defined]


def test_a_text_chunk_that_inflates_to_a_gigabyte_is_not_inflated(tmp_path: Path) -> None:
    """A 1 MB PNG whose zTXt chunk inflates to 1 GiB: `info` and `--from` stay within a
    few MB of memory, say what they skipped, and exit as for a file without it."""
    import subprocess
    import sys
    import zlib

    from imagegen_cli.files.metadata.chunks import png_chunk

    bomb = zlib.compressobj(9)
    body = b"".join(bomb.compress(bytes(1 << 20)) for _ in range(1024)) + bomb.flush()
    assert len(body) < 2 << 20  # about 1 MB that inflates to 1 GiB
    img = Image.new("RGB", (8, 8))
    path = tmp_path / "bomb.png"
    img.save(path)
    data = path.read_bytes()
    chunk = png_chunk(b"zTXt", b"imagegen\0\0" + body)
    path.write_bytes(data[:33] + chunk + data[33:])  # after IHDR
    # VmHWM: this process's own peak (ru_maxrss would carry pytest's over from the fork).
    code = ("import sys\n"
            "from imagegen_cli.cli.app import main\n"
            "rc = main(sys.argv[1:])\n"
            "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
            "print(rc, peak[0].split()[1])\n")
    for args in (["info", str(path)], ["generate", "--from", str(path), "--dry-run"]):
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                           text=True, timeout=60)
        rc, peak_kib = r.stdout.split()[-2:]
        assert int(peak_kib) < 200 * 1024, (args, peak_kib)  # never the 1 GiB
        assert "inflates past 1 MiB of text: not read" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        assert rc == ("0" if args[0] == "info" else "2"), r.stderr
