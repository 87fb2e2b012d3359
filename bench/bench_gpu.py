#!/usr/bin/env python3
"""imagegen's local provider against a bare diffusers script, on a GPU, with
full-size pipelines built from the configs in bench/configs/ with random weights
(nothing downloaded: the work per step is the real models'), saved as diffusers
folders that both sides load.

    .venv/bin/python bench/bench_gpu.py [--models sd-turbo,sdxl-turbo,klein-4b] [--images 3]
    .venv/bin/python bench/bench_gpu.py --tiny      # rehearsal on a CPU: tiny pipelines

Each side runs in its own process, one after the other per model: load (from_pretrained
and .to(device)) and the median seconds per image over --images images at the
config's steps, size and dtype. imagegen runs `imagegen generate -p local -n IMAGES
--json` and reports its own load and inference times. Prints a Markdown table and
the overhead per image; exits 1 if a side fails. Budget: under 8 minutes on one
H200 for the three models (building and saving klein's 8B parameters is most of it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CONFIGS = ROOT / "bench" / "configs"

# The bare script: what a user would write with diffusers alone.
BARE = r"""
import json, statistics, sys, time
t0 = time.perf_counter()
import torch, diffusers
folder, cls, device, dtype, steps, guidance, size, n = sys.argv[1:9]
t1 = time.perf_counter()
pipe = getattr(diffusers, cls).from_pretrained(folder, torch_dtype=getattr(torch, dtype),
                                               local_files_only=True).to(device)
pipe.set_progress_bar_config(disable=True)
if device == "cuda":
    torch.cuda.synchronize()
load = time.perf_counter() - t1
times = []
for i in range(int(n)):
    t = time.perf_counter()
    pipe(prompt="a red fox in the snow", num_inference_steps=int(steps),
         guidance_scale=float(guidance),
         width=int(size), height=int(size),
         generator=torch.Generator("cpu").manual_seed(i)).images[0]
    if device == "cuda":
        torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
print(json.dumps({"import_s": t1 - t0, "load_s": load, "image_s": times}))
"""


def pipeline(name: str, device: str, dtype_name: str | None = None) -> tuple[Any, dict[str, Any]]:
    """The pipeline CONFIGS/NAME.json describes, random weights, on DEVICE (in the
    config's dtype unless DTYPE_NAME), and its spec."""
    import diffusers
    import torch
    import transformers

    from tests.tiny_pipelines import qwen_tokenizer, tokenizer

    spec = json.loads((CONFIGS / f"{name}.json").read_text())
    dtype = getattr(torch, dtype_name or spec["dtype"])
    parts: dict[str, Any] = {}
    torch.manual_seed(0)
    sched = {k: v for k, v in spec["scheduler"].items() if k != "_class"}
    # Outside the device context: schedulers keep their tables on the CPU.
    parts["scheduler"] = getattr(diffusers, spec["scheduler"]["_class"]).from_config(sched)
    with torch.device(device):
        for key, cfg in spec.items():
            if not isinstance(cfg, dict) or "_class" not in cfg or key == "scheduler":
                continue
            cfg = {k: v for k, v in cfg.items() if k != "_class"}
            cls = spec[key]["_class"]
            if hasattr(diffusers, cls):
                parts[key] = getattr(diffusers, cls).from_config(cfg).to(dtype)
            else:  # a transformers text encoder: its config class, then the model
                model_cls = getattr(transformers, cls)
                parts[key] = model_cls(model_cls.config_class(**cfg)).to(dtype)
    # Tokenizers made in code (tests/tiny_pipelines.py): their ids fit any vocabulary,
    # and a prompt's token count is what the encoder's work depends on.
    if "Flux2" in spec["pipeline"]:
        parts["tokenizer"] = qwen_tokenizer()
    else:
        tok = tokenizer()
        parts["tokenizer"] = tok
        if "text_encoder_2" in parts:
            parts["tokenizer_2"] = tok
        for key in ("text_encoder", "text_encoder_2"):
            if key in parts:
                parts[key].config.eos_token_id = tok.eos_token_id
    extra: dict[str, Any] = {}
    if spec["pipeline"] == "StableDiffusionPipeline":
        extra = {"safety_checker": None, "feature_extractor": None,
                 "requires_safety_checker": False}
    if spec.get("is_distilled"):
        extra["is_distilled"] = True
    return getattr(diffusers, spec["pipeline"])(**parts, **extra), spec


def build(name: str, folder: Path, device: str) -> dict[str, Any]:
    """The pipeline CONFIGS/NAME.json describes, random weights, saved to FOLDER."""
    import torch

    pipe, spec = pipeline(name, device)
    pipe.save_pretrained(folder)
    del pipe
    if device == "cuda":
        torch.cuda.empty_cache()
    return spec


def tiny_spec(name: str, folder: Path) -> dict[str, Any]:
    """--tiny: the test suite's tiny pipelines, on the CPU, in float32."""
    from tests import tiny_pipelines as tp

    if name == "klein-4b":
        tp.klein(folder, distilled=True)
        return {"pipeline": "Flux2KleinPipeline", "steps": 4, "guidance": 1.0, "size": 64,
                "dtype": "float32", "is_distilled": True}
    sd, _ = tp.build(folder.parent / f"{name}-parts")
    shutil.copytree(sd, folder)
    return {"pipeline": "StableDiffusionPipeline", "steps": 1, "guidance": 0.0, "size": 64,
            "dtype": "float32"}


def run_bare(folder: Path, spec: dict[str, Any], device: str, n: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", BARE, str(folder), spec["pipeline"], device,
                          spec["dtype"], str(spec["steps"]), str(spec["guidance"]),
                          str(spec["size"]), str(n)],
                         check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run_imagegen(folder: Path, spec: dict[str, Any], device: str, n: int, work: Path
                 ) -> dict[str, Any]:
    imagegen = str(Path(sys.executable).parent / "imagegen")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "IMAGEGEN_CONFIG": str(work / "none.toml")}
    (work / "none.toml").write_text("")
    # A distilled klein takes no --guidance (imagegen refuses it): its default, 1.0, is
    # what the bare script passes.
    guidance = [] if spec.get("is_distilled") else ["--guidance", str(spec["guidance"])]
    t0 = time.perf_counter()
    out = subprocess.run([imagegen, "generate", "a red fox in the snow", "-p", "local", "-m",
                          str(folder), "--device", device, "--dtype", spec["dtype"],
                          "--steps", str(spec["steps"]), *guidance,
                          "--size", f"{spec['size']}x{spec['size']}", "-n", str(n),
                          "--seed", "0", "-q", "--json", "-o", str(work / "ig") + "/"],
                         check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    report = json.loads(out.stdout)
    times = [float(i["timings"]["inference_s"]) for i in report["images"]]
    return {"wall_s": wall, "image_s": times}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="sd-turbo,sdxl-turbo,klein-4b")
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="rehearse on a CPU, tiny pipelines")
    ap.add_argument("--work", type=Path, default=None, help="where the folders go")
    args = ap.parse_args()
    import torch

    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: run with --tiny to rehearse on the CPU", file=sys.stderr)
        return 2
    work = Path(args.work or tempfile.mkdtemp(prefix="imagegen-bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (--tiny rehearsal)"
    print(f"{gpu}, torch {torch.__version__}, {args.images} images per side\n")
    print("| model | build+save s | bare load s | bare s/image | imagegen wall s | "
          "imagegen s/image | overhead per image |\n|---|---|---|---|---|---|---|")
    failed = False
    for name in args.models.split(","):
        folder = work / name
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        try:
            spec = tiny_spec(name, folder) if args.tiny else build(name, folder, device)
            built = time.perf_counter() - t0
            bare = run_bare(folder, spec, device, args.images)
            ours = run_imagegen(folder, spec, device, args.images, work)
        except (subprocess.CalledProcessError, Exception) as exc:  # noqa: BLE001
            detail = getattr(exc, "stderr", "") or str(exc)
            print(f"| {name} | failed: {str(detail).strip().splitlines()[-1][:150]} |")
            failed = True
            continue
        # The first image pays warm-up (cuDNN autotune, allocator): the median skips it.
        b = statistics.median(bare["image_s"][1:] or bare["image_s"])
        o = statistics.median(ours["image_s"][1:] or ours["image_s"])
        print(f"| {name} {spec['size']}² {spec['steps']} steps {spec['dtype']} | {built:.1f} | "
              f"{bare['load_s']:.2f} | {b:.3f} | {ours['wall_s']:.2f} | {o:.3f} | "
              f"{(o - b) / b * 100:+.1f}% |")
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
