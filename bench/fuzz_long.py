"""The fuzz suite, deeper: every Hypothesis test in tests/test_fuzz_*.py with
EXAMPLES examples each (100,000 by default) instead of the CI counts.

    .venv/bin/python bench/fuzz_long.py [--examples N] [--jobs J] [-k EXPR]

Each test runs in its own pytest process (J at a time); the table at the end gives,
per parser, the examples run, the outcome and the time. Exit 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAILURES = Path(os.environ.get("FUZZ_FAILURES", "/tmp/imagegen-fuzz-failures.log"))


def collect(expr: str | None) -> list[str]:
    args = [sys.executable, "-m", "pytest", "--collect-only", "-p", "no:cacheprovider",
            *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_fuzz_*.py"))]
    if expr:
        args += ["-k", expr]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "::" in line]


def run_one(test: str, examples: int) -> tuple[str, int, int, str, float]:
    env = dict(os.environ, IMAGEGEN_FUZZ_EXAMPLES=str(examples))
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-p", "no:warnings", "--hypothesis-show-statistics", test],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.monotonic() - started
    counts = re.findall(r"(\d+) passing, (\d+) failing, and (\d+) invalid", r.stdout)
    passing = sum(int(c[0]) for c in counts)
    failing = sum(int(c[1]) for c in counts)
    status = "ok" if r.returncode == 0 else "FAILED"
    if r.returncode != 0:
        with open(FAILURES, "a") as log:
            log.write(f"==== {test}\n{r.stdout[-20000:]}\n{r.stderr[-5000:]}\n")
    return test, passing, failing, status, took


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=100_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("-k", dest="expr")
    a = ap.parse_args()
    tests = collect(a.expr)
    print(f"{len(tests)} fuzz tests, {a.examples} examples each, {a.jobs} at a time",
          flush=True)
    rows = []
    with ThreadPoolExecutor(a.jobs) as pool:
        for row in pool.map(lambda t: run_one(t, a.examples), tests):
            rows.append(row)
            test, passing, failing, status, took = row
            print(f"{status:6} {passing:>8} passing {failing:>3} failing {took:8.1f} s  {test}",
                  flush=True)
    failed = [r for r in rows if r[3] != "ok"]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} ok; "
          f"{sum(r[1] for r in rows)} examples in all")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
