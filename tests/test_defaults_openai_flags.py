"""[defaults] for the newer OpenAI flags (complexity, output_compression, user,
input_fidelity): set and checked like the flags, sent like them, and dropped with a
note where the model cannot take them."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from tests.conftest import run_cli
from tests.fakes.multipart import parse_multipart
from tests.fakes.openai_fake import OpenAIFake


def test_config_set_checks_and_generate_sends_them(openai_today: OpenAIFake) -> None:
    for key, value in (("defaults.complexity", "high"), ("defaults.output_compression", "70"),
                       ("defaults.user", "team-42"), ("defaults.format", "webp")):
        r = run_cli(["config", "set", key, value])
        assert r.code == 0, r.err
    for key, value, needle in (("defaults.complexity", "ultra", "low, medium, high"),
                               ("defaults.output_compression", "150", "0 to 100"),
                               ("defaults.input_fidelity", "max", "high, low")):
        r = run_cli(["config", "set", key, value])
        assert r.code == 2 and needle in r.err and "not stored" in r.err, r.err
    r = run_cli(["generate", "a fox", "-o", "f.webp", "-q"])
    assert r.code == 0, r.err
    body = openai_today.server.calls("/images/generations")[-1].json()
    assert (body["complexity"], body["output_compression"], body["user"]) == (
        "high", 70, "team-42")
    # a flag still wins over the file
    r = run_cli(["generate", "a fox", "-o", "g.webp", "-q", "--complexity", "low"])
    assert r.code == 0, r.err
    assert openai_today.server.calls("/images/generations")[-1].json()["complexity"] == "low"


def test_a_model_without_them_drops_them_with_a_note(openai_today: OpenAIFake) -> None:
    path = Path(os.environ["IMAGEGEN_CONFIG"])
    path.write_text('[defaults]\ncomplexity = "high"\n' + path.read_text())
    r = run_cli(["generate", "a fox", "-m", "gpt-image-1.5", "-o", "f.png"])
    assert r.code == 0, r.err
    assert "defaults.complexity" in r.err and "is not used with openai" in r.err
    assert "complexity" not in openai_today.server.calls("/images/generations")[-1].json()


def test_input_fidelity_default_is_for_edits_only(openai_today: OpenAIFake) -> None:
    path = Path(os.environ["IMAGEGEN_CONFIG"])
    path.write_text('[defaults]\ninput_fidelity = "high"\n' + path.read_text())
    r = run_cli(["generate", "a fox", "-o", "f.png"])
    assert r.code == 0, r.err
    assert "input_fidelity" not in r.err  # not even a note: generate has no such option
    assert "input_fidelity" not in openai_today.server.calls("/images/generations")[-1].json()
    Image.new("RGB", (32, 32), "red").save("a.png")
    r = run_cli(["edit", "make it blue", "-i", "a.png", "-o", "e.png", "-q"])
    assert r.code == 0, r.err
    call = openai_today.server.calls("/images/edits")[-1]
    fields, _ = parse_multipart(call.body, call.headers["content-type"])
    assert fields["input_fidelity"] == "high"


def test_moderation_is_not_sent_on_edits(openai_today: OpenAIFake) -> None:
    # Issue 19 W1: POST /images/edits has no `moderation` (image_edit_params.py).
    Image.new("RGB", (32, 32), "red").save("a.png")
    Image.new("L", (32, 32), 255).save("m.png")
    for cmd in (["edit", "x", "-i", "a.png"], ["inpaint", "x", "-i", "a.png", "--mask", "m.png"]):
        r = run_cli([*cmd, "--moderation", "low", "-o", "e.png"])
        assert r.code == 2, r.err
        assert "--moderation low applies to generations only" in r.err and "drop" in r.err
        assert "Traceback" not in r.err
    assert not openai_today.server.calls("/images/edits")
    # The strict fake refuses it as the API does (a raw field reaches it).
    r = run_cli(["edit", "x", "-i", "a.png", "--param", "moderation=low", "-o", "e.png"])
    assert r.code == 5 and "moderation" in r.err
    # From [defaults] or [providers.openai.defaults]: dropped on an edit with a note,
    # still sent on a generation.
    path = Path(os.environ["IMAGEGEN_CONFIG"])
    base = path.read_text()
    for text in ('[defaults]\nmoderation = "low"\n' + base,
                 base + '[providers.openai.defaults]\nmoderation = "low"\n'):
        path.write_text(text)
        r = run_cli(["edit", "x", "-i", "a.png", "-o", "e.png", "--overwrite"])
        assert r.code == 0, r.err
        assert "moderation" in r.err and "is not used with openai" in r.err
        call = openai_today.server.calls("/images/edits")[-1]
        fields, _ = parse_multipart(call.body, call.headers["content-type"])
        assert "moderation" not in fields
        r = run_cli(["generate", "x", "-o", "g.png", "--overwrite", "-q"])
        assert r.code == 0, r.err
        assert openai_today.server.calls("/images/generations")[-1].json()["moderation"] == "low"
