"""`imagegen info FILE...`: what an image carries (ours, or an A1111 `parameters` text)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from imagegen_cli.cli.console import err, out, warn
from imagegen_cli.errors import UsageError

# Shown in this order, with these labels.
LABELS = [
    ("prompt", "prompt"), ("negative_prompt", "negative prompt"),
    ("revised_prompt", "revised prompt"), ("seed", "seed"), ("steps", "steps"),
    ("guidance", "guidance"), ("sampler", "sampler"), ("size", "size"), ("model", "model"),
    ("provider", "provider"), ("request_id", "request id"), ("quality", "quality"),
    ("style", "style"), ("background", "background"), ("generator", "generator"),
]


def describe(path: Path) -> dict[str, Any]:
    """One file's report; UsageError for a file that is not an image."""
    from imagegen_cli.files import images
    from imagegen_cli.files.metadata.read import read as read_metadata

    data = images.read_image_file(path)
    got = read_metadata(data)
    for text in got["notes"]:
        warn(f"{path}: {text}")
    try:
        width, height = images.dimensions(data)
    except ValueError:
        raise UsageError(f"{path} is a damaged {got['format']} image") from None
    sidecar = path.with_suffix(".json")
    return {"path": str(path), "format": got["format"], "width": width, "height": height,
            "ai_generated": got["ai_generated"], "source": got["source"],
            "metadata": got["fields"],
            # The --sidecar file beside it (the whole text when a JPEG's copy was cut).
            "sidecar": str(sidecar) if sidecar.is_file() else None}


def _human(report: dict[str, Any]) -> str:
    fields = report["metadata"]
    head = f"{report['path']}: {report['format'].upper()} {report['width']}x{report['height']}"
    if not fields and not report["ai_generated"]:
        beside = (f"; its sidecar {report['sidecar']} may hold them: pass that to --from"
                  if report.get("sidecar") else "")
        return head + f"\n  no metadata (neither imagegen's nor AUTOMATIC1111 parameters){beside}"
    lines = [head]
    width = max(len(label) for _, label in LABELS) + 1
    for key, label in LABELS:
        value = fields.get(key)
        if value is None or value == "":
            continue
        text = str(value).replace("\n", "\n" + " " * (width + 3))
        lines.append(f"  {label + ':':<{width}} {text}")
    mark = "yes (IPTC DigitalSourceType: trainedAlgorithmicMedia)" if report["ai_generated"] \
        else "not marked"
    lines.append(f"  {'AI-generated:':<{width}} {mark}")
    source = {"imagegen": "imagegen metadata", "a1111": "AUTOMATIC1111 parameters"}.get(
        report["source"] or "", "none")
    lines.append(f"  {'read from:':<{width}} {source}")
    if report.get("sidecar"):
        lines.append(f"  {'sidecar:':<{width}} {report['sidecar']} (the same metadata as "
                     "JSON: `imagegen generate --from` takes it too)")
    return "\n".join(lines)


def info(
    files: Annotated[list[Path], typer.Argument(help="Images (PNG, JPEG, WebP).",
                                                metavar="FILE...")],
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON array, one object "
                                           "per file.")] = False,
) -> None:
    """Show the prompt and settings an image carries (imagegen's or AUTOMATIC1111's)."""
    import json

    reports: list[dict[str, Any]] = []
    failed: UsageError | None = None
    for path in files:
        try:
            reports.append(describe(path))
        except UsageError as exc:
            failed = exc
            if len(files) > 1:
                err(str(exc), prefix="error")
            continue
        if not json_out:
            out(_human(reports[-1]))
    if json_out:
        out(json.dumps(reports, indent=2, ensure_ascii=False))
    if failed is not None:
        if len(files) > 1:
            raise typer.Exit(int(failed.exit_code))
        raise failed


def register(app: typer.Typer) -> None:
    app.command("info")(info)
