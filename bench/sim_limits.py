#!/usr/bin/env python3
"""The real `Gate` (imagegen_cli/transport/limits.py) driven by simulated workers against a
simulated rate-limited provider, on a virtual clock: a minute of batch in a fraction
of a second, the same on a busy machine as on an idle one.

    .venv/bin/python bench/sim_limits.py [--rpm 120] [--burst 1] [--jobs 120] [-j 16]
                                         [--latency 0.5] [--after ceil|ms|window]
                                         [--runs 5] [--trace]

The simulation is tests/gate_sim.py: a token bucket of RPM a minute holding BURST
seconds of them (or with --after window a fixed one-minute window) answering 429 with
Retry-After in whole seconds (ceil) or exact (ms). Prints the makespan as a share of
JOBS / limit (as bench_batch.py counts it) and of the best any client could do, the
429s and the failed jobs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.gate_sim import simulate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rpm", type=float, default=120)
    ap.add_argument("--burst", type=float, default=1.0, help="seconds of requests held")
    ap.add_argument("--jobs", type=int, default=120)
    ap.add_argument("-j", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--after", choices=["ceil", "ms", "window"], default="ceil")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--trace", action="store_true", help="print each 429 and the gate then")
    args = ap.parse_args()
    # As bench_batch.py counts it: jobs / the limit (or, where -j cannot reach the limit,
    # the latency-bound time).
    ideal = max(args.jobs / (args.rpm / 60), math.ceil(args.jobs / args.j) * args.latency)
    # The best any client could do: the whole burst at once, then the limit.
    if args.after == "window":
        best = (math.ceil(args.jobs / args.rpm) - 1) * 60 + args.latency
    else:
        best = (args.jobs - max(1.0, args.burst * args.rpm / 60)) / (args.rpm / 60) + args.latency
    best = max(best, math.ceil(args.jobs / args.j) * args.latency)
    shares: list[float] = []
    effs: list[float] = []
    fails: list[int] = []
    limits: list[int] = []
    for _ in range(args.runs):
        span, limited, failed, _ = simulate(args)
        fails.append(failed)
        limits.append(limited)
        shares.append(ideal / span)
        effs.append(best / span)
        print(f"{args.rpm:g} rpm, {args.jobs} jobs -j {args.j}, {args.after}: {span:.1f} s "
              f"-> {ideal / span:.1%} of the limit; {best / span:.1%} of the best "
              f"({best:.1f} s); {limited} 429s, {failed} failed")
    print(f"limit share mean {statistics.mean(shares):.1%} worst {min(shares):.1%}; "
          f"of the best mean {statistics.mean(effs):.1%} worst {min(effs):.1%}; "
          f"429s mean {statistics.mean(limits):.0f}; failed {max(fails)}")


if __name__ == "__main__":
    main()
