#!/usr/bin/env python3
"""What the history costs, and how fast it answers:

    .venv/bin/python bench/bench_history.py [--images 300] [--rows 1000000]

1. Recording: the writer (engine/save.py `Saver.save`) writes IMAGES 1024x1024 PNG
   images (about 1.5 MB each, as gpt-image answers) into a temp folder, with the
   history off and on, alternating rounds; the figure is the per-image cost of
   recording (on - off, in ms) and the ratio on/off. The bare `Store.add` per row is
   given beside it.
2. Searching: a database of ROWS images (prompts drawn from a 5,000-word vocabulary,
   built once and kept in the temp folder) answers `history TEXT` (the query
   `imagegen history` makes: FTS5 match, newest 20) for words common and rare; the
   figure is the median time of the query, and of the whole `imagegen history
   TEXT` process beside it (Python's start-up included); then the worst cases (a
   filter no row passes) and `spend` over every row.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imagegen_cli.engine.save import SaveOptions, Saver  # noqa: E402
from imagegen_cli.files.history import Entry, Store  # noqa: E402
from imagegen_cli.files.naming import OutputPlan  # noqa: E402
from imagegen_cli.types import GeneratedImage, ImageRequest  # noqa: E402


def _png(seed: int) -> bytes:
    from tests.faults import noisy_png

    return noisy_png(1024, 512, seed)


def recording(images: int, folder: Path) -> None:
    data = _png(1)
    db = folder / "rec.db"
    times: dict[bool, list[float]] = {False: [], True: []}
    inside: list[float] = []  # the recorder's own time, per image
    for rnd in range(6):
        for on in (False, True) if rnd % 2 else (True, False):
            store = Store(db) if on else None

            def timed(entry: Entry, store: Store | None = store) -> None:
                t = time.perf_counter()
                assert store is not None
                store.add(entry)
                inside.append(time.perf_counter() - t)

            out = folder / f"r{rnd}{'on' if on else 'off'}"
            saver = Saver(plan=OutputPlan.from_option(f"{out}/"), provider="openai",
                          model="gpt-image-1", request=ImageRequest(prompt="a red fox "
                          "in the snow, watercolour"), count=images,
                          files=SaveOptions(format="png"),
                          history=timed if store is not None else None)
            t0 = time.perf_counter()
            for i in range(images // 6):
                saver.save(GeneratedImage(index=0, data=data), i + 1)
            times[on].append((time.perf_counter() - t0) / (images // 6))
            if store is not None:
                store.close()
            for p in out.iterdir():
                p.unlink()
    off, on = statistics.median(times[False]), statistics.median(times[True])
    store = Store(folder / "bare.db")
    entry = Entry(time="2026-11-22T10:00:00", prompt="a red fox", negative_prompt=None,
                  provider="openai", model="gpt-image-1", options={"size": "1024x1024"},
                  seed=None, cost_usd=0.04, cost_source="table", path="/x.png",
                  sha256="0" * 64, bytes=1, width=1024, height=1024, format="png")
    store.add(entry)
    t0 = time.perf_counter()
    for _ in range(2000):
        store.add(entry)
    bare = (time.perf_counter() - t0) / 2000
    store.close()
    print(f"recording: write without history {off * 1e3:.2f} ms/image, with "
          f"{on * 1e3:.2f} ms/image (ratio {on / off:.3f}); the recorder inside the "
          f"writer: median {statistics.median(inside) * 1e3:.3f} ms, mean "
          f"{statistics.mean(inside) * 1e3:.3f} ms, p95 "
          f"{sorted(inside)[int(len(inside) * .95)] * 1e3:.3f} ms per image "
          f"(first row of a run, opening the database, included); Store.add alone "
          f"{bare * 1e3:.3f} ms/row")


def build(db: Path, rows: int) -> None:
    rnd = random.Random(7)
    words = [f"w{n}" for n in range(5000)]
    weights = [1 / (n + 1) for n in range(5000)]  # Zipf: a few words common, most rare
    store = Store(db)
    done = 0
    t0 = time.perf_counter()
    while done < rows:
        batch = []
        for _ in range(min(50_000, rows - done)):
            prompt = " ".join(rnd.choices(words, weights, k=12))
            day = 1 + done % 28
            batch.append(Entry(time=f"2026-10-{day:02d}T10:00:00", prompt=prompt,
                               negative_prompt=None, provider="openai", model="gpt-image-1",
                               options={}, seed=None, cost_usd=0.04, cost_source="table",
                               path=f"/img/{done}.png", sha256="0" * 64, bytes=1,
                               width=1024, height=1024, format="png"))
            done += 1
        store.add_many(batch)
    store.close()
    print(f"built {rows:,} rows in {time.perf_counter() - t0:.0f} s "
          f"({db.stat().st_size / 2**20:.0f} MiB)")


def searching(db: Path, rows: int) -> None:
    if not db.exists():
        build(db, rows)
    store = Store(db)
    for text in ("w0", "w1 w2", "w100", "w4999", "w3 w4000", "w12*"):
        samples = []
        for _ in range(9):
            t0 = time.perf_counter()
            got = store.search(text, limit=20)
            samples.append(time.perf_counter() - t0)
        print(f"history {text!r:>12}: {statistics.median(samples) * 1e3:7.2f} ms "
              f"(median of 9; {len(got)} shown)")
    # The worst case: a common word and a filter no row passes (every match is read).
    for text, kw in (("w0", {"provider": "nebula"}), (None, {"provider": "nebula"}),
                     ("w100", {"since": datetime(2026, 12, 1)})):
        t0 = time.perf_counter()
        got = store.search(text, limit=20, **kw)
        print(f"history {text!r} {kw}: {(time.perf_counter() - t0) * 1e3:.1f} ms "
              f"({len(got)} shown; the worst case: no row passes the filter)")
    for by in ("provider", "model", "day"):
        t0 = time.perf_counter()
        store.spend(since=datetime(2026, 9, 1), by=by)
        print(f"spend --by {by} over every row: {(time.perf_counter() - t0) * 1e3:.0f} ms")
    store.close()
    env = dict(os.environ, IMAGEGEN_HISTORY_DB=str(db))
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "imagegen_cli", "history", "w100"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t0)
    print(f"`imagegen history w100` process, start-up included: "
          f"{statistics.median(samples) * 1e3:.0f} ms (median of 5)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, default=None, help="keep the searched database here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        recording(args.images, folder)
        searching(args.db or folder / f"search-{args.rows}.db", args.rows)


if __name__ == "__main__":
    main()
