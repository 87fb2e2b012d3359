#!/usr/bin/env python3
"""imagegen's local provider against a bare diffusers script: same tiny model,
same steps and size, runs interleaved in one process tree.

    .venv/bin/python bench/bench_local.py [--runs 5] [--steps 20] [--size 256]
    .venv/bin/python bench/bench_local.py --vae [--vae-size 512] [--runs 3]
    .venv/bin/python bench/bench_local.py --sd-turbo [--dtype bfloat16] [--runs 3]

Reports each median wall time, the import both pay (torch + diffusers), and
imagegen's overhead: (imagegen - bare) / bare, and the same excluding imports.

--vae times what --fast-vae and --dtype change, on this CPU: decoding one
VAE-SIZE² latent with sd-turbo's full AutoencoderKL (its vae/config.json) against
TAESD (diffusers' AutoencoderTiny defaults are TAESD's), each built from its config
with random weights (the work is the same as with the real ones; nothing is
downloaded), in float32 and bfloat16. --sd-turbo times the whole 1-step image the
same way (the full sd-turbo pipeline from bench/configs/sd-turbo.json), with its
decoder and with TAESD.
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


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the child's own: steady when other
    work shares the machine, which wall time is not)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd[:4])}")
    return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime


# stabilityai/sd-turbo vae/config.json (the SD 2.1 VAE).
SD_VAE = {"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
          "latent_channels": 4, "norm_num_groups": 32, "sample_size": 768,
          "down_block_types": ["DownEncoderBlock2D"] * 4,
          "up_block_types": ["UpDecoderBlock2D"] * 4, "scaling_factor": 0.18215}


def vae_figures(size: int, runs: int) -> None:
    import warnings

    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny
    from diffusers.utils import logging as dlog

    dlog.set_verbosity_error()  # "modules that should be kept in float32: []"
    warnings.filterwarnings("ignore")

    from imagegen_cli.providers.local_load import cpu_has_bf16

    torch.manual_seed(0)
    decoders = {"AutoencoderKL (sd-turbo)": AutoencoderKL(**SD_VAE).eval(),
                "AutoencoderTiny (TAESD)": AutoencoderTiny().eval()}
    latents = torch.randn(1, 4, size // 8, size // 8)
    print(f"decoding one {size}x{size} latent, {torch.get_num_threads()} threads, "
          f"bf16 instructions: {cpu_has_bf16()}; median CPU seconds of {runs}\n")
    print("| decoder | float32 CPU s | bfloat16 CPU s |\n|---|---|---|")
    med: dict[tuple[str, str], float] = {}
    for name, vae in decoders.items():
        row = []
        for dtype in (torch.float32, torch.bfloat16):
            v = vae.to(dtype)
            x = latents.to(dtype)
            times = []
            with torch.inference_mode():
                v.decode(x)  # warm
                for _ in range(runs):
                    # CPU seconds (all threads): steady under other load, unlike wall
                    t0 = time.process_time()
                    v.decode(x)
                    times.append(time.process_time() - t0)
            med[name, str(dtype)] = statistics.median(times)
            row.append(f"{med[name, str(dtype)]:.3f}")
        print(f"| {name} | {' | '.join(row)} |")
    full, tiny = (med[k, "torch.float32"] for k in decoders)
    full_bf, tiny_bf = (med[k, "torch.bfloat16"] for k in decoders)
    print(f"\n--fast-vae: decode {full / tiny:.1f}x faster in float32, {full_bf / tiny_bf:.1f}x "
          f"in bfloat16; bfloat16 vs float32: {full / full_bf:.2f}x (full), "
          f"{tiny / tiny_bf:.2f}x (tiny)")


def sd_turbo_image(size: int, runs: int, dtype_name: str) -> None:
    """One 1-step sd-turbo image, the full pipeline (from bench/configs/sd-turbo.json,
    random weights) with its own decoder and with TAESD (--fast-vae)."""
    import warnings

    import torch
    from diffusers import AutoencoderTiny
    from diffusers.utils import logging as dlog

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_gpu import pipeline

    dlog.set_verbosity_error()
    warnings.filterwarnings("ignore")
    dtype = getattr(torch, dtype_name)
    pipe, _ = pipeline("sd-turbo", "cpu", dtype_name)
    pipe.set_progress_bar_config(disable=True)
    full_vae = pipe.vae
    tiny_vae = AutoencoderTiny().to(dtype)
    med = {}
    for name, vae in (("full VAE", full_vae), ("--fast-vae (TAESD)", tiny_vae)):
        pipe.vae = vae
        times = []
        for i in range(runs + 1):  # the first is a warm-up
            t0 = time.process_time()  # CPU seconds, all threads
            pipe(prompt="a red fox", num_inference_steps=1, guidance_scale=0.0, width=size,
                 height=size, generator=torch.Generator("cpu").manual_seed(i))
            times.append(time.process_time() - t0)
        med[name] = statistics.median(times[1:])
        print(f"sd-turbo {size}x{size}, 1 step, {dtype_name}, {name}: {med[name]:.2f} CPU s "
              f"(median of {runs})")
    full, tiny = med.values()
    print(f"--fast-vae: the whole image {full / tiny:.2f}x faster")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--vae", action="store_true", help="time the decoders and dtypes instead")
    ap.add_argument("--vae-size", type=int, default=512)
    ap.add_argument("--sd-turbo", action="store_true",
                    help="time a 1-step sd-turbo image (full size, random weights), with "
                    "and without --fast-vae")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    if args.sd_turbo:
        sd_turbo_image(args.vae_size, args.runs, args.dtype)
        return
    if args.vae:
        vae_figures(args.vae_size, args.runs)
        return

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
    wall: dict[str, list[float]] = {k: [] for k in cmds}
    cpu: dict[str, list[float]] = {k: [] for k in cmds}
    for cmd in cmds.values():
        timed(cmd, env)  # warm caches
    for _ in range(args.runs):
        for name, cmd in cmds.items():
            w, c = timed(cmd, env)
            wall[name].append(w)
            cpu[name].append(c)
    print(f"tiny SD pipeline, {args.steps} steps, {args.size}x{args.size}, "
          f"{args.runs} interleaved runs, medians (CPU: user + system seconds)\n")
    print("| command | wall s | min wall s | CPU s |\n|---|---|---|---|")
    for k in cmds:
        print(f"| {k} | {statistics.median(wall[k]):.3f} | {min(wall[k]):.3f} | "
              f"{statistics.median(cpu[k]):.3f} |")
    for what, table in (("CPU", cpu), ("wall", wall)):
        imp, bare, ours = (statistics.median(table[k]) for k in cmds)
        over = ours - bare
        print(f"\nimagegen overhead ({what}): {over * 1000:+.0f} ms = {over / bare * 100:+.1f}% of "
              f"the bare script, {over / (bare - imp) * 100:+.1f}% of its work after imports "
              "(target <= 5%)")


if __name__ == "__main__":
    main()
