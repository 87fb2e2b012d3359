"""The local provider's families (FLUX.2 klein, Z-Image, Qwen-Image, SD), chosen by
the model's model_index.json, on tiny pipelines built offline from configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from tests.conftest import run_cli  # noqa: E402


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests import tiny_pipelines as tp

    root = tmp_path_factory.mktemp("families")
    sd, sd_inpaint = tp.build(root)
    return {"sd": sd, "sd-inpaint": sd_inpaint,
            "klein": tp.klein(root / "klein", distilled=True),
            "klein-base": tp.klein(root / "klein-base", distilled=False),
            "z-image": tp.z_image(root / "z-image"), "qwen": tp.qwen_image(root / "qwen")}


DIT = ("klein", "klein-base", "z-image", "qwen")
NAMES = {"klein": "FLUX.2 klein", "klein-base": "FLUX.2 klein", "z-image": "Z-Image",
         "qwen": "Qwen-Image", "sd": "Stable Diffusion"}


def pixels(path: str) -> bytes:
    with Image.open(path) as im:
        return im.convert("RGB").tobytes()


def body(args: list[str]) -> dict[str, Any]:
    r = run_cli([*args, "--dry-run"])
    assert r.code == 0, r.err
    return dict(json.loads(r.stdout)["requests"][0]["body"])


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every load_pipeline call: the class it loaded."""
    import imagegen_cli.providers.local as local

    seen: list[dict[str, Any]] = []
    real = local.load_pipeline

    def spy(model: str, **kw: Any) -> Any:
        pipe = real(model, **kw)
        seen.append({"cls": type(pipe).__name__, "model": model})
        return pipe

    monkeypatch.setattr(local, "load_pipeline", spy)
    return seen


def refuses_before_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    import imagegen_cli.providers.local as local

    def never(*a: Any, **k: Any) -> Any:
        raise AssertionError("loaded")

    monkeypatch.setattr(local, "load_pipeline", never)


def test_family_comes_from_model_index_not_name(models: dict[str, Path],
                                                tmp_path: Path) -> None:
    from imagegen_cli.providers.local_families import identify

    for key, name in NAMES.items():
        found = identify(str(models[key]))
        assert found is not None and found.family.name == name
    # A distilled klein says so in its model_index.json: 4 steps, whatever its name.
    klein = identify(str(models["klein"]))
    assert klein and klein.distilled and klein.steps == 4
    base = identify(str(models["klein-base"]))
    assert base and not base.distilled and base.steps is None
    # "turbo" in a folder's name no longer means 2 steps...
    turbo = tmp_path / "my-turbo"
    shutil.copytree(models["sd"], turbo)
    t = identify(str(turbo))
    assert t and t.steps is None
    # ...but a folder of a known id keeps the model card's settings.
    zt = tmp_path / "Z-Image-Turbo"
    shutil.copytree(models["z-image"], zt)
    z = identify(str(zt))
    assert z and (z.steps, z.guidance) == (9, 0.0)


def test_defaults_steps_and_guidance(models: dict[str, Path]) -> None:
    b = body(["generate", "x", "-p", "local", "-m", str(models["klein"])])
    assert b["num_inference_steps"] == 4 and b["guidance_scale"] == 1.0
    b = body(["generate", "x", "-p", "local", "-m", str(models["klein-base"])])
    assert "num_inference_steps" not in b and "guidance_scale" not in b  # the pipeline's
    b = body(["generate", "x", "-p", "local", "-m", "Tongyi-MAI/Z-Image-Turbo"])
    assert (b["num_inference_steps"], b["guidance_scale"]) == (9, 0.0)
    b = body(["generate", "x", "-p", "local", "-m", "stabilityai/sd-turbo"])
    assert (b["num_inference_steps"], b["guidance_scale"]) == (2, 0.0)


@pytest.mark.parametrize("key", DIT)
def test_generate_each_family(models: dict[str, Path], key: str,
                              loads: list[dict[str, Any]]) -> None:
    base = ["generate", "a red fox", "-p", "local", "-m", str(models[key]), "--steps", "2",
            "--size", "48x32", "--seed", "1", "-q", "--json"]
    r = run_cli([*base, "-o", "a.png"])
    assert r.code == 0, r.err
    with Image.open("a.png") as im:
        assert im.size == (48, 32)
        assert "Steps: 2" in im.text["parameters"]  # type: ignore[attr-defined]
    assert run_cli(["generate", "a blue cat", *base[2:], "-o", "b.png"]).code == 0
    assert pixels("a.png") != pixels("b.png")  # the prompt reaches the pixels
    cls = {"klein": "Flux2KleinPipeline", "klein-base": "Flux2KleinPipeline",
           "z-image": "ZImagePipeline", "qwen": "QwenImagePipeline"}[key]
    assert loads[0]["cls"] == cls


@pytest.mark.parametrize("key", DIT)
def test_size_multiple_of_16(models: dict[str, Path], key: str,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    refuses_before_loading(monkeypatch)
    r = run_cli(["generate", "x", "-p", "local", "-m", str(models[key]), "--size", "40x40"])
    assert r.code == 2, r.err
    assert "multiples of 16" in r.err and NAMES[key] in r.err


@pytest.mark.parametrize("key", ["klein", "klein-base"])
def test_klein_refuses_negative_prompt_before_loading(
        models: dict[str, Path], key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    refuses_before_loading(monkeypatch)
    r = run_cli(["generate", "x", "-p", "local", "-m", str(models[key]),
                 "--negative-prompt", "blur"])
    assert r.code == 2, r.err
    assert "FLUX.2 klein takes no negative prompt" in r.err and "Traceback" not in r.err


@pytest.mark.parametrize("key", ["z-image", "qwen", "sd"])
def test_negative_prompt_changes_pixels(models: dict[str, Path], key: str) -> None:
    base = ["generate", "a red fox", "-p", "local", "-m", str(models[key]), "--steps", "2",
            "--size", "32x32", "--seed", "1", "-q", "--guidance", "4"]
    assert run_cli([*base, "-o", "a.png"]).code == 0
    r = run_cli([*base, "--negative-prompt", "green trees", "-o", "b.png"])
    assert r.code == 0, r.err
    assert pixels("a.png") != pixels("b.png")


def test_qwen_guidance_is_true_cfg_with_a_blank_negative(models: dict[str, Path]) -> None:
    b = body(["generate", "x", "-p", "local", "-m", str(models["qwen"]), "--guidance", "5"])
    assert b["true_cfg_scale"] == 5.0 and "guidance_scale" not in b
    assert b["negative_prompt"] == " "  # the model card's examples: CFG needs one
    b = body(["generate", "x", "-p", "local", "-m", str(models["qwen"]), "--guidance", "1"])
    assert "negative_prompt" not in b
    base = ["generate", "a red fox", "-p", "local", "-m", str(models["qwen"]), "--steps", "2",
            "--size", "32x32", "--seed", "1", "-q"]
    assert run_cli([*base, "--guidance", "1", "-o", "a.png"]).code == 0
    assert run_cli([*base, "--guidance", "6", "-o", "b.png"]).code == 0
    assert pixels("a.png") != pixels("b.png")  # no longer silently ignored


@pytest.mark.parametrize("key", ["klein-base", "z-image"])
def test_guidance_changes_pixels(models: dict[str, Path], key: str) -> None:
    base = ["generate", "a red fox", "-p", "local", "-m", str(models[key]), "--steps", "2",
            "--size", "32x32", "--seed", "1", "-q"]
    assert run_cli([*base, "--guidance", "1", "-o", "a.png"]).code == 0
    assert run_cli([*base, "--guidance", "6", "-o", "b.png"]).code == 0
    assert pixels("a.png") != pixels("b.png")


def test_distilled_klein_refuses_guidance(models: dict[str, Path],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    refuses_before_loading(monkeypatch)
    r = run_cli(["generate", "x", "-p", "local", "-m", str(models["klein"]), "--guidance", "3"])
    assert r.code == 2 and "FLUX.2 klein (distilled) ignores guidance" in r.err


@pytest.mark.parametrize("key", ["klein", "klein-base"])
def test_klein_edit_takes_every_image_as_reference(
        models: dict[str, Path], key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusers import Flux2KleinPipeline

    calls: list[dict[str, Any]] = []
    real = Flux2KleinPipeline.__call__

    def spy(self: Any, *a: Any, **kw: Any) -> Any:
        calls.append(kw)
        return real(self, *a, **kw)

    monkeypatch.setattr(Flux2KleinPipeline, "__call__", spy)
    Image.new("RGB", (80, 64), "blue").save("a.png")
    Image.new("RGB", (64, 64), "red").save("b.png")
    base = ["edit", "put them together", "-p", "local", "-m", str(models[key]), "-i", "a.png",
            "-i", "b.png", "--steps", "2", "--seed", "3", "-q"]
    r = run_cli([*base, "-o", "out.png"])
    assert r.code == 0, r.err
    assert len(calls[0]["image"]) == 2 and "strength" not in calls[0]
    with Image.open("out.png") as im:
        assert im.size == (80, 64)  # the first reference's size
    r = run_cli([*base, "--strength", "0.5"])
    assert r.code == 2 and "FLUX.2 klein edits from reference images and takes no --strength" \
        in r.err
    Image.new("RGB", (40, 24), "blue").save("small.png")
    r = run_cli([*base, "-i", "small.png"])
    assert r.code == 2 and "at least 64 px a side; small.png is 40x24" in r.err


@pytest.mark.parametrize(("key", "cls"), [("z-image", "ZImageImg2ImgPipeline"),
                                          ("qwen", "QwenImageImg2ImgPipeline"),
                                          ("sd", "StableDiffusionImg2ImgPipeline")])
def test_edit_by_strength(models: dict[str, Path], key: str, cls: str,
                          loads: list[dict[str, Any]]) -> None:
    Image.new("RGB", (40, 24), "blue").save("a.png")
    base = ["edit", "a cat", "-p", "local", "-m", str(models[key]), "-i", "a.png", "--steps",
            "4", "--seed", "3", "-q"]
    assert run_cli([*base, "--strength", "0.5", "-o", "x.png"]).code == 0
    r = run_cli([*base, "--strength", "1.0", "-o", "y.png"])
    assert r.code == 0, r.err
    assert loads[0]["cls"] == cls
    with Image.open("x.png") as im:
        assert im.size == (40, 24)
    assert pixels("x.png") != pixels("y.png")


@pytest.mark.parametrize(("key", "cls"), [("klein", "Flux2KleinInpaintPipeline"),
                                          ("z-image", "ZImageInpaintPipeline"),
                                          ("qwen", "QwenImageInpaintPipeline")])
def test_inpaint_loads_the_family_class(models: dict[str, Path], key: str, cls: str,
                                        loads: list[dict[str, Any]]) -> None:
    Image.new("RGB", (60, 44), (10, 120, 200)).save("in.png")
    m = Image.new("L", (60, 44), 0)
    m.paste(255, (0, 0, 30, 44))
    m.save("m.png")
    r = run_cli(["inpaint", "a door", "-p", "local", "-m", str(models[key]), "-i", "in.png",
                 "--mask", "m.png", "--steps", "4", "--seed", "3", "-o", "out.png"])
    assert r.code == 0, r.err
    assert loads[0]["cls"] == cls
    with Image.open("out.png") as im:
        assert im.size == (60, 44)


def test_unknown_argument_is_refused_before_loading(models: dict[str, Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    refuses_before_loading(monkeypatch)
    r = run_cli(["generate", "x", "-p", "local", "-m", str(models["klein"]), "--param",
                 "eta=0.5", "--size", "32x32"])
    assert r.code == 2, r.err
    assert "FLUX.2 klein takes no eta" in r.err and "--param eta" in r.err


def test_edit_only_model_refuses_generate(models: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.tiny_pipelines import write_index

    edit = tmp_path / "qwen-edit"
    shutil.copytree(models["qwen"], edit)
    write_index(edit, _class_name="QwenImageEditPlusPipeline")
    refuses_before_loading(monkeypatch)
    r = run_cli(["generate", "x", "-p", "local", "-m", str(edit)])
    assert r.code == 2 and "only edits" in r.err and "imagegen edit" in r.err
    Image.new("RGB", (32, 32)).save("a.png")
    r = run_cli(["edit", "x", "-p", "local", "-m", str(edit)] + ["-i", "a.png"] * 4)
    assert r.code == 2 and "at most 3 reference images" in r.err


def test_incomplete_folder_names_family_and_piece(models: dict[str, Path],
                                                  tmp_path: Path) -> None:
    broken = tmp_path / "klein-broken"
    shutil.copytree(models["klein"], broken)
    shutil.rmtree(broken / "text_encoder")
    r = run_cli(["generate", "x", "-p", "local", "-m", str(broken), "--size", "32x32"])
    assert r.code == 3, r.err
    assert "FLUX.2 klein" in r.err and "text_encoder" in r.err
    assert "hf download" not in r.err and "Traceback" not in r.err
    # A folder whose weights are damaged: the reason, and still no `hf download`.
    shutil.copytree(models["klein"] / "text_encoder", broken / "text_encoder")
    for f in (broken / "transformer").glob("*.safetensors"):
        f.write_bytes(b"not weights")
    r = run_cli(["generate", "x", "-p", "local", "-m", str(broken), "--size", "32x32"])
    assert r.code == 3, r.err
    assert "Cannot load the FLUX.2 klein model" in r.err and "hf download" not in r.err


# ------------------------------------------------------------------ a faster CPU path


@pytest.fixture
def taesd_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub cache holding a tiny madebyollin/taesd (built from a config, nothing
    downloaded)."""
    from tests.tiny_pipelines import hub_cache, tiny_taesd

    cache = tmp_path / "hub"
    hub_cache(cache, "madebyollin/taesd", tiny_taesd(tmp_path / "taesd"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_fast_vae_swaps_the_decoder(models: dict[str, Path], taesd_cache: Path) -> None:
    base = ["generate", "a red fox", "-p", "local", "-m", str(models["sd"]), "--steps", "2",
            "--size", "32x32", "--seed", "1", "-q"]
    assert run_cli([*base, "-o", "full.png"]).code == 0
    r = run_cli([*base, "--fast-vae", "--json", "-o", "tiny.png"])
    assert r.code == 0, r.err
    assert pixels("full.png") != pixels("tiny.png")
    with Image.open("tiny.png") as im:
        assert im.size == (32, 32)
    r = run_cli([*base, "--fast-vae", "--sidecar", "-o", "s.png"])
    assert json.loads(Path("s.json").read_text())["resolved"]["vae"] == "madebyollin/taesd"


def test_fast_vae_refused_without_a_tiny_decoder(models: dict[str, Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    refuses_before_loading(monkeypatch)
    r = run_cli(["generate", "x", "-p", "local", "-m", str(models["klein"]), "--fast-vae"])
    assert r.code == 2, r.err
    assert "FLUX.2 klein has no tiny decoder for --fast-vae" in r.err
    assert "Stable Diffusion, SDXL, SD3, FLUX.1, Z-Image" in r.err


def test_fast_vae_not_downloaded_says_how(models: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    r = run_cli(["generate", "x", "-p", "local", "-m", str(models["sd"]), "--fast-vae",
                 "--size", "32x32", "--steps", "1"])
    assert r.code == 3, r.err
    assert "hf download madebyollin/taesd" in r.err and "Traceback" not in r.err


def test_dtype_auto_follows_the_cpu(models: dict[str, Path], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from imagegen_cli.providers import local_load
    from imagegen_cli.providers.local_families import identify

    with_bf16 = tmp_path / "bf16"
    with_bf16.write_text("processor: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile\n")
    without = tmp_path / "plain"
    without.write_text("processor: 0\nflags\t\t: fpu sse2 avx2\n")
    assert local_load.cpu_has_bf16(with_bf16) and not local_load.cpu_has_bf16(without)
    assert not local_load.cpu_has_bf16(tmp_path / "absent")
    klein = identify(str(models["klein"]))
    sd = identify(str(models["sd"]))
    monkeypatch.setattr(local_load, "cpu_has_bf16", lambda: False)
    assert local_load.pick_dtype(torch, "auto", "cpu", klein) is torch.float32
    assert local_load.pick_dtype(torch, "auto", "cuda", klein) is torch.bfloat16
    assert local_load.pick_dtype(torch, "auto", "cuda", sd) is torch.float16
    assert local_load.pick_dtype(torch, None, "cpu", klein) is torch.float32
    monkeypatch.setattr(local_load, "cpu_has_bf16", lambda: True)
    assert local_load.pick_dtype(torch, "auto", "cpu", sd) is torch.bfloat16
    # ...and what was chosen is recorded with the image.
    r = run_cli(["generate", "x", "-p", "local", "-m", str(models["sd"]), "--dtype", "auto",
                 "--size", "32x32", "--steps", "1", "--sidecar", "-q", "-o", "a.png"])
    assert r.code == 0, r.err
    assert json.loads(Path("a.json").read_text())["resolved"]["dtype"] == "bfloat16"


# ------------------------------------------------------------------ LoRA


@pytest.fixture(scope="session")
def lora(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("peft")
    from tests.tiny_pipelines import tiny_lora

    return tiny_lora(models["sd"], tmp_path_factory.mktemp("lora"))


def test_lora_weight_changes_pixels_and_is_recorded(
        models: dict[str, Path], lora: Path, loads: list[dict[str, Any]]) -> None:
    base = ["generate", "a red fox", "-p", "local", "-m", str(models["sd"]), "--steps", "2",
            "--size", "32x32", "--seed", "1", "-q"]
    assert run_cli([*base, "-o", "none.png"]).code == 0
    r = run_cli([*base, "--lora", f"{lora}:1.0", "-o", "one.png"])
    assert r.code == 0, r.err
    assert run_cli([*base, "--lora", f"{lora}:0.3", "-o", "low.png"]).code == 0
    assert run_cli([*base, "--lora", str(lora), "-o", "plain.png"]).code == 0
    assert pixels("none.png") != pixels("one.png") != pixels("low.png")
    assert pixels("plain.png") == pixels("one.png")  # the weight defaults to 1
    with Image.open("low.png") as im:
        text = im.text  # type: ignore[attr-defined]
    first = text["parameters"].splitlines()[0]
    assert first == "a red fox <lora:pixel-style:0.3>"  # A1111's tag, no path
    assert str(lora.parent) not in str(text)


def test_lora_read_back_by_from(models: dict[str, Path], lora: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    import imagegen_cli.providers.local as local

    monkeypatch.chdir(lora.parent)  # where the recorded NAME is found as NAME.safetensors
    base = ["-p", "local", "-m", str(models["sd"]), "--steps", "2", "--size", "32x32",
            "--seed", "1", "-q"]
    assert run_cli(["generate", "a fox", *base, "--lora", f"{lora}:0.5", "-o",
                    str(tmp_path / "a.png")]).code == 0
    seen: list[Any] = []
    real = local.load_pipeline
    monkeypatch.setattr(local, "load_pipeline", lambda m, **kw: seen.append(m) or real(m, **kw))
    r = run_cli(["generate", "--from", str(tmp_path / "a.png"), *base, "-o",
                 str(tmp_path / "b.png")])
    assert r.code == 0, r.err
    assert seen and pixels(str(tmp_path / "a.png")) == pixels(str(tmp_path / "b.png"))
    # An A1111 image's prompt tags become --lora; a typed prompt's stay words.
    from imagegen_cli.files.metadata.infotext import from_infotext

    got = from_infotext("a cat <lora:pixel-style:0.7> in snow\nSteps: 2, Seed: 1, Size: 32x32")
    assert got["prompt"] == "a cat in snow" and got["lora"] == ["pixel-style:0.7"]


def test_lora_is_part_of_the_cache_key_and_checked(models: dict[str, Path], lora: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    import imagegen_cli.providers.local as local

    loads: list[str] = []
    real = local.load_pipeline
    monkeypatch.setattr(local, "load_pipeline",
                        lambda m, **kw: loads.append(m) or real(m, **kw))
    recs = [{"prompt": "a", "lora": [f"{lora}:0.5"]}, {"prompt": "b", "lora": [f"{lora}:0.5"]},
            {"prompt": "c"}]
    Path("r.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    r = run_cli(["batch", "r.jsonl", "-p", "local", "-m", str(models["sd"]), "--steps", "1",
                 "--size", "32x32", "-o", "o/", "-j", "1", "-q"])
    assert r.code == 0, r.err
    assert len(loads) == 2  # once with the LoRA, once without
    r = run_cli(["generate", "x", "-p", "local", "-m", str(models["sd"]), "--lora",
                 str(tmp_path / "nope.safetensors")])
    assert r.code == 2 and "no such file or folder" in r.err


def test_flux1_negative_prompt_needs_true_cfg(models: dict[str, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.tiny_pipelines import write_index

    flux = tmp_path / "flux1"
    shutil.copytree(models["sd"], flux)  # only its model_index.json is read before loading
    write_index(flux, _class_name="FluxPipeline")
    refuses_before_loading(monkeypatch)
    r = run_cli(["generate", "x", "-p", "local", "-m", str(flux), "--negative-prompt", "blur"])
    assert r.code == 2 and "add --param true_cfg_scale=4" in r.err
    b = body(["generate", "x", "-p", "local", "-m", str(flux), "--negative-prompt", "blur",
              "--param", "true_cfg_scale=4"])
    assert b["negative_prompt"] == "blur" and b["true_cfg_scale"] == 4


def test_fast_vae_config_default_skips_families_without_one(
        models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.conftest import write_config

    write_config("[defaults]\nfast_vae = true\n", monkeypatch, tmp_path)
    r = run_cli(["generate", "x", "-p", "local", "-m", str(models["klein"]), "--dry-run"])
    assert r.code == 0, r.err
    assert "defaults.fast_vae = True" in r.err and "FLUX.2 klein has no tiny decoder" in r.err
    write_config("[providers.local.defaults]\nfast_vae = true\n", monkeypatch, tmp_path)
    r = run_cli(["generate", "x", "-p", "local", "-m", str(models["klein"]), "--dry-run"])
    assert r.code == 0, r.err
    assert "asks for --fast-vae: FLUX.2 klein has no tiny decoder" in r.err
