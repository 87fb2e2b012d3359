"""The local diffusers provider, on tiny pipelines built offline."""

from __future__ import annotations

import builtins
import os
import signal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from tests.conftest import run_cli, write_config  # noqa: E402


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.tiny_pipelines import build

    return build(tmp_path_factory.mktemp("models"))


def pixels(path: str) -> bytes:
    with Image.open(path) as im:
        return im.convert("RGB").tobytes()


def test_size_and_same_seed_same_pixels(tiny: tuple[Path, Path]) -> None:
    sd, _ = tiny
    base = ["generate", "a red fox", "-p", "local", "-m", str(sd), "--steps", "2", "-q"]
    r1 = run_cli([*base, "--size", "64x48", "--seed", "7", "-o", "a.png"])
    assert r1.code == 0, r1.err
    r2 = run_cli([*base, "--size", "64x48", "--seed", "7", "-o", "b.png"])
    r3 = run_cli([*base, "--size", "64x48", "--seed", "8", "-o", "c.png"])
    assert r2.code == r3.code == 0
    with Image.open("a.png") as im:
        assert im.size == (64, 48)
        assert im.text["seed"] == "7"  # type: ignore[attr-defined]
    assert pixels("a.png") == pixels("b.png")
    assert pixels("a.png") != pixels("c.png")


def test_two_prompts_give_two_images(tiny: tuple[Path, Path]) -> None:
    """The fixture's tokenizer tells prompts apart (it once encoded every prompt to the
    same ids), so the prompt reaches the pixels."""
    from tests.tiny_pipelines import tokenizer

    tok = tokenizer()
    assert tok("a red fox").input_ids != tok("a blue cat").input_ids
    base = ["-p", "local", "-m", str(tiny[0]), "--steps", "2", "--size", "32x32", "--seed",
            "5", "-q"]
    assert run_cli(["generate", "a red fox", *base, "-o", "fox.png"]).code == 0
    assert run_cli(["generate", "a blue cat", *base, "-o", "cat.png"]).code == 0
    assert pixels("fox.png") != pixels("cat.png")


def test_count_loads_once_and_numbers_seeds(tiny: tuple[Path, Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.tiny_pipelines import count_loads

    loads = count_loads(monkeypatch)
    r = run_cli(["generate", "x", "-p", "local", "-m", str(tiny[0]), "--steps", "1",
                 "--size", "32x32", "-n", "3", "--seed", "100", "--json", "-o", "n/"])
    assert r.code == 0, r.err
    import json

    report = json.loads(r.stdout)
    assert [i["seed"] for i in report["images"]] == [100, 101, 102]
    assert len(loads) == 1


def test_random_seed_is_reported(tiny: tuple[Path, Path]) -> None:
    import json

    r = run_cli(["generate", "x", "-p", "local", "-m", str(tiny[0]), "--steps", "1",
                 "--size", "32x32", "--json", "-o", "r.png"])
    assert r.code == 0, r.err
    assert isinstance(json.loads(r.stdout)["images"][0]["seed"], int)


def test_progress_counts_pipeline_timesteps(tiny: tuple[Path, Path]) -> None:
    from imagegen_cli.registry import create
    from imagegen_cli.settings import config
    from imagegen_cli.transport.client import Transport
    from imagegen_cli.types import ImageRequest, Reporter

    class Rec(Reporter):
        def __init__(self) -> None:
            super().__init__()
            self.steps: list[tuple[int, int]] = []

        def step(self, done: int, total: int) -> None:
            self.steps.append((done, total))

    prov = create(config.load().providers["local"], os.environ)
    rec = Rec()
    req = ImageRequest(prompt="x", model=str(tiny[0]), size="32x32", steps=3, seed=1)
    with Transport() as tr:
        out = list(prov.run(req, None, tr, rec))
    assert len(out) == 1
    assert rec.steps == [(1, 3), (2, 3), (3, 3)]


def test_inpaint_returns_input_size(tiny: tuple[Path, Path]) -> None:
    _, inp = tiny
    Image.new("RGB", (60, 44), (10, 120, 200)).save("in.png")
    m = Image.new("L", (60, 44), 0)
    m.paste(255, (0, 0, 30, 44))
    m.save("m.png")
    r = run_cli(["inpaint", "a door", "-p", "local", "-m", str(inp), "-i", "in.png",
                 "--mask", "m.png", "--steps", "2", "--seed", "3", "-o", "out.png"])
    assert r.code == 0, r.err
    with Image.open("out.png") as im:
        assert im.size == (60, 44)


def test_size_must_be_multiple_of_8(tiny: tuple[Path, Path]) -> None:
    r = run_cli(["generate", "x", "-p", "local", "-m", str(tiny[0]), "--size", "60x60"])
    assert r.code == 2 and "multiples of 8" in r.err


def test_missing_model_folder_and_offline_hub_id(tiny: tuple[Path, Path]) -> None:
    r = run_cli(["generate", "x", "-p", "local", "-m", "./no/such/folder", "--size", "32x32"])
    assert r.code == 3 and "does not exist" in r.err
    r = run_cli(["generate", "x", "-p", "local", "-m", "someone/not-downloaded",
                 "--size", "32x32"])
    assert r.code == 3
    assert "Model someone/not-downloaded is not on this machine" in r.err
    assert "hf download someone/not-downloaded" in r.err
    assert "Traceback" not in r.err


def test_missing_extra_says_how_to_install(tiny: tuple[Path, Path],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_diffusers(name: str, *a: Any, **k: Any) -> Any:
        if name.split(".")[0] in ("diffusers", "torch"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_diffusers)
    r = run_cli(["generate", "x", "-p", "local", "-m", str(tiny[0])])
    assert r.code == 3
    # A command that works today: the package is not on PyPI, so not `imagegen-cli[local]`.
    assert "pip install 'imagegen-cli[local]'" not in r.err
    assert "[local]'" in r.err and "pip install '" in r.err


def test_generate_with_an_inpainting_model_points_to_inpaint(tiny: tuple[Path, Path]) -> None:
    r = run_cli(["generate", "x", "-p", "local", "-m", str(tiny[1]), "--size", "32x32"])
    assert r.code == 2, r.err
    assert "imagegen inpaint" in r.err and "Traceback" not in r.err


def test_same_seed_same_bytes(tiny: tuple[Path, Path]) -> None:
    """Timings stay out of the embedded metadata: equal pixels and parameters give
    equal files (the sidecar keeps the timings)."""
    import hashlib
    import json

    base = ["generate", "a red fox", "-p", "local", "-m", str(tiny[0]), "--steps", "2", "-q",
            "--size", "32x32", "--seed", "3", "--sidecar"]
    assert run_cli([*base, "-o", "a.png"]).code == 0
    assert run_cli([*base, "-o", "b.png"]).code == 0
    digest = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in ("a.png", "b.png")]
    assert digest[0] == digest[1]
    assert "inference_s" in json.loads(Path("a.json").read_text())["timings"]


def test_offline_hub_model_says_no_network_fast_and_quietly(
        tiny: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    # A hub on a closed loopback port: nothing listens, nothing leaves the machine.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    r = run_cli(["generate", "x", "-p", "local", "-m", "someone/not-downloaded", "-q"])
    assert r.code == 3
    assert "no network" in r.err and "hf download someone/not-downloaded" in r.err
    assert "-m /path/to/a/diffusers/folder" in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err  # no library lines


def test_cuda_refused_when_absent(tiny: tuple[Path, Path]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = run_cli(["generate", "x", "-p", "local", "-m", str(tiny[0]), "--device", "cuda",
                 "--size", "32x32"])
    assert r.code == 2 and "no CUDA device" in r.err


def test_ctrl_c_stops_at_next_step_and_writes_nothing(
        tiny: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import imagegen_cli.cli.report as report
    from imagegen_cli.types import Reporter

    class Interrupting(Reporter):
        def step(self, done: int, total: int) -> None:
            if done == 1:
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(report, "make_reporter", lambda quiet: Interrupting())
    r = run_cli(["generate", "x", "-p", "local", "-m", str(tiny[0]), "--steps", "5",
                 "--size", "32x32", "-o", "never.png"])
    assert r.code == 130, r.err
    assert not Path("never.png").exists()
    assert [p for p in Path(".").iterdir()] == []


def test_embedded_default_when_nothing_configured(tiny: tuple[Path, Path],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    write_config(f'[providers.local]\nmodel = "{tiny[0]}"\n', monkeypatch, tmp_path)
    r = run_cli(["generate", "x", "--steps", "1", "--size", "32x32", "-o", "d.png"])
    assert r.code == 0, r.err
    assert "using the local model" in r.err
    assert r.lines() == ["d.png"]


def test_dry_run_describes_the_call(tiny: tuple[Path, Path]) -> None:
    import json

    r = run_cli(["generate", "x", "-p", "local", "-m", str(tiny[0]), "--seed", "4",
                 "--dry-run"])
    call = json.loads(r.stdout)["requests"][0]
    assert call["method"] == "LOCAL" and call["body"]["seed"] == 4


@pytest.mark.parametrize("quiet", [False, True])
def test_download_bar_kept_unless_quiet(tiny: tuple[Path, Path], quiet: bool) -> None:
    import torch
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as tlog

    from imagegen_cli.providers.local_load import load_pipeline

    load_pipeline(str(tiny[0]), inpaint=False, dtype=torch.float32, quiet=quiet)
    assert are_progress_bars_disabled() is quiet
    assert not tlog.is_progress_bar_enabled()  # loading bars stay off


def test_image_records_folder_name_and_real_sampler(tiny: tuple[Path, Path]) -> None:
    sd, _ = tiny
    r = run_cli(["generate", "a red fox", "-p", "local", "-m", str(sd), "--steps", "2",
                 "--seed", "3", "-q", "-o", "m.png"])
    assert r.code == 0, r.err
    data = Path("m.png").read_bytes()
    assert str(sd).encode() not in data and str(sd.parent).encode() not in data
    with Image.open("m.png") as im:
        params = im.text["parameters"]  # type: ignore[attr-defined]
    settings = params.splitlines()[-1]
    assert settings.startswith("Steps: 2, Sampler: DDIM, ")  # the tiny pipeline's scheduler
    assert "Model: tiny-sd," in settings


def test_a_local_fallback_records_its_folder_not_its_path(
        tiny: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A hosted provider that is unavailable hands the job to the local model; the image
    names the model by its folder, never the user's path."""
    import json

    from tests.conftest import KEY
    from tests.fakes.openai_fake import OpenAIFake, error

    gw = OpenAIFake(image_size=(32, 32)).start()
    try:
        gw.server.script.append(error(503, "The server is overloaded", etype="server_error"))
        write_config(f'[providers.gw]\ntype = "openai"\nbase_url = "{gw.url}"\n'
                     'api_key_env = "GW_KEY"\nmodel = "gpt-image-2"\n'
                     f'[providers.local]\nmodel = "{tiny[0]}"\n'
                     '[providers.local.defaults]\nsteps = 1\n', monkeypatch, tmp_path)
        monkeypatch.setenv("GW_KEY", KEY)
        r = run_cli(["generate", "a fox", "-p", "gw,local", "--retries", "0", "--size",
                     "64x64", "-o", "fox.png", "--json"])
        assert r.code == 0, r.err
        img = json.loads(r.stdout)["images"][0]
        assert (img["provider"], img["model"]) == ("local", tiny[0].name)
        with Image.open("fox.png") as im:
            text = im.text  # type: ignore[attr-defined]
        assert text["model"] == tiny[0].name and str(tiny[0].parent) not in str(text)
    finally:
        gw.stop()
