"""`imagegen history [TEXT]`, `imagegen history show ID` and `imagegen spend`: what
the history database (engine/history.py) remembers of every image written."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from imagegen_cli.cli.console import note, out
from imagegen_cli.errors import UsageError

SINCE_HELP = "Only images written since: a span (30m, 12h, 7d, 2w) or a date (2026-11-01)."


def history(
    words: Annotated[list[str] | None, typer.Argument(
        metavar="[TEXT]...", help="Words every prompt listed holds (full-text; word* for a "
        "prefix). `show ID` shows one image.")] = None,
    since: Annotated[str | None, typer.Option("--since", metavar="SPAN",
                                              help=SINCE_HELP)] = None,
    provider: Annotated[str | None, typer.Option("--provider", "-p", metavar="NAME",
                                                 help="Only this provider's images.")] = None,
    limit: Annotated[int, typer.Option("-n", metavar="N", help="At most N images, newest "
                                       "first (default 20).")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object per line "
                                           "per image.")] = False,
) -> None:
    """List the images imagegen wrote, newest first, searching their prompts."""
    from imagegen_cli.engine import history as hist

    words = words or []
    if len(words) == 2 and words[0] == "show" and words[1].isdigit():
        _show(int(words[1]), json_out)
        return
    if limit < 0:
        raise UsageError(f"-n {limit}: pass 0 or more")
    start = hist.since(since)
    store = hist.reader(os.environ)
    rows = store.search(" ".join(words) or None, since=start, provider=provider,
                        limit=limit) if store is not None else []
    if store is None:
        note(_none_yet())
    for row in rows:
        out(json.dumps(row, ensure_ascii=False) if json_out else _line(row))


def _none_yet() -> str:
    from imagegen_cli.engine import history as hist

    if not hist.enabled(None, os.environ):
        return f"history is off ({hist.ENV_SWITCH}=0): nothing recorded"
    return "no image recorded yet"


def _line(row: dict[str, Any]) -> str:
    cost = f"${row['cost_usd']:.4f}" if row["cost_usd"] is not None else "$?"
    prompt = row["prompt"].replace("\n", " ")
    if len(prompt) > 60:
        prompt = prompt[:59] + "…"
    return (f"{row['id']:>6}  {row['time'].replace('T', ' ')}  {row['provider']}/"
            f"{row['model']}  {cost}  {prompt}  {row['path']}")


def _show(image_id: int, json_out: bool) -> None:
    from imagegen_cli.engine import history as hist

    store = hist.reader(os.environ)
    row = store.get(image_id) if store is not None else None
    if row is None:
        raise UsageError(f"no image {image_id} in the history: `imagegen history` lists them")
    if json_out:
        out(json.dumps(row, indent=2, ensure_ascii=False))
        return
    shown = [("id", row["id"]), ("time", row["time"]), ("prompt", row["prompt"]),
             ("negative prompt", row["negative_prompt"] or None),
             ("provider", row["provider"]), ("model", row["model"]), ("seed", row["seed"]),
             ("size", f"{row['width']}x{row['height']}"), ("format", row["format"]),
             ("cost", None if row["cost_usd"] is None
              else f"${row['cost_usd']:.4f} ({row['cost_source']})"),
             ("path", row["path"]), ("sha256", row["sha256"]), ("job", row["job"]),
             ("run", row["run"]), ("run exit status", row["run_status"]),
             ("options", json.dumps(row["options"], ensure_ascii=False) or None)]
    width = max(len(k) for k, _ in shown) + 1
    for key, value in shown:
        if value is not None and value != "":
            text = str(value).replace("\n", "\n" + " " * (width + 1))
            out(f"{key + ':':<{width}} {text}")
    out(f"{'again:':<{width}} imagegen generate --from {row['id']}")


def spend(
    since: Annotated[str | None, typer.Option("--since", metavar="SPAN",
                                              help=SINCE_HELP + " Default 30d.")] = "30d",
    by: Annotated[str, typer.Option("--by", metavar="provider|model|day",
                                    help="Group by provider (default), model or day.")]
    = "provider",
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """What the images imagegen wrote cost, from the history."""
    from imagegen_cli.engine import history as hist

    if by not in ("provider", "model", "day"):
        raise UsageError(f"--by {by}: pass provider, model or day")
    start = hist.since(since)
    store = hist.reader(os.environ)
    rows = store.spend(since=start, by=by) if store is not None else []
    total = round(sum(r["cost_usd"] for r in rows), 6)
    unknown = sum(r["unknown"] for r in rows)
    images = sum(r["images"] for r in rows)
    if json_out:
        out(json.dumps({"since": start.isoformat() if start else None, "by": by,
                        "rows": rows, "total_usd": total, "images": images,
                        "unknown_price_images": unknown}, indent=2, ensure_ascii=False))
        return
    if store is None:
        note(_none_yet())
    width = max([len(str(r[by])) for r in rows] + [5])
    for r in rows:
        extra = f"  ({r['unknown']} of unknown price, not counted)" if r["unknown"] else ""
        out(f"{str(r[by]):<{width}}  {r['images']:>6} images  ${r['cost_usd']:.4f}{extra}")
    out(f"{'total':<{width}}  {images:>6} images  ${total:.4f}"
        + (f"  ({unknown} of unknown price, not counted)" if unknown else ""))


def register(app: typer.Typer) -> None:
    app.command("history")(history)
    app.command("spend")(spend)
