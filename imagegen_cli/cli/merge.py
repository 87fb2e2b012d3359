"""`imagegen batch --merge A.ndjson B.ndjson ...`: the shards' NDJSON as one manifest.

Records are ordered by input line and image index; an image reported twice
appears once (the latest made, never a re-run's skipped copy of it). A job's
failure stays, beside any images it wrote first (a half-failed job is no whole
one), unless a later run made the rest of its images without failing again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imagegen_cli.cli.console import out
from imagegen_cli.engine.records import lines
from imagegen_cli.errors import UsageError
from imagegen_cli.files import jsontext


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
            rec = _record(name, i, line)
            rid = str(rec["id"])
            if "error" in rec:
                failures[rid] = rec
            else:
                # Runs appended in order (`>> manifest`): the latest image made wins (a
                # redone file's new path); a re-run's skipped copy never hides one.
                key = (rid, rec.get("index") or 0)
                if not (rec.get("skipped") and key in images):
                    images[key] = rec
                if not rec.get("skipped"):
                    # Made after the job's failure: a later run redid it (a job's own
                    # images come before its failure; a re-run that failed again ends
                    # in a failure of its own).
                    failures.pop(rid, None)
    rows = list(images.values()) + list(failures.values())

    def order(rec: dict[str, Any]) -> tuple[int, str, bool, int]:
        # (a job's failure after the images it wrote)
        return (rec.get("line") or 0, str(rec["id"]), "error" in rec, rec.get("index") or 0)

    for rec in sorted(rows, key=order):
        out(json.dumps(rec, ensure_ascii=False))


def _record(name: str, number: int, line: str) -> dict[str, Any]:
    """Line NUMBER of NAME as a record: an object with an id, and a whole number for
    `index` and `line` where it has them; else exit 2 naming the line and why."""
    def bad(why: str) -> UsageError:
        return UsageError(f"{name}, line {number}: not an imagegen NDJSON record ({why}): "
                          "pass the output of `imagegen batch --json`")

    try:
        rec = jsontext.loads(line)
    except ValueError as exc:
        raise bad(jsontext.why(exc)) from None
    if not isinstance(rec, dict):
        raise bad(f"a JSON {type(rec).__name__}, not an object")
    rid = rec.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise bad("no id" if rid is None else f"id {_short(rid)} is not a string or integer")
    for field in ("index", "line"):
        value = rec.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            raise bad(f"{field} {_short(value)} is not a whole number")
    return rec


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
