"""`imagegen gallery [FOLDER | --since SPAN | --batch NDJSON]`: one HTML page to look
at a run's images (engine/gallery.py gathers them, files/gallery.py draws it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from imagegen_cli.cli.console import note, out, warn
from imagegen_cli.errors import UsageError


def gallery(
    folder: Annotated[Path | None, typer.Argument(
        metavar="[FOLDER]", help="The images in this folder (default: the current one).")]
    = None,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="SPAN", help="The images the history recorded since: a span "
        "(30m, 12h, 1d, 2w) or a date (2026-11-01).")] = None,
    batch: Annotated[Path | None, typer.Option(
        "--batch", metavar="NDJSON", help="The images a `batch --json` output lists.")]
    = None,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", metavar="FILE", help="Where the page goes (default: gallery.html "
        "in FOLDER, else in the current folder); replaced when there.")] = None,
    title: Annotated[str | None, typer.Option("--title", help="The page's title.")] = None,
) -> None:
    """Write one self-contained HTML page showing images: thumbnails embedded, each with
    its prompt, provider, model, seed, cost and a link to the file; filter by text."""
    from imagegen_cli.engine import gallery as gal
    from imagegen_cli.engine import history

    if sum(x is not None for x in (folder, since, batch)) > 1:
        raise UsageError("gallery shows one source: a FOLDER, --since or --batch")
    if since is not None:
        start = history.since(since)
        cards = gal.from_history(start, os.environ)
        name = f"imagegen: images since {since}"
        page = output or Path("gallery.html")
    elif batch is not None:
        cards = gal.from_ndjson(batch)
        name = f"imagegen: {batch.name}"
        page = output or Path("gallery.html")
    else:
        where = folder or Path(".")
        cards = gal.from_folder(where)
        name = f"imagegen: {where.absolute().name or where.absolute()}"
        page = output or where / "gallery.html"
    written, shown, broken = gal.write(cards, page, title or name)
    if broken:
        warn(f"{broken} of {shown} images could not be decoded: their cards say so")
    if not shown:
        note("no images found: the page says so")
    out(str(written))


def register(app: typer.Typer) -> None:
    app.command("gallery")(gallery)
