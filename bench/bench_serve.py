#!/usr/bin/env python3
"""`imagegen serve` under 200 concurrent clients vs `imagegen batch` on the same jobs,
both to the loopback fake answering each request after 0.5 s with a 1024x1024 PNG
(~1.4 MiB), at -j 16:

    .venv/bin/python bench/bench_serve.py [--requests 200] [--jobs 16] [--format b64_json]

1. `imagegen batch` of N prompts at -j J: wall time, peak RSS.
2. `imagegen serve -j J`, N requests sent at once (httpx, one connection each,
   response_format b64_json: each answer carries the image): wall time from the first
   request out to the last answer in, latency p50/p99 per request, the server's peak RSS
   (VmHWM, before SIGTERM), and throughput as a ratio of the batch's.

The fake (bench_batch.py's) and the clients run in processes of their own, so their
CPU and memory stay out of the server's figures (the machine's cores are shared).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import bench_batch as bb  # noqa: E402 - the fake and the timing helpers

TOKEN = "bench-token-123456"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def clients(url: str, n: int, fmt: str) -> tuple[float, list[float], int]:
    import httpx

    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def one(i: int) -> tuple[float, int]:
            t0 = time.perf_counter()
            r = await client.post(url + "/v1/images/generations",
                                  headers={"authorization": f"Bearer {TOKEN}"},
                                  json={"model": "openai/gpt-image-2", "response_format": fmt,
                                        "prompt": f"a lighthouse at dawn, study {i}"})
            return time.perf_counter() - t0, r.status_code

        t0 = time.perf_counter()
        got = await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - t0
    failed = sum(1 for _, status in got if status != 200)
    return wall, [lat for lat, _ in got], failed


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--format", default="b64_json", choices=["b64_json", "url"])
    args = ap.parse_args()
    n, j = args.requests, args.jobs
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "imagegen_cli")],
                   check=True)
    work = Path(tempfile.mkdtemp(prefix="imagegen-bench-serve-"))
    image = bb.image_png()
    fake = bb.Fake(image)
    bb.fakes.append(fake)
    try:
        env = bb.env_for(fake, work)
        imagegen = str(bb.BIN / "imagegen")
        prompts = work / "prompts.txt"
        prompts.write_text("".join(f"a lighthouse at dawn, study {i}\n" for i in range(n)))
        ideal = n / j * bb.DELAY
        print(f"fake: {bb.DELAY} s per request, 1024x1024 PNG of {len(image) / 2**20:.2f} "
              f"MiB; {os.cpu_count()} CPUs; {n} jobs at -j {j} (ideal {ideal:.1f} s)")

        wall_b, rss_b, _ = bb.run([imagegen, "batch", str(prompts), "-j", str(j), "-q",
                                   "-m", "gpt-image-2", "-o", str(work / "batch") + "/"],
                                  env, work)
        print(f"batch: {wall_b:.2f} s, {n / wall_b:.1f} img/s, peak RSS "
              f"{rss_b / 1024:.0f} MiB")

        port = free_port()
        proc = subprocess.Popen(
            [imagegen, "serve", "-q", "--port", str(port), "--token", TOKEN, "-j", str(j),
             "-o", str(work / "serve")], env=env, cwd=work, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        wait_up(url)
        wall_s, lats, failed = asyncio.run(clients(url, n, args.format))
        rss_s = peak_rss(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise SystemExit(f"serve exited {proc.returncode}: {err.decode()}")
        print(f"serve ({args.format}): {wall_s:.2f} s, {n / wall_s:.1f} img/s, failed "
              f"{failed}; latency p50 {pct(lats, 50):.2f} s, p99 {pct(lats, 99):.2f} s, "
              f"mean {statistics.fmean(lats):.2f} s; peak RSS {rss_s / 1024:.0f} MiB")
        print(f"serve took {wall_s / wall_b:.2f}x the batch's time "
              f"(serve at {wall_b / wall_s:.0%} of batch throughput)")
    finally:
        fake.stop()


def peak_rss(pid: int) -> int:
    """The process's peak resident set (KiB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def wait_up(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("serve did not start")


if __name__ == "__main__":
    main()
