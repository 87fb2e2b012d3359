#!/usr/bin/env python3
"""What pricing adds to settling a job: the table lookup and the estimate, per job
(a batch of 10,000 records settles 10,000 of them), and the table's first load.

    .venv/bin/python bench/bench_costs.py [--jobs 10000]

Nothing is sent anywhere: this is pure CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10_000)
    args = ap.parse_args()

    from imagegen_cli.pricing import lookup as prices
    from imagegen_cli.settings.provider import ProviderConfig
    from imagegen_cli.types import ImageRequest

    t0 = time.perf_counter()
    prices.table()
    load_ms = (time.perf_counter() - t0) * 1000
    pcfg = ProviderConfig("openai", "openai", "https://api.openai.com/v1")
    gw = ProviderConfig("gw", "openai", "https://gw.example/v1",
                        prices={"*": {"per_image": {"1024x1024": {"low": 0.01}, "*": 0.2}}})
    req = ImageRequest(prompt="a fox", model="gpt-image-1", size="1024x1024", quality="high")
    for label, cfg in (("table entry", pcfg), ("config entry", gw)):
        t0 = time.perf_counter()
        for _ in range(args.jobs):
            p = prices.lookup(cfg, "gpt-image-1")
            prices.estimate(p, req, [1])
        us = (time.perf_counter() - t0) / args.jobs * 1e6
        print(f"lookup + estimate ({label}): {us:.1f} us per job, "
              f"{us * args.jobs / 1e6:.3f} s for {args.jobs} jobs")
    print(f"price table first load: {load_ms:.2f} ms")


if __name__ == "__main__":
    main()
