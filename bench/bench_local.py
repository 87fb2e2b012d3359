#!/usr/bin/env python3
"""imagegen's local provider against a bare diffusers script: same tiny model,
same steps and size, runs interleaved in one process tree.

    .venv/bin/python bench/bench_local.py [--runs 5] [--steps 20] [--size 256]

Reports each median wall time, the import both pay (torch + diffusers), and
imagegen's overhead: (imagegen - bare) / bare, and the same excluding imports.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BARE = """
import sys
import torch
from diffusers import AutoPipelineForText2Image
folder, steps, size, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
pipe = AutoPipelineForText2Image.from_pretrained(folder, local_files_only=True)
pipe.set_progress_bar_config(disable=True)
g = torch.Generator("cpu").manual_seed(1)
pipe("a red fox", num_inference_steps=steps, width=size, height=size,
     generator=g).images[0].save(out)
"""
IMPORTS = "import torch\nfrom diffusers import AutoPipelineForText2Image\n"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()

    from tests.tiny_pipelines import build

    work = Path(tempfile.mkdtemp(prefix="imagegen-bench-local-"))
    sd, _ = build(work)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "IMAGEGEN_CONFIG": str(work / "none.toml")}
    (work / "none.toml").write_text("")
    py = sys.executable
    imagegen = str(Path(py).parent / "imagegen")
    cmds = {
        "import torch + diffusers": [py, "-c", IMPORTS],
        "bare diffusers script": [py, "-c", BARE, str(sd), str(args.steps), str(args.size),
                                  str(work / "bare.png")],
        "imagegen generate -p local": [
            imagegen, "generate", "a red fox", "-p", "local", "-m", str(sd), "--steps",
            str(args.steps), "--size", f"{args.size}x{args.size}", "--seed", "1", "-q",
            "--overwrite", "-o", str(work / "imagegen.png")],
    }
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for cmd in cmds.values():
        timed(cmd, env)  # warm caches
    for _ in range(args.runs):
        for name, cmd in cmds.items():
            times[name].append(timed(cmd, env))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"tiny SD pipeline, {args.steps} steps, {args.size}x{args.size}, "
          f"{args.runs} interleaved runs, median seconds\n")
    print("| command | median s | min s |\n|---|---|---|")
    for k, v in times.items():
        print(f"| {k} | {med[k]:.3f} | {min(v):.3f} |")
    imp, bare, ours = (med["import torch + diffusers"], med["bare diffusers script"],
                       med["imagegen generate -p local"])
    over = ours - bare
    print(f"\nimagegen overhead: {over * 1000:+.0f} ms = {over / bare * 100:+.1f}% of the bare "
          f"script, {over / (bare - imp) * 100:+.1f}% of its work after imports (target <= 5%)")


if __name__ == "__main__":
    main()
