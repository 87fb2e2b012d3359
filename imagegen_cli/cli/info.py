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
    from imagegen_cli.files.metadata import credentials
    from imagegen_cli.files.metadata.read import read as read_metadata
    from imagegen_cli.files.metadata.read import sidecar_of

    data = images.read_image_file(path)
    got = read_metadata(data)
    for text in got["notes"]:
        warn(f"{path}: {text}")
    try:
        width, height = images.dimensions(data)
    except ValueError:
        raise UsageError(f"{path} is a damaged {got['format']} image") from None
    sidecar = path.with_suffix(".json")
    fields, source = got["fields"], got["source"]
    if not fields:
        side = sidecar_of(path)
        if side is not None:
            fields, source = side, "sidecar"
    cred = dict(got["credentials"])
    if cred["present"]:
        # None: c2pa-python (the `c2pa` extra) is not installed
        cred["validation"] = credentials.validate(data, got["format"])
    return {"path": str(path), "format": got["format"], "width": width, "height": height,
            "ai_generated": got["ai_generated"], "source": source,
            "metadata": fields, "content_credentials": cred,
            # The --sidecar file beside it (the whole text when a JPEG's copy was cut).
            "sidecar": str(sidecar) if sidecar.is_file() else None}


def _human(report: dict[str, Any]) -> str:
    fields = report["metadata"]
    cred = report["content_credentials"]
    head = f"{report['path']}: {report['format'].upper()} {report['width']}x{report['height']}"
    if not fields and not report["ai_generated"] and not cred["present"]:
        beside = (f"; its sidecar {report['sidecar']} may hold them: pass that to --from"
                  if report.get("sidecar") else "")
        return head + f"\n  no metadata (neither imagegen's nor AUTOMATIC1111 parameters){beside}" \
            + "\n  content credentials: none"
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
    if cred.get("ai_generated"):
        mark = ("yes (C2PA manifest: "
                f"{str(cred.get('digital_source_type')).rsplit('/', 1)[-1]})")
    lines.append(f"  {'AI-generated:':<{width}} {mark}")
    source = {"imagegen": "imagegen metadata", "a1111": "AUTOMATIC1111 parameters",
              "sidecar": "the .json sidecar beside it"}.get(report["source"] or "", "none")
    lines.append(f"  {'read from:':<{width}} {source}")
    if report.get("sidecar"):
        lines.append(f"  {'sidecar:':<{width}} {report['sidecar']} (the same metadata as "
                     "JSON: `imagegen generate --from` takes it too)")
    lines += _credentials(cred, width)
    return "\n".join(lines)


def _credentials(cred: dict[str, Any], width: int) -> list[str]:
    """The content credentials (C2PA) lines of a report."""
    label = f"  {'credentials:':<{width}} "
    if not cred["present"]:
        return [label + "none (no C2PA manifest)"]
    lines = [label + "C2PA manifest" + (" (damaged)" if cred.get("damaged") else "")]
    pad = " " * (width + 3)
    for key, name in (("claim_generator", "claim generator"), ("title", "title")):
        if cred.get(key):
            lines.append(f"{pad}{name}: {cred[key]}")
    if cred.get("actions"):
        lines.append(f"{pad}actions: {', '.join(cred['actions'])}")
    if cred.get("digital_source_type"):
        lines.append(f"{pad}digital source type: {cred['digital_source_type']}")
    check = cred.get("validation")
    if check is None:
        lines.append(f"{pad}signature: not checked (install imagegen-cli[c2pa] to check it)")
    else:
        verdict = ("valid, trusted" if check["trusted"] else
                   "valid (certificate not on a trust list)" if check["valid"] else "INVALID")
        lines.append(f"{pad}signature: {verdict}")
        for why in check["failures"]:
            if not (check["valid"] and why.startswith("signingCredential.untrusted")):
                lines.append(f"{pad}  {why}")
    return lines


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
