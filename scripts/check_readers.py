#!/usr/bin/env python3
"""Which third-party reader reads which field of imagegen's metadata, per format.

Not part of the test suite: it needs tools the suite does not install.
    apt-get install libimage-exiftool-perl pngcheck webp
    python -m venv /tmp/readers && /tmp/readers/bin/pip install pillow piexif \\
        sd-prompt-reader sd-parsers sd-geninfo
    /tmp/readers/bin/python scripts/check_readers.py [--json]

Images are made with imagegen's own writer (imagegen_cli.files.metadata.write.embed, as
`generate` does) for three cases: a hosted image (no steps, no sampler), a
local one (steps, sampler, CFG, negative prompt) and a prompt with `,` `:` and
an escape character. Each reader's answer is compared with what was written.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from imagegen_cli.files.metadata import write as metadata

CASES: dict[str, dict[str, Any]] = {
    "hosted": {"prompt": "a lighthouse at dusk", "provider": "openai", "model": "gpt-image-1",
               "size": "64x48", "generator": "imagegen", "quality": "high"},
    "local": {"prompt": "a red fox in snow", "negative_prompt": "blurry", "provider": "local",
              "model": "sd-turbo", "size": "64x48", "seed": 42, "steps": 2, "guidance": 0.0,
              "sampler": "Euler", "generator": "imagegen"},
    "quoted": {"prompt": "fox, snow: dusk", "provider": "nebula",
               "model": "acme/model:v1,beta", "size": "64x48", "seed": 7, "steps": 4,
               "generator": "imagegen"},
    "escape": {"prompt": "fox \x1b[1mbold", "provider": "openai", "model": "gpt-image-1",
               "size": "64x48", "generator": "imagegen"},
}
FIELDS = ("prompt", "negative", "steps", "sampler", "cfg", "seed", "size", "model",
          "ai-mark")


def make(fmt: str, meta: dict[str, Any]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 80, 40)).save(buf, format=fmt.upper())
    return metadata.embed(buf.getvalue(), fmt, meta)[0]


def expected(meta: dict[str, Any]) -> dict[str, str]:
    return {"prompt": meta["prompt"],
            "negative": meta.get("negative_prompt", ""),
            "steps": str(meta.get("steps", "")), "sampler": meta.get("sampler", ""),
            "cfg": "" if meta.get("guidance") is None else str(meta["guidance"]),
            "seed": str(meta.get("seed", "")), "size": meta["size"], "model": meta["model"],
            "ai-mark": metadata.AI_SOURCE}


def exiftool(path: Path) -> dict[str, str] | str:
    tool = shutil.which("exiftool")
    if not tool:
        return "not installed"
    tags = json.loads(subprocess.run([tool, "-j", "-G1", "-n", str(path)], capture_output=True,
                                     text=True, check=False).stdout)[0]
    params = str(tags.get("PNG:Parameters") or tags.get("ExifIFD:UserComment") or "")
    parsed = metadata.from_infotext(params) if params else {}
    return {"prompt": str(tags.get("XMP-dc:Description", "")),
            "negative": parsed.get("negative_prompt", ""),
            "steps": str(parsed.get("steps", "")), "sampler": parsed.get("sampler", ""),
            "cfg": str(parsed.get("guidance", "")), "seed": str(parsed.get("seed", "")),
            "size": parsed.get("size", ""), "model": parsed.get("model", ""),
            "ai-mark": str(tags.get("XMP-iptcExt:DigitalSourceType", "")),
            "_warning": str(tags.get("Warning", "")), "_ifd0": str(tags.get(
                "IFD0:ImageDescription", ""))}


def a1111(path: Path, data: bytes) -> dict[str, str]:
    """AUTOMATIC1111's own parse_generation_parameters (our port) on what the file holds."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        text = im.info.get("parameters")
        if text is None:
            raw = im.getexif().get_ifd(0x8769).get(0x9286, b"")
            text = raw[8:].decode("utf-16-be") if raw[:8] == b"UNICODE\0" else ""
    p = metadata.parse_infotext(text)
    return {"prompt": p["Prompt"], "negative": p["Negative prompt"], "steps": p.get("Steps", ""),
            "sampler": p.get("Sampler", ""), "cfg": _num(p.get("CFG scale", "")),
            "seed": p.get("Seed", ""), "size": p.get("Size", ""), "model": p.get("Model", "")}


def sd_prompt_reader(path: Path) -> dict[str, str] | str:
    try:
        from sd_prompt_reader.image_data_reader import ImageDataReader
    except ImportError:
        return "not installed"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        r = ImageDataReader(str(path))
    par = r.parameter or {}
    return {"prompt": r.positive or "", "negative": r.negative or "",
            "steps": str(par.get("steps") or ""), "sampler": str(par.get("sampler") or ""),
            "cfg": _num(par.get("cfg") or ""), "seed": str(par.get("seed") or ""),
            "size": f"{r.width}x{r.height}" if str(r.width) not in ("0", "") else "",
            "model": str(par.get("model") or "")}


def sd_parsers(path: Path) -> dict[str, str] | str:
    try:
        from PIL import Image
        from sd_parsers import ParserManager
    except ImportError:
        return "not installed"
    with Image.open(path) as im:
        info = ParserManager().parse(im)
    if info is None or not info.samplers:
        return {}
    s = info.samplers[0]
    params = s.parameters or {}
    size = f"{info.metadata.get('Size', '')}"
    return {"prompt": s.prompts[0].value if s.prompts else "",
            "negative": s.negative_prompts[0].value if s.negative_prompts else "",
            "steps": str(params.get("steps", "")), "sampler": s.name or "",
            "cfg": _num(params.get("cfg_scale", "")), "seed": str(params.get("seed", "")),
            "size": size, "model": s.model.name if s.model else ""}


def sd_geninfo(path: Path) -> dict[str, str] | str:
    try:
        import yaml
        from PIL import Image
        from sd_geninfo.sd_geninfo import parse_geninfo, read_geninfo
    except ImportError:
        return "not installed"
    try:
        with Image.open(path) as im, contextlib.redirect_stderr(io.StringIO()):
            text, _ = read_geninfo(im)
            got = yaml.safe_load(parse_geninfo(text)) or {}
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a reader crash is a finding
        return f"crashed: {type(exc).__name__}: {exc}"[:80]
    return {"prompt": str(got.get("Positive prompt", "")),
            "negative": str(got.get("Negative prompt", "") or ""),
            "steps": str(got.get("Steps", "") or ""), "sampler": str(got.get("Sampler", "")
                                                                      or ""),
            "cfg": _num(got.get("CFG scale", "")), "seed": str(got.get("Seed", "") or ""),
            "size": str(got.get("Size", "") or ""), "model": str(got.get("Model", "") or "")}


def validators(path: Path, fmt: str) -> str:
    tool = {"png": "pngcheck", "webp": "webpinfo"}.get(fmt)
    if tool is None:
        return "-"
    exe = shutil.which(tool)
    if not exe:
        return f"{tool}: not installed"
    r = subprocess.run([exe, str(path)], capture_output=True, text=True, check=False)
    ok = r.returncode == 0 and ("No error" in r.stdout or fmt == "png")
    return f"{tool}: {'OK' if ok else 'FAIL ' + r.stdout.strip()[-120:]}"


def _num(v: Any) -> str:
    try:
        return str(float(v)) if str(v) != "" else ""
    except ValueError:
        return str(v)


def main() -> int:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for case, meta in CASES.items():
            want = expected(meta)
            want["cfg"] = _num(want["cfg"])
            for fmt in ("png", "jpeg", "webp"):
                data = make(fmt, meta)
                path = Path(tmp) / f"{case}.{'jpg' if fmt == 'jpeg' else fmt}"
                path.write_bytes(data)
                readers = {"A1111 parser": a1111(path, data), "exiftool": exiftool(path),
                           "sd-prompt-reader": sd_prompt_reader(path),
                           "sd-parsers": sd_parsers(path), "sd-geninfo": sd_geninfo(path)}
                for reader, got in readers.items():
                    row: dict[str, Any] = {"case": case, "format": fmt, "reader": reader}
                    if isinstance(got, str):
                        row["status"] = got
                    else:
                        row["status"] = "ok" if got else "reads nothing"
                        # exiftool's prompt is the XMP's: XML cannot hold an ESC.
                        mine = dict(want, prompt=want["prompt"].replace("\x1b", "")) \
                            if reader == "exiftool" else want
                        for f in FIELDS:
                            if not mine[f] or (f == "ai-mark" and reader != "exiftool"):
                                continue
                            row[f] = "yes" if got.get(f, "") == mine[f] else \
                                f"no ({got.get(f, '')!r:.30})"
                        if got.get("_warning"):
                            row["status"] = f"warning: {got['_warning']}"
                    rows.append(row)
                rows.append({"case": case, "format": fmt, "reader": "validator",
                             "status": validators(path, fmt)})
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    print("| case | format | reader | status | " + " | ".join(FIELDS) + " |")
    print("|" + "---|" * (4 + len(FIELDS)))
    for r in rows:
        print(f"| {r['case']} | {r['format']} | {r['reader']} | {r['status']} | "
              + " | ".join(str(r.get(f, "")) for f in FIELDS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
