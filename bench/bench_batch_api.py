#!/usr/bin/env python3
"""`imagegen batch --batch-api` at scale, against a fake that completes at once:

    .venv/bin/python bench/bench_batch_api.py [--records 10000] [--peer 100]

For RECORDS prompts and for PEER prompts (the peer, in the same run):
1. submit: `imagegen batch FILE -o DIR --batch-api --no-wait` (write the JSONL,
   upload, create), wall time;
2. fetch: the same command without --no-wait (poll once, stream the output file to
   disk, index it, write every image through the live writer), wall time and images
   per second;
and each command's peak RSS (ru_maxrss from wait4); with --live, the same batch
run live too, for its peak RSS. The ratio of the two fetches'
peak RSS is the figure: 1.0 is memory flat in the batch's size.

The fake (tests/fakes/openai_batch_fake.py, strict: every line validated, each body
answered by the Images fake's rules, output shuffled) runs in its own process and
answers each image with the same 64x64 PNG, so its CPU stays out of the figures
(its answering is done before the fetch is timed: it builds the output file when the
batch is first polled, in the submit step's process-free gap below).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
KEY = "sk-test-key-123"

SERVE = """
import sys
from tests.fakes.openai_batch_fake import OpenAIBatchFake
from tests.fakes.server import Response, png
fake = OpenAIBatchFake(keep_retired=True).start()
fake.fixed_image = png(64, 64)
fake.steps = 3  # validating -> completed on the first poll
real = fake.server.app

def app(req):
    if req.path == "/v1/__finish":  # answer every batch now (outside the timed fetch)
        for b in fake.batches.values():
            fake._advance(b)
        return Response.json({"batches": len(fake.batches)})
    return real(req)

fake.server.app = app
print(fake.url, flush=True)
sys.stdin.read()
"""


def run(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(seconds, peak RSS in KiB, stderr) of one imagegen command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "imagegen_cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"imagegen {' '.join(args)} exited {proc.returncode}:\n{err}")
    return dt, usage.ru_maxrss, err


def one(n: int, url: str, work: Path, live: bool = False) -> dict[str, float]:
    folder = work / f"n{n}"
    folder.mkdir()
    config = folder / "config.toml"
    config.write_text(f'[providers.openai]\nbase_url = "{url}"\nbatch_api = true\n')
    prompts = folder / "p.txt"
    prompts.write_text("".join(f"a fox number {i}\n" for i in range(n)))
    env = dict(os.environ, OPENAI_API_KEY=KEY, IMAGEGEN_CONFIG=str(config),
               HOME=str(folder), PYTHONPATH=str(ROOT), NO_PROXY="127.0.0.1",
               IMAGEGEN_TODAY="2026-11-23")
    common = ["batch", str(prompts), "-o", str(folder / "out/"), "-m", "gpt-image-1.5",
              "--quality", "low", "--batch-api", "-q"]
    submit_s, submit_rss, _ = run([*common, "--no-wait"], env)
    urllib.request.urlopen(url + "/__finish").read()
    fetch_s, fetch_rss, _ = run([*common, "--poll-interval", "0.1", "-j", "8"], env)
    images = len(list((folder / "out").glob("*.png")))
    assert images == n, (images, n)
    extra = {}
    if live:  # the same batch as live calls, for its peak RSS
        live_s, live_rss, _ = run(["batch", str(prompts), "-o", str(folder / "live/"), "-m",
                                   "gpt-image-1.5", "--quality", "low", "-q", "-j", "8"], env)
        extra = {"live_s": round(live_s, 2), "live_rss_mib": round(live_rss / 1024, 1)}
    return {**extra, "records": n, "submit_s": round(submit_s, 2), "fetch_s": round(fetch_s, 2),
            "images_per_s": round(n / fetch_s, 1), "submit_rss_mib": round(submit_rss / 1024, 1),
            "fetch_rss_mib": round(fetch_rss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--peer", type=int, default=100)
    ap.add_argument("--live", action="store_true",
                    help="also run each batch live (its peak RSS beside the fetch's)")
    opts = ap.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVE], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=dict(os.environ,
                                                               PYTHONPATH=str(ROOT)))
    assert server.stdout is not None
    url = server.stdout.readline().decode().strip()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            peer = one(opts.peer, url, Path(tmp), opts.live)
            big = one(opts.records, url, Path(tmp), opts.live)
    finally:
        server.kill()
    print(json.dumps({"peer": peer, "big": big,
                      "fetch_rss_ratio": round(big["fetch_rss_mib"] / peer["fetch_rss_mib"], 2),
                      "submit_rss_ratio": round(big["submit_rss_mib"] / peer["submit_rss_mib"],
                                                2)}, indent=2))


if __name__ == "__main__":
    main()
