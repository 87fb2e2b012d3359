#!/usr/bin/env python3
"""`imagegen batch` against the loopback fake answering each request after 0.5 s
with a 1024x1024 PNG, measured in one run:

    .venv/bin/python bench/bench_batch.py [--prompts 200] [--jobs 16] [--rpm-jobs 120]
                                          [--no-xargs] [--no-local] [--only rpm]
                                          [--limit 120] [--no-rpm-flag]

1. N prompts at -j J: wall time vs the latency-bound ideal (N/J x 0.5 s), and vs
   `xargs -P J -n 1 imagegen generate` on the same prompts.
2. Peak RSS of that batch vs a one-image `imagegen generate`.
3. Re-running the finished batch: requests sent (the fake's log) and wall time.
4. The fake limiting to 120 requests a minute (a token bucket refilling 2 a second,
   holding 2; 429 + Retry-After in whole seconds beyond it): failed jobs, and
   throughput as a share of the limit. `--only rpm` runs this phase alone; `--limit`
   sets the fake's requests a minute (and the bucket to one second of them, at least 2),
   `--no-rpm-flag` leaves out the `--rpm` run.
5. Local provider, tiny pipeline, 20 prompts: model loads, and the batch's time vs
   20 x one image's generation time + one load, from `generate --json` timings; both
   in-process from the start of the run, so one load is a one-image generate's total
   less its image (importing torch and diffusers, loading the model, saving).

The fake runs in its own process, so its CPU and memory stay out of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
KEY = "sk-test-key-123"
TIME = shutil.which("time") or "/usr/bin/time"
DELAY = 0.5

SERVE = """
import sys, threading, time, math
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.server import Response
delay, rpm = float(sys.argv[1]), float(sys.argv[2])
import base64
from tests.fakes.server import png
fake = OpenAIFake().start()
# The fake checks each request as strictly as ever, but answers with a tiny image
# whose base64 is then swapped for the big one's, encoded once: its own CPU (base64
# and JSON-encoding a megabyte per answer) would otherwise eat this 2-core machine.
big = base64.b64encode(sys.stdin.buffer.read())
fake.fixed_image = png(8, 8)
small = base64.b64encode(fake.fixed_image)
real = fake.server.app
lock = threading.Lock()
burst = max(2.0, rpm / 60)  # a token bucket holding one second of requests (at least 2)
bucket = {"tokens": burst, "at": time.monotonic()}
stats = {"images": 0, "limited": 0}

def app(req):
    if req.path == "/v1/__stats":
        sent = sum(1 for r in fake.server.requests if not r.path.endswith("__stats"))
        return Response.json({"requests": sent, **stats})
    if rpm > 0 and req.path.endswith("/images/generations"):
        with lock:
            now = time.monotonic()
            rate = rpm / 60
            bucket["tokens"] = min(burst, bucket["tokens"] + (now - bucket["at"]) * rate)
            bucket["at"] = now
            if bucket["tokens"] < 1.0:
                stats["limited"] += 1
                wait = (1.0 - bucket["tokens"]) / rate
                return Response.json({"error": {"message": "Rate limit reached",
                                                "type": "requests", "param": None,
                                                "code": "rate_limit_exceeded"}}, 429,
                                     **{"retry-after": str(max(1, math.ceil(wait)))})
            bucket["tokens"] -= 1.0
    resp = real(req)
    if isinstance(resp.body, bytes):
        resp.body = resp.body.replace(small, big)
    resp.delay = delay
    if resp.status == 200:
        stats["images"] += 1
    return resp

fake.server.app = app
print(fake.url, flush=True)
time.sleep(36000)
"""


def image_png() -> bytes:
    """A 1024x1024 PNG with a photo-like size (~1.4 MiB): a gradient with grain."""
    import io

    from PIL import Image, ImageFilter

    noise = Image.effect_noise((1024, 1024), 40).convert("RGB")
    grad = Image.linear_gradient("L").resize((1024, 1024)).convert("RGB")
    im = Image.blend(grad, noise, 0.35).filter(ImageFilter.SMOOTH)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


class Fake:
    def __init__(self, image: bytes, rpm: float = 0) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SERVE, str(DELAY), str(rpm)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(image)
        self.proc.stdin.close()
        self.url = self.proc.stdout.readline().decode().strip()

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url + "/__stats") as r:  # noqa: S310 - loopback
            return json.loads(r.read())  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def run(cmd: list[str] | str, env: dict[str, str], cwd: Path,
        stdin: bytes | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) of the largest process (GNU time), stderr."""
    if isinstance(cmd, str):
        cmd = ["sh", "-c", cmd]
    fd, rss_file = tempfile.mkstemp()
    os.close(fd)
    t0 = time.perf_counter()
    proc = subprocess.run([TIME, "-q", "-o", rss_file, "-f", "%U %S %M", *cmd], env=env, cwd=cwd,
                          input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    err = proc.stderr.decode()
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {cmd}\n{err}")
    fields = Path(rss_file).read_text().split() or ["0", "0", "0"]
    rss = int(fields[-1])
    CPU[:] = [float(fields[-3]), float(fields[-2])]
    os.unlink(rss_file)
    return wall, rss, err


def env_for(fake: Fake, work: Path) -> dict[str, str]:
    cfg = work / f"config-{fake.url.rsplit(':', 1)[-1].split('/')[0]}.toml"
    cfg.write_text(f'[providers.openai]\nbase_url = "{fake.url}"\n')
    env = {**os.environ, "OPENAI_API_KEY": KEY, "IMAGEGEN_CONFIG": str(cfg),
           "NO_PROXY": "127.0.0.1"}
    env.pop("IMAGEGEN_PROVIDER", None)
    return env


fakes: list[Fake] = []
CPU: list[float] = [0.0, 0.0]  # user, system seconds of the last run()


def main() -> None:
    try:
        _main()
    finally:
        for fake in fakes:
            if fake.proc.poll() is None:
                fake.stop()


def _main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--rpm-jobs", type=int, default=120)
    ap.add_argument("--no-xargs", action="store_true")
    ap.add_argument("--no-local", action="store_true")
    ap.add_argument("--only", choices=["rpm"], help="run only phase 4")
    ap.add_argument("--limit", type=float, default=120, help="the fake's requests a minute")
    ap.add_argument("--no-rpm-flag", action="store_true", help="phase 4 without --rpm")
    args = ap.parse_args()
    imagegen = str(BIN / "imagegen")
    # Byte-compiled as `pip install` leaves a wheel: with PYTHONDONTWRITEBYTECODE set (as
    # on this machine) an editable checkout would compile every module on every start.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "imagegen_cli")],
                   check=True)
    work = Path(tempfile.mkdtemp(prefix="imagegen-bench-batch-"))
    image = image_png()
    n = args.prompts
    prompts = work / "prompts.txt"
    prompts.write_text("".join(f"a lighthouse at dawn, study {i}\n" for i in range(n)))
    lines: list[str] = [f"fake: {DELAY} s per request, 1024x1024 PNG of "
                        f"{len(image) / 2**20:.2f} MiB; {os.cpu_count()} CPUs\n"]

    if args.only != "rpm":
        lines.extend(batch_phases(args, imagegen, work, image, prompts))
    lines.extend(rpm_phase(args, imagegen, work, image))
    if not args.no_local and args.only is None:
        lines.extend(local_bench(work))
    shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))


def batch_phases(args: argparse.Namespace, imagegen: str, work: Path, image: bytes,
                 prompts: Path) -> list[str]:
    n, j = args.prompts, args.jobs
    lines: list[str] = []
    fake = Fake(image)
    fakes.append(fake)
    env = env_for(fake, work)
    _, one_rss, _ = run([imagegen, "generate", "one", "-q", "-o",
                         str(work / "one") + "/"], env, work)
    before = fake.stats()["requests"]
    wall, rss, err = run([imagegen, "batch", str(prompts), "-j", str(j),
                          "-o", str(work / "b") + "/"], env, work)
    cpu = sum(CPU)
    sent = fake.stats()["requests"] - before
    ideal = n / j * DELAY
    lines.append(f"1. batch {n} prompts -j {j}: {wall:.2f} s, ideal {ideal:.2f} s -> "
                 f"{wall / ideal:.2f}x (target <= 1.15x); {sent} requests; CPU {cpu:.1f} s; "
                 f"{err.strip().splitlines()[-1]}")
    if not args.no_xargs:
        xwall, _, _ = run(f"xargs -P {j} -I{{}} {imagegen} generate {{}} -q -o "
                          f"{work / 'x'}/ < {prompts}", env, work)
        lines.append(f"   xargs -P {j} -n 1 imagegen generate: {xwall:.2f} s -> batch is "
                     f"{xwall / wall:.2f}x faster (target >= 2x)")
    lines.append(f"2. peak RSS: batch {rss / 1024:.0f} MiB, one-image generate "
                 f"{one_rss / 1024:.0f} MiB -> {rss / one_rss:.2f}x (target <= 1.25x)")
    before = fake.stats()["requests"]
    rwall, _, _ = run([imagegen, "batch", str(prompts), "-j", str(j),
                       "-o", str(work / "b") + "/", "--json"], env, work)
    lines.append(f"3. re-run: {fake.stats()['requests'] - before} requests, {rwall:.2f} s "
                 "(target: 0 requests, < 1 s)")
    fake.stop()
    return lines


def rpm_phase(args: argparse.Namespace, imagegen: str, work: Path, image: bytes) -> list[str]:
    j, limit = args.jobs, args.limit
    lines: list[str] = []
    limited = Fake(image, rpm=limit)
    fakes.append(limited)
    env = env_for(limited, work)
    rp = work / "rpm.txt"
    rp.write_text("".join(f"rate limited {i}\n" for i in range(args.rpm_jobs)))
    runs: list[tuple[str, list[str]]] = [("no --rpm (429s only)", [])]
    if not args.no_rpm_flag:
        runs.append((f"--rpm {limit:g}", ["--rpm", f"{limit:g}"]))
    for label, extra in runs:
        time.sleep(1.0)  # a fresh bucket for each run
        s0 = limited.stats()
        wall, _, err = run([imagegen, "batch", str(rp), "-j", str(j),
                            "-o", str(work / f"rpm{len(extra)}") + "/", "--force",
                            "--summary", str(work / "s.json"), *extra], env, work)
        s1 = limited.stats()
        summary = json.loads((work / "s.json").read_text())
        rate = summary["done"] / wall * 60
        lines.append(f"4. {limit:g} rpm limit, {args.rpm_jobs} jobs -j {j}, {label}: "
                     f"{summary['failed']} failed, {wall:.1f} s, {rate:.0f} images/min = "
                     f"{rate / limit * 100:.0f}% of the limit (target >= 85%); "
                     f"{s1['limited'] - s0['limited']} 429s")
    limited.stop()
    return lines


def local_bench(work: Path) -> list[str]:
    try:
        from tests.tiny_pipelines import build
    except ImportError:
        return ["5. local: skipped (no diffusers)"]
    sd, _ = build(work / "models")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "IMAGEGEN_CONFIG": str(work / "none.toml")}
    (work / "none.toml").write_text("")
    imagegen = str(BIN / "imagegen")
    common = ["-p", "local", "-m", str(sd), "--steps", "20", "--size", "128x128", "--seed",
              "1", "-q"]

    def one(tag: str) -> tuple[float, float, float]:
        proc = subprocess.run([imagegen, "generate", "a red fox", *common, "--json", "-o",
                               str(work / tag) + "/"], env=env, capture_output=True, check=True)
        rep = json.loads(proc.stdout)
        # total_s: in-process from the start of the run, like the batch's: importing
        # torch and diffusers, loading the model, one image, saving it.
        return (rep["extra"]["load_s"], rep["images"][0]["timings"]["inference_s"],
                rep["timings"]["total_s"])

    # One image before and one after the batch: the machine's load drifts.
    load1, gen1, tot1 = one("l1")
    lp = work / "local.txt"
    lp.write_text("".join(f"a red fox, take {i}\n" for i in range(20)))
    t0 = time.perf_counter()
    proc = subprocess.run([imagegen, "batch", str(lp), *common, "--json", "--summary",
                           str(work / "ls.json"), "-o", str(work / "l20") + "/"], env=env,
                          capture_output=True, check=True)
    wall = time.perf_counter() - t0
    load2, gen2, tot2 = one("l2")
    load, gen, first = (load1 + load2) / 2, (gen1 + gen2) / 2, (tot1 + tot2) / 2
    total = json.loads((work / "ls.json").read_text())["total_s"]
    gens = [json.loads(x)["timings"]["inference_s"] for x in proc.stdout.splitlines()]
    # One load = what a one-image generate spends besides its image's generation:
    # importing torch and diffusers, loading the model, saving.
    setup = first - gen
    ideal = 20 * gen + setup
    own = sum(gens) + setup
    return [f"5. local tiny pipeline (20 steps, 128x128), 20 prompts: one image {gen:.3f} s; "
            f"one load {setup:.3f} s (a one-image generate's {first:.3f} s in-process less its "
            f"image; model load alone {load:.3f} s; means of a run before and after); batch "
            f"{total:.2f} s in-process ({wall:.2f} s wall) vs 20 x {gen:.3f} + {setup:.3f} = "
            f"{ideal:.2f} s -> {total / ideal:.2f}x (target <= 1.1x); against its own images' "
            f"inference times + one load: {total / own:.2f}x"]


if __name__ == "__main__":
    main()
