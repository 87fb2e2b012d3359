"""`imagegen models list|pull|rm` on a hub cache made in the test (nothing downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub")
pytest.importorskip("diffusers")

from tests.conftest import run_cli  # noqa: E402


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from tests.tiny_pipelines import hub_cache, tiny_taesd

    root = tmp_path / "hub"
    taesd = tiny_taesd(tmp_path / "taesd")
    (taesd / "README.md").write_text("---\nlicense: mit\ntags:\n- vae\n---\n# TAESD\n")
    hub_cache(root, "madebyollin/taesd", taesd)
    other = tmp_path / "other"
    other.mkdir()
    (other / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    hub_cache(root, "someone/tiny-sd", other, commit="1" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    return root


def test_list_json_and_text(cache: Path) -> None:
    r = run_cli(["models", "list", "--json"])
    assert r.code == 0, r.err
    models = {m["model"]: m for m in json.loads(r.stdout)["models"]}
    assert set(models) == {"madebyollin/taesd", "someone/tiny-sd"}
    assert models["madebyollin/taesd"]["license"] == "mit"
    assert models["madebyollin/taesd"]["size_bytes"] > 0
    assert models["someone/tiny-sd"]["license"] is None
    r = run_cli(["models", "list"])
    assert r.code == 0
    assert any(line.startswith("madebyollin/taesd\t") and line.endswith("\tmit")
               for line in r.lines())


def test_list_of_an_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "none"))
    r = run_cli(["models", "list", "--json"])
    assert r.code == 0 and json.loads(r.stdout) == {"models": []}
    r = run_cli(["models", "list"])
    assert r.code == 0 and r.stdout == "" and "no models downloaded" in r.err


def test_rm_asks_unless_yes(cache: Path) -> None:
    r = run_cli(["models", "rm", "someone/tiny-sd"])
    assert r.code == 2 and "needs --yes" in r.err
    r = run_cli(["models", "rm", "someone/tiny-sd", "--yes", "--json"])
    assert r.code == 0, r.err
    assert json.loads(r.stdout)["removed"] == "someone/tiny-sd"
    assert not (cache / "models--someone--tiny-sd").exists()
    left = [m["model"] for m in json.loads(run_cli(["models", "list", "--json"]).stdout)["models"]]
    assert left == ["madebyollin/taesd"]
    r = run_cli(["models", "rm", "someone/tiny-sd", "-y"])
    assert r.code == 2 and "not in the model cache" in r.err


def test_pull_offline_says_so(cache: Path) -> None:
    r = run_cli(["models", "pull", "stabilityai/sd-turbo"])  # HF_HUB_OFFLINE=1 in tests
    assert r.code == 3 and "no network (HF_HUB_OFFLINE is set)" in r.err
    r = run_cli(["models", "pull", "./a/folder"])
    assert r.code == 2 and "hub id" in r.err


def test_pull_fetches_only_what_the_pipeline_loads() -> None:
    from imagegen_cli.providers.local_cache import SKIP, patterns

    allow = patterns({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "U"],
                      "safety_checker": [None, None], "vae": ["diffusers", "V"]})
    assert allow == ["model_index.json", "README.md", "LICENSE*", "unet/*", "vae/*"]
    assert "*.bin" in SKIP and "*.fp16.*" in SKIP
