#!/usr/bin/env python3
"""A long prompt file is read as a stream, and a polite stop wastes nothing paid for:

    .venv/bin/python bench/bench_stream.py [--lines 1000000] [--peer 1000]
                                           [--stops 20] [--stop-prompts 200]

1. Time to first request and peak memory of `imagegen batch FILE` for a file of
   LINES prompts against its peer, a file of PEER prompts, in the same run (the
   ratio is the figure: 1.0 is flat in the input's length). Each batch is stopped
   with SIGTERM once the loopback fake has answered 50 requests, and the process's
   peak RSS (VmHWM) is read just before the stop.
2. Repeat requests over STOPS polite stops: a STOP_PROMPTS-prompt batch is started,
   stopped with SIGTERM after a random number of requests, and re-run, STOPS times,
   then run to the end; requests the fake saw beyond STOP_PROMPTS are images paid for
   twice. Every image is then checked to be present once and whole.

The fake (tests/fakes/openai_fake.py, strict) runs in its own process and answers
each request after 0.2 s with an 8x8 PNG, so its CPU stays out of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
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

SERVE = """
import sys, time
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.server import Response, png
fake = OpenAIFake().start()
fake.fixed_image = png(8, 8)
real = fake.server.app
stats = {"requests": 0, "first": None}

def app(req):
    if req.path == "/v1/__stats":
        return Response.json(stats)
    if req.path == "/v1/__reset":
        stats.update(requests=0, first=None)
        return Response.json(stats)
    if req.path.endswith("/images/generations"):
        stats["requests"] += 1
        if stats["first"] is None:
            stats["first"] = time.time()
    resp = real(req)
    resp.delay = float(sys.argv[1])
    return resp

fake.server.app = app
print(fake.url, flush=True)
time.sleep(36000)
"""


class Fake:
    def __init__(self, delay: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SERVE, str(delay)],
                                     stdout=subprocess.PIPE, cwd=ROOT)
        assert self.proc.stdout
        self.url = self.proc.stdout.readline().decode().strip()

    def get(self, what: str) -> dict[str, float]:
        with urllib.request.urlopen(self.url + "/__" + what) as r:  # noqa: S310 - loopback
            return json.loads(r.read())  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def env_for(fake: Fake, work: Path) -> dict[str, str]:
    cfg = work / "config.toml"
    cfg.write_text(f'[providers.openai]\nbase_url = "{fake.url}"\n')
    env = {**os.environ, "OPENAI_API_KEY": KEY, "IMAGEGEN_CONFIG": str(cfg),
           "NO_PROXY": "127.0.0.1"}
    env.pop("IMAGEGEN_PROVIDER", None)
    return env


def first_request(fake: Fake, env: dict[str, str], work: Path, prompts: Path,
                  answered: int = 50) -> tuple[float, int]:
    """Seconds from start to the fake's first request, and peak RSS (KiB) once ANSWERED
    requests were seen; the batch is then stopped."""
    fake.get("reset")
    out = work / f"out-{prompts.stem}"
    t0 = time.time()
    proc = subprocess.Popen([str(BIN / "imagegen"), "batch", str(prompts), "-o", f"{out}/",
                             "-q", "-j", "4"], env=env, cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = None
    peak = 0
    try:
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise SystemExit(f"batch ended early ({proc.returncode}): {err}")
            peak = max(peak, hwm_kib(proc.pid))
            stats = fake.get("stats")
            if first is None and stats["first"]:
                first = float(stats["first"]) - t0
            if stats["requests"] >= answered:
                break
            if time.time() - t0 > 600:
                raise SystemExit("no progress within 600 s")
            time.sleep(0.02)
        peak = max(peak, hwm_kib(proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    assert first is not None
    return first, peak


def stops(fake: Fake, env: dict[str, str], work: Path, n: int, count: int,
          seed: int = 7) -> tuple[int, int, int]:
    """Requests beyond N over COUNT SIGTERMs and a final run; images present; bad."""
    rnd = random.Random(seed)
    prompts = work / "stops.txt"
    prompts.write_text("".join(f"a lighthouse at dawn, study {i}\n" for i in range(n)))
    out = work / "out-stops"
    fake.get("reset")
    cmd = [str(BIN / "imagegen"), "batch", str(prompts), "-o", f"{out}/", "-q", "-j", "4"]
    for _ in range(count):
        before = fake.get("stats")["requests"]
        at = before + rnd.randint(3, 20)
        proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while proc.poll() is None and fake.get("stats")["requests"] < at:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    done = subprocess.run(cmd, env=env, cwd=work, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise SystemExit(f"final run failed: {done.stderr.decode()}")
    from PIL import Image

    pngs = sorted(out.glob("*.png"))
    bad = 0
    for p in pngs:
        try:
            with Image.open(p) as im:
                im.load()
        except OSError:
            bad += 1
    left = [p for p in out.iterdir() if p.name.endswith((".part", ".tmp"))]
    return int(fake.get("stats")["requests"]) - n, len(pngs), bad + len(left)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--peer", type=int, default=1000)
    ap.add_argument("--stops", type=int, default=20)
    ap.add_argument("--stop-prompts", type=int, default=200)
    args = ap.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "imagegen_cli")],
                   check=True)
    work = Path(tempfile.mkdtemp(prefix="imagegen-bench-stream-"))
    fake = Fake(0.2)
    try:
        env = env_for(fake, work)
        files = {}
        for n in (args.peer, args.lines):
            path = work / f"prompts-{n}.txt"
            with path.open("w") as f:
                for i in range(n):
                    f.write(f"a lighthouse at dawn, study {i}\n")
            files[n] = path
        rows = {n: first_request(fake, env, work, path) for n, path in files.items()}
        (t_peer, m_peer), (t_big, m_big) = rows[args.peer], rows[args.lines]
        size = files[args.lines].stat().st_size / 2**20
        print(f"{args.lines:,} lines ({size:.0f} MiB): first request after {t_big:.2f} s, "
              f"peak RSS {m_big / 1024:.0f} MiB")
        print(f"{args.peer:,} lines (peer): first request after {t_peer:.2f} s, "
              f"peak RSS {m_peer / 1024:.0f} MiB")
        print(f"ratio {args.lines:,} / {args.peer:,}: time to first request "
              f"{t_big / t_peer:.2f}x, peak memory {m_big / m_peer:.2f}x")
        if args.stops:
            extra, present, bad = stops(fake, env, work, args.stop_prompts, args.stops)
            print(f"{args.stops} SIGTERMs during a {args.stop_prompts}-prompt batch: "
                  f"{extra} repeat requests; {present} of {args.stop_prompts} images "
                  f"present, {bad} broken or temp files")
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
