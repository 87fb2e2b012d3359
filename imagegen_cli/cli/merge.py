"""`imagegen batch --merge A.ndjson B.ndjson ...`: the shards' NDJSON as one manifest.

Records are ordered by input line and image index; an image reported twice
appears once (the latest made, never a re-run's skipped copy of it), and a
failure is dropped when a later run made that job's images.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imagegen_cli.cli.console import out
from imagegen_cli.engine.records import lines
from imagegen_cli.errors import UsageError


def merge(files: list[str]) -> None:

    if not files:
        raise UsageError("--merge needs the NDJSON files to join")
    images: dict[tuple[str, int], dict[str, Any]] = {}
    failures: dict[str, dict[str, Any]] = {}
    for name in files:
        try:
            text = Path(name).read_bytes().decode("utf-8")
        except OSError as exc:
            raise UsageError(f"Cannot read {name}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise UsageError(f"Cannot read {name}: {exc}") from None
        for i, line in lines(text):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                rid = str(rec["id"])
            except (ValueError, KeyError, TypeError):
                raise UsageError(f"{name}, line {i}: not an imagegen NDJSON record "
                                 "(pass the output of `imagegen batch --json`)") from None
            if "error" in rec:
                failures[rid] = rec
            else:
                # Runs appended in order (`>> manifest`): the latest image made wins (a
                # redone file's new path); a re-run's skipped copy never hides one.
                key = (rid, int(rec.get("index") or 0))
                if not (rec.get("skipped") and key in images):
                    images[key] = rec
    done = {rid for rid, _ in images}
    rows = list(images.values()) + [f for rid, f in failures.items() if rid not in done]

    def order(rec: dict[str, Any]) -> tuple[int, str, int]:
        line = rec.get("line")
        return (line if isinstance(line, int) else 0, str(rec["id"]), int(rec.get("index") or 0))

    for rec in sorted(rows, key=order):
        out(json.dumps(rec, ensure_ascii=False))
