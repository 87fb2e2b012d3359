"""Reading metadata back: what `imagegen info` shows and `generate --from` reuses.

Owns `read` (imagegen's own JSON first, from a PNG text chunk or the XMP packet;
else an A1111 `parameters` text from PNG or an EXIF UserComment; else nothing;
and whether the image is marked AI-generated), decoding PNG tEXt/zTXt/iTXt and
EXIF UserComment, and `settings_from`: the prompt and settings `--from` takes
from an image or a sidecar .json.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from imagegen_cli.errors import UsageError
from imagegen_cli.files import jsontext
from imagegen_cli.files.images import sniff
from imagegen_cli.files.metadata import credentials
from imagegen_cli.files.metadata.chunks import TYPE_SIZE, jpeg_segments, png_chunks, riff_chunks
from imagegen_cli.files.metadata.infotext import RE_LORA, from_infotext
from imagegen_cli.files.metadata.xmp import parse_xmp

# What PNG text chunks may inflate to, all of them together: ours are a few kB, and a
# 1 MB file can hold a zTXt chunk that inflates to a gigabyte (a decompression bomb).
TEXT_CAP = 1 << 20


def read(data: bytes) -> dict[str, Any]:
    """What an image carries: {'fields': ours, 'source': where from, 'ai_generated': bool}.

    imagegen's own JSON wins; else an A1111 `parameters` text; else nothing.
    """

    fmt = sniff(data)
    texts: dict[str, str] = {}
    xmp: bytes | None = None
    comment: str | None = None
    notes: list[str] = []
    if fmt == "png":
        room = TEXT_CAP
        for t, s, e in png_chunks(data):
            body = data[s + 8 : e - 4]
            if t in (b"tEXt", b"iTXt", b"zTXt"):
                key, value = _png_text_value(t, body, room)
                if value is None:
                    notes.append(f"a {t.decode()} chunk ({key or 'no key'}) inflates past "
                                 f"{TEXT_CAP // 2**20} MiB of text: not read")
                    continue
                room -= len(value)
                if key == "XML:com.adobe.xmp":
                    xmp = value.encode("utf-8")
                elif key:
                    texts[key] = value
    elif fmt == "jpeg":
        for m, s, e in jpeg_segments(data):
            body = data[s + 4 : e]
            if m == 0xE1 and body.startswith(b"Exif\0\0"):
                comment = _exif_user_comment(body[6:])
            elif m == 0xE1 and body.startswith(b"http://ns.adobe.com/xap/1.0/\0"):
                xmp = body[29:]
    elif fmt == "webp":
        for t, b in riff_chunks(data):
            if t == b"EXIF":
                comment = _exif_user_comment(b[6:] if b.startswith(b"Exif\0\0") else b)
            elif t == b"XMP ":
                xmp = b
    xmp_fields, ai = parse_xmp(xmp) if xmp else ({}, False)
    # A provider's signed manifest (C2PA) saying "made by a model" marks it too.
    signed = credentials.summary(data, fmt)
    ai = ai or bool(signed.get("ai_generated"))
    fields: dict[str, Any] = {}
    source = None
    if "imagegen" in texts:
        try:
            fields, source = dict(jsontext.loads(texts["imagegen"])), "imagegen"
        except (ValueError, TypeError):
            fields = {}
    if not fields and xmp_fields.get("json"):
        try:
            fields, source = dict(jsontext.loads(xmp_fields["json"])), "imagegen"
        except (ValueError, TypeError):
            fields = {}
    params = texts.get("parameters") or comment
    if not fields and params:
        fields, source = from_infotext(params), "a1111"
    return {"format": fmt, "source": source, "fields": fields, "ai_generated": ai,
            "notes": notes, "credentials": signed}


def sidecar_of(path: Any) -> dict[str, Any] | None:
    """The imagegen sidecar beside the image at PATH (NAME.json), or None: where a
    signed image, written as received, keeps imagegen's metadata."""
    from pathlib import Path

    side = Path(path).with_suffix(".json")
    try:
        fields = jsontext.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(fields, dict) or fields.get("generator") != "imagegen":
        return None
    return dict(fields)


def _png_text_value(ctype: bytes, body: bytes, room: int) -> tuple[str, str | None]:
    """(key, text) of a PNG text chunk; ("", "") when damaged; (key, None) when it would
    inflate past ROOM bytes (it is not inflated further)."""
    key, _, rest = body.partition(b"\0")
    name = key.decode("latin-1")
    try:
        if ctype == b"tEXt":
            return name, rest.decode("latin-1")
        if ctype == b"zTXt":
            text = _inflate(rest[1:], room)
            return (name, None) if text is None else (name, text.decode("latin-1"))
        flag, method = rest[0], rest[1]
        _lang, _, rest = rest[2:].partition(b"\0")
        _tkey, _, text = rest.partition(b"\0")
        if flag:
            inflated = _inflate(text, room)
            if inflated is None:
                return name, None
            text = inflated
        del method
        return name, text.decode("utf-8")
    except (zlib.error, UnicodeDecodeError, IndexError):
        return "", ""


def _inflate(data: bytes, room: int) -> bytes | None:
    """DATA inflated, or None when it holds more than ROOM bytes (never inflated past
    them); zlib.error when it is damaged."""
    d = zlib.decompressobj()
    out = d.decompress(data, max(room, 0) + 1)
    if len(out) > room or d.unconsumed_tail:
        return None
    if not d.eof:
        raise zlib.error("incomplete zlib stream")
    return out


def _exif_user_comment(tiff: bytes) -> str | None:
    """The UserComment of a TIFF/EXIF block, or None (any damage: None)."""
    try:
        order = {b"MM": ">", b"II": "<"}[tiff[:2]]

        def entries(at: int) -> dict[int, tuple[int, int, int]]:
            (n,) = struct.unpack(order + "H", tiff[at : at + 2])
            out = {}
            for i in range(n):
                pos = at + 2 + 12 * i
                tag, typ, count = struct.unpack(order + "HHI", tiff[pos : pos + 8])
                size = count * TYPE_SIZE.get(typ, 1)
                (off,) = struct.unpack(order + "I", tiff[pos + 8 : pos + 12])
                out[tag] = (typ, count, pos + 8 if size <= 4 else off)
            return out

        (ifd0,) = struct.unpack(order + "I", tiff[4:8])
        exif_ptr = entries(ifd0).get(0x8769)
        if exif_ptr is None:
            return None
        (exif_at,) = struct.unpack(order + "I", tiff[exif_ptr[2] : exif_ptr[2] + 4])
        uc = entries(exif_at).get(0x9286)
        if uc is None:
            return None
        raw = tiff[uc[2] : uc[2] + uc[1]]
        head, text = raw[:8], raw[8:]
        if head == b"UNICODE\0":
            enc = "utf-16-be" if order == ">" else "utf-16-le"
            return text.decode(enc, errors="replace").rstrip("\0")
        return text.decode("utf-8", errors="replace").rstrip("\0")
    except (KeyError, struct.error, IndexError):
        return None


# What `generate --from` may take from a file, and the option each value fills.
FROM_KEYS = ("prompt", "negative_prompt", "seed", "steps", "guidance", "model", "provider",
             "quality", "style", "background", "moderation", "size", "resolution", "lora")


def settings_from(path: Any) -> dict[str, Any]:
    """Prompt and settings recorded in an image (ours or A1111's) or a sidecar JSON file.

    UsageError (exit 2) when the file cannot be read or carries no prompt.
    """

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UsageError(f"--from {path}: cannot read it ({exc.strerror or exc})") from None
    notes: list[str] = []
    if sniff(data) is not None:
        got = read(data)
        fields, notes = got["fields"], got["notes"]
        if not fields.get("prompt"):  # a signed image keeps ours beside it
            fields = sidecar_of(path) or fields
    else:
        try:
            fields = jsontext.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            fields = None
        except ValueError as exc:
            if data.lstrip()[:1] != b"{":
                fields = None
            else:  # a sidecar, damaged: say where
                raise UsageError(f"--from {path}: not valid JSON ({jsontext.why(exc)}): "
                                 "fix it, or pass the prompt and settings yourself") from None
        if not isinstance(fields, dict):
            raise UsageError(f"--from {path} is neither an image (PNG, JPEG, WebP) nor a "
                             "sidecar .json written by --sidecar")
    if not fields.get("prompt"):
        why = f"; {'; '.join(notes)}" if notes else ""
        raise UsageError(f"--from {path} carries no prompt (written with --no-metadata, or "
                         f"by another tool{why}): pass the prompt yourself")
    return settings_of(fields)


def settings_of(fields: dict[str, Any]) -> dict[str, Any]:
    """What `--from` takes from recorded FIELDS (an image's, a sidecar's, a history
    row's): FROM_KEYS, the requested size, params."""
    out = {k: fields[k] for k in FROM_KEYS if fields.get(k) not in (None, "")}
    out.pop("lora", None)
    resolved = fields.get("resolved")
    loras = fields.get("lora") or (resolved.get("loras") if isinstance(resolved, dict) else None)
    if isinstance(loras, list) and all(isinstance(t, str) for t in loras) and loras:
        # Ours are recorded as A1111 tags; an A1111 image's were read from its prompt.
        out["lora"] = [m.group(1) + ":" + (m.group(2) or "1") if (m := RE_LORA.fullmatch(t))
                       else t for t in loras]
    if fields.get("generator") == "imagegen":
        # Our `size` is what came back; what was asked (if anything) is requested_size.
        out.pop("size", None)
        if fields.get("requested_size"):
            out["size"] = fields["requested_size"]
    if isinstance(fields.get("params"), dict) and fields["params"]:
        out["params"] = fields["params"]
    return out
