"""AUTOMATIC1111's `parameters` text ("infotext"): written and parsed as A1111 does.

Owns the text other tools read for a generated image's prompt and settings:
the prompt, `Negative prompt:`, then one settings line opening with `Steps:`
(so sd-prompt-reader and sd-geninfo find it), values quoted as A1111 quotes
them; and parsing such a text back into our metadata keys, for images made
elsewhere. `SOFTWARE` is the name and version written as `Version` (and as the
creator tool in EXIF and XMP).
"""

from __future__ import annotations

import json
import re
from typing import Any

from imagegen_cli import __version__

SOFTWARE = f"imagegen {'.'.join(__version__.split('.')[:2])}"

# AUTOMATIC1111's modules/infotext_utils.py, so that our text and theirs agree.
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
# Its extra network tag, `<lora:NAME:WEIGHT>` (extra_networks.py; a second number, the
# UNet's weight, is read past), with the space before it.
RE_LORA = re.compile(r"[ \t]*<lora:([^:>]+)(?::([-+]?[0-9.]+))?[^>]*>")


def quote(value: object) -> str:
    """A1111's quote(): JSON-quote a value holding ',', ':' or a newline."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _unquote(text: str) -> str:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return str(json.loads(text))
    except ValueError:
        return text


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def infotext(meta: dict[str, Any], prompt: str | None = None) -> str:
    """The `parameters` text A1111 writes: prompt, `Negative prompt:`, one settings line.

    The settings line always opens with `Steps:` (empty when the provider takes no
    steps): sd-prompt-reader and sd-geninfo find the line by that word. `Sampler:`
    appears only when the pipeline or provider named one.
    """
    text = meta.get("prompt", "") if prompt is None else prompt
    # LoRAs the local model ran, as A1111 writes them: tags after the prompt.
    loras = (meta.get("resolved") or {}).get("loras") or []
    lines = [" ".join([str(text).strip(), *(str(t) for t in loras)])]
    if meta.get("negative_prompt"):
        lines.append(f"Negative prompt: {meta['negative_prompt']}")
    fields: list[tuple[str, object]] = [("Steps", meta.get("steps", ""))]
    if meta.get("sampler"):
        fields.append(("Sampler", meta["sampler"]))
    if meta.get("guidance") is not None:
        fields.append(("CFG scale", _number(meta["guidance"])))
    if meta.get("seed") is not None:
        fields.append(("Seed", meta["seed"]))
    if meta.get("size"):
        fields.append(("Size", meta["size"]))
    if meta.get("model"):
        fields.append(("Model", meta["model"]))
    if meta.get("provider"):
        fields.append(("Provider", meta["provider"]))
    fields.append(("Version", SOFTWARE))
    lines.append(", ".join(f"{k}: {quote(v)}" if v != "" else f"{k}: " for k, v in fields))
    return "\n".join(lines)


def parse_infotext(text: str) -> dict[str, Any]:
    """A1111's parse_generation_parameters: {'Prompt', 'Negative prompt', field: value}."""
    *lines, last = text.strip().split("\n")
    if len(RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt, negative, done = "", "", False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done = True
            line = line[16:].strip()
        if done:
            negative += ("" if not negative else "\n") + line
        else:
            prompt += ("" if not prompt else "\n") + line
    out: dict[str, Any] = {"Prompt": prompt, "Negative prompt": negative}
    for key, value in RE_PARAM.findall(last):
        out[key] = _unquote(value) if value[:1] == '"' else value
    return out


def from_infotext(text: str) -> dict[str, Any]:
    """Our metadata keys from an A1111 `parameters` text (for images made elsewhere)."""
    p = parse_infotext(text)
    # `<lora:NAME:WEIGHT>` in an A1111 prompt names a LoRA, not words to draw: taken
    # out of the prompt into --lora NAME:WEIGHT (only here, importing its settings).
    loras = [f"{m.group(1)}:{m.group(2) or 1}" for m in RE_LORA.finditer(p["Prompt"])]
    prompt = RE_LORA.sub("", p["Prompt"]).strip()
    out: dict[str, Any] = {"prompt": prompt, "negative_prompt": p["Negative prompt"] or None}
    if loras:
        out["lora"] = loras

    def num(key: str, kind: type) -> Any:
        raw = str(p.get(key, "")).strip()
        try:
            return kind(raw) if raw else None
        except ValueError:
            return None

    out["steps"] = num("Steps", int)
    out["seed"] = num("Seed", int)
    out["guidance"] = num("CFG scale", float)
    for key, name in (("Sampler", "sampler"), ("Size", "size"), ("Model", "model"),
                      ("Provider", "provider"), ("Version", "generator")):
        if p.get(key):
            out[name] = p[key]
    return {k: v for k, v in out.items() if v is not None}
