"""`imagegen models list|pull|rm`: the local provider's models in huggingface_hub's
cache (providers/local_cache.py does the work; this prints)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from imagegen_cli.cli.console import note, out
from imagegen_cli.errors import UsageError

app = typer.Typer(help="The local provider's downloaded models (the Hugging Face cache).",
                  no_args_is_help=True, rich_markup_mode=None)

JSON = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


@app.command("list")
def list_(json_out: JSON = False) -> None:
    """What is downloaded: size, last used, licence where its card says."""
    from imagegen_cli.providers.local_cache import list_models

    models = list_models()
    if json_out:
        out(json.dumps({"models": [m.to_json() for m in models]}, ensure_ascii=False))
        return
    if not models:
        note("no models downloaded (`imagegen models pull MODEL` fetches one)")
        return
    for m in models:
        used = m.last_used.strftime("%Y-%m-%d") if m.last_used else "-"
        out(f"{m.repo}\t{_size(m.size)}\t{used}\t{m.license or '-'}")


@app.command("pull")
def pull(model: Annotated[str, typer.Argument(metavar="MODEL", help="A hub id.")],
         json_out: JSON = False,
         quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress.")] = False,
         ) -> None:
    """Download the files MODEL's pipeline loads (safetensors only), with progress."""
    from imagegen_cli.providers.local_cache import pull as fetch

    folder = fetch(model, quiet=quiet)
    out(json.dumps({"model": model, "path": str(folder)}) if json_out else str(folder))


@app.command("rm")
def rm(model: Annotated[str, typer.Argument(metavar="MODEL", help="A hub id.")],
       yes: Annotated[bool, typer.Option("-y", "--yes", help="Do not ask.")] = False,
       json_out: JSON = False) -> None:
    """Delete MODEL from the cache (asks first unless --yes)."""
    from imagegen_cli.providers.local_cache import find, remove

    found = find(model)
    if not yes:
        if sys.stdin is None or not sys.stdin.isatty():
            raise UsageError(f"Removing {found.repo} ({_size(found.size)}) needs --yes when "
                             "nobody is there to answer")
        if not typer.confirm(f"Remove {found.repo} ({_size(found.size)})?", err=True):
            raise typer.Exit(1)
    gone = remove(model)
    out(json.dumps({"removed": gone.repo, "size_bytes": gone.size}) if json_out
        else f"removed {gone.repo} ({_size(gone.size)})")
