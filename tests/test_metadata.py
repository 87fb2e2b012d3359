"""Metadata other tools read right: A1111 infotext, EXIF, XMP, the AI-generated mark."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from imagegen_cli.files.metadata import write as metadata
from imagegen_cli.files.metadata.infotext import infotext, parse_infotext
from imagegen_cli.files.metadata.read import read as read_metadata
from imagegen_cli.files.metadata.xmp import AI_SOURCE

META = {"prompt": "a fox", "provider": "openai", "model": "gpt-image-1", "size": "32x16",
        "seed": 7}
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
IPTC = "{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}"


def encode(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 16), (10, 20, 30)).save(buf, format=fmt)
    return buf.getvalue()


def embed(fmt: str, **meta: object) -> bytes:
    return metadata.embed(encode(fmt.upper()), fmt, {**META, **meta})[0]


def xmp_of(data: bytes) -> ET.Element:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        raw = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    assert raw, "no XMP packet"
    return ET.fromstring(raw)


def user_comment(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as im:
        raw = im.getexif().get_ifd(0x8769)[0x9286]
    assert raw[:8] == b"UNICODE\0"
    return str(raw[8:].decode("utf-16-be"))


def test_png_has_no_comfyui_chunk_names() -> None:
    with Image.open(io.BytesIO(embed("png"))) as im:
        im.load()
        text = dict(im.text)  # type: ignore[attr-defined]
    assert "prompt" not in text and "workflow" not in text
    assert text["parameters"].startswith("a fox\n")
    assert json.loads(text["imagegen"])["prompt"] == "a fox"


@pytest.mark.parametrize("value", ["acme/model:v1,beta", "two\nlines", 'say "hi", then'])
def test_values_with_commas_colons_newlines_are_quoted(value: str) -> None:
    text = infotext(dict(META, model=value))
    assert f"Model: {json.dumps(value, ensure_ascii=False)}" in text
    assert parse_infotext(text)["Model"] == value
    assert parse_infotext(text)["Seed"] == "7"


def test_sampler_only_when_named_and_version_always() -> None:
    hosted = infotext(META).splitlines()[-1]
    assert "Sampler:" not in hosted
    assert hosted.endswith("Version: imagegen 0.1")
    local = infotext(dict(META, sampler="Euler a", steps=2)).splitlines()[-1]
    assert local.startswith("Steps: 2, Sampler: Euler a, ")


def test_hosted_image_without_steps_parses_like_the_readers_expect() -> None:
    text = infotext(META)
    lines = text.splitlines()
    # sd-geninfo: the line after the prompt starts with "Steps: " (else it crashes);
    # sd-prompt-reader: the settings start at "\nSteps:" (else Size folds into the prompt).
    assert lines[1].startswith("Steps: ")
    assert text[: text.find("\nSteps:")] == "a fox"
    parsed = parse_infotext(text)
    assert parsed["Prompt"] == "a fox" and parsed["Size"] == "32x16"


def test_short_exif_value_is_stored_inline() -> None:
    out = embed("jpeg", prompt="cat")
    with Image.open(io.BytesIO(out)) as im:
        assert im.getexif()[0x010E] == "cat"
        assert im.getexif()[0x0131] == "imagegen 0.1"
    assert user_comment(out).startswith("cat\nSteps: ")


def test_xmp_drops_characters_xml_forbids() -> None:
    for fmt in ("jpeg", "webp", "png"):
        root = xmp_of(embed(fmt, prompt="red \x1b[31mfox\x00\x07"))
        li = root.find(f".//{RDF}li")
        assert li is not None and li.text == "red [31mfox"


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_ai_generated_mark_in_every_format(fmt: str) -> None:
    data = embed(fmt)
    desc = xmp_of(data).find(f".//{RDF}Description")
    assert desc is not None
    assert desc.get(f"{IPTC}DigitalSourceType") == AI_SOURCE
    assert read_metadata(data)["ai_generated"] is True


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_strip_removes_everything(fmt: str) -> None:
    bare = metadata.strip(embed(fmt), fmt)
    got = read_metadata(bare)
    assert got["fields"] == {} and got["ai_generated"] is False
    assert b"a fox" not in bare and b"imagegen" not in bare
    with Image.open(io.BytesIO(bare)) as im:
        im.load()
        assert im.size == (32, 16)


def test_long_prompt_in_jpeg_keeps_settings_and_xmp() -> None:
    prompt = "a very long prompt " * 5000  # ~95 KB: more than one segment holds
    warnings: list[str] = []
    out, cut = metadata.embed(encode("JPEG"), "jpeg", dict(META, prompt=prompt),
                              warnings.append)
    assert cut and len(warnings) == 1 and "sidecar" in warnings[0]
    assert user_comment(out).splitlines()[-1].endswith("Version: imagegen 0.1")
    desc = xmp_of(out).find(f".//{RDF}Description")
    assert desc is not None and desc.get(f"{IPTC}DigitalSourceType") == AI_SOURCE
    with Image.open(io.BytesIO(out)) as im:
        im.load()


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_read_back_our_own(fmt: str) -> None:
    got = read_metadata(embed(fmt, negative_prompt="blur", steps=4))
    assert got["source"] == "imagegen"
    assert got["fields"]["prompt"] == "a fox"
    assert got["fields"]["negative_prompt"] == "blur"
    assert got["fields"]["steps"] == 4


def test_read_a1111_parameters_from_elsewhere() -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", 'castle\nNegative prompt: fog\nSteps: 20, Sampler: Euler a, '
                  'CFG scale: 7, Seed: 965400086, Size: 512x512, Model: "a:b"')
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG", pnginfo=info)
    got = read_metadata(buf.getvalue())
    assert got["source"] == "a1111"
    assert got["fields"] == {"prompt": "castle", "negative_prompt": "fog", "steps": 20,
                             "sampler": "Euler a", "guidance": 7.0, "seed": 965400086,
                             "size": "512x512", "model": "a:b"}


# ---------------------------------------------------------------- end to end


def test_generate_long_jpeg_prompt_warns_and_writes_sidecar(fake: object, cli: object) -> None:
    from tests.conftest import run_cli

    Path("p.txt").write_text("fox " * 7900)
    r = run_cli(["generate", "@p.txt", "-f", "jpeg", "-o", "out.jpg"])
    assert r.code == 0, r.err
    assert "warning:" in r.err and "sidecar" in r.err
    side = json.loads(Path("out.json").read_text())
    assert side["prompt"] == ("fox " * 7900).strip()


def test_generate_no_metadata_writes_none(fake: object) -> None:
    from tests.conftest import run_cli

    r = run_cli(["generate", "a fox", "--no-metadata", "-o", "bare.png"])
    assert r.code == 0, r.err
    data = Path("bare.png").read_bytes()
    assert read_metadata(data) == {"format": "png", "source": None, "fields": {},
                                   "ai_generated": False, "notes": [],
                                   "credentials": {"present": False}}
    r = run_cli(["generate", "a fox", "-o", "full.png"])
    assert read_metadata(Path("full.png").read_bytes())["ai_generated"] is True


# ------------------------------------------------- third-party tools (Debian)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install it; .ci/run does)")
    return path


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_exiftool_reads_digital_source_type(fmt: str, tmp_path: Path) -> None:
    exiftool = _tool("exiftool")
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(embed(fmt, prompt="cat", model="acme/model:v1,beta"))
    r = subprocess.run([exiftool, "-j", "-G1", "-n", str(path)], capture_output=True,
                       text=True, timeout=60)
    tags = json.loads(r.stdout)[0]
    assert tags["XMP-iptcExt:DigitalSourceType"] == AI_SOURCE
    assert "Warning" not in tags and "Error" not in tags, tags
    if fmt != "png":
        assert tags["IFD0:ImageDescription"] == "cat"


def test_pngcheck_and_webpinfo_validate(tmp_path: Path) -> None:
    pngcheck = _tool("pngcheck")
    webpinfo = _tool("webpinfo")
    (tmp_path / "x.png").write_bytes(embed("png", prompt="猫 \x1b"))
    (tmp_path / "x.webp").write_bytes(embed("webp", prompt="猫 \x1b"))
    assert subprocess.run([pngcheck, str(tmp_path / "x.png")], capture_output=True,
                          timeout=60).returncode == 0
    r = subprocess.run([webpinfo, str(tmp_path / "x.webp")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "No error detected" in r.stdout, r.stdout
