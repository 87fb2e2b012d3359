"""Metadata in image files: written so the ecosystem reads it, read back by `imagegen info`.

What goes in (unless --no-metadata, which writes none and strips what came):

    PNG    tEXt/iTXt `parameters` (AUTOMATIC1111 infotext), `imagegen` (our JSON),
           iTXt `XML:com.adobe.xmp` (XMP). Never `prompt` or `workflow`: ComfyUI
           reads those names as its own JSON graph.
    JPEG   APP1 Exif (ImageDescription, Software, UserComment = infotext) and
           APP1 XMP; each segment holds at most 64 KB, so a long prompt is cut
           in the copy there (the caller is told, and the sidecar keeps it whole).
    WebP   EXIF and XMP chunks, the same content.

The XMP carries IPTC DigitalSourceType = trainedAlgorithmicMedia, the mark
the industry reads as "AI-generated". Values are spliced into the container:
received pixels are never re-encoded. Nothing here imports Pillow.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from imagegen_cli import __version__

AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
NS_IMAGEGEN = "https://github.com/imagegen-cli/ns/1.0/"
NS_IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
PNG_SIG = b"\x89PNG\r\n\x1a\n"
# APP1 payload limit: the 16-bit length counts itself.
JPEG_SEGMENT_MAX = 0xFFFF - 2
SOFTWARE = f"imagegen {'.'.join(__version__.split('.')[:2])}"

# ------------------------------------------------------------ A1111 infotext

# AUTOMATIC1111's modules/infotext_utils.py, so that our text and theirs agree.
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


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
    lines = [str(text).strip()]
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
    out: dict[str, Any] = {"prompt": p["Prompt"], "negative_prompt": p["Negative prompt"] or None}

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


# ------------------------------------------------------------------- writing


def embed(data: bytes, fmt: str, meta: dict[str, Any],
          warn: Callable[[str], None] | None = None) -> tuple[bytes, bool]:
    """DATA with META embedded; also whether the prompt had to be cut to fit (JPEG)."""
    data = strip(data, fmt)
    if fmt == "png":
        return _png(data, meta), False
    if fmt == "jpeg":
        return _jpeg(data, meta, warn)
    if fmt == "webp":
        exif = _exif(meta, str(meta.get("prompt", "")))
        return _webp(data, exif, _xmp(meta)), False
    return data, False


def _xml_text(text: str) -> str:
    # XML 1.0 forbids most C0 controls (an ESC in a prompt made the packet unreadable).
    return re.sub("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "", text)


def _xmp(meta: dict[str, Any], prompt: str | None = None) -> bytes:
    prompt = str(meta.get("prompt", "")) if prompt is None else prompt
    fields: dict[str, str] = {"prompt": prompt}
    for key in ("negative_prompt", "revised_prompt", "provider", "model", "size", "seed",
                "steps", "guidance", "sampler"):
        if meta.get(key) is not None:
            fields[key] = str(meta[key])
    fields["parameters"] = infotext(meta, prompt)
    shown = dict(meta, prompt=prompt)
    fields["json"] = json.dumps(shown, ensure_ascii=False, sort_keys=True)

    def attr(v: str) -> str:
        return escape(_xml_text(v), {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})

    attrs = "".join(f'\n   imagegen:{k}="{attr(v)}"' for k, v in fields.items())
    xml = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f' <rdf:RDF xmlns:rdf="{NS_RDF}">\n'
        '  <rdf:Description rdf:about=""\n'
        f'   xmlns:dc="{NS_DC}"\n'
        '   xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f'   xmlns:Iptc4xmpExt="{NS_IPTC_EXT}"\n'
        f'   xmlns:imagegen="{NS_IMAGEGEN}"\n'
        f'   xmp:CreatorTool="{SOFTWARE}"\n'
        f'   Iptc4xmpExt:DigitalSourceType="{AI_SOURCE}"'
        f"{attrs}>\n"
        '   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">'
        f"{escape(_xml_text(prompt))}</rdf:li></rdf:Alt></dc:description>\n"
        "  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )
    return xml.encode("utf-8")


# --- PNG

def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def _png_text(key: str, value: str) -> bytes:
    try:
        return _png_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:
        # iTXt: keyword, no compression, empty language and translated keyword.
        body = key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")
        return _png_chunk(b"iTXt", body)


def _png(data: bytes, meta: dict[str, Any]) -> bytes:
    chunks = [_png_text("parameters", infotext(meta))]
    for key in ("revised_prompt", "provider", "model", "size", "seed"):
        if meta.get(key) is not None:
            chunks.append(_png_text(key, str(meta[key])))
    chunks.append(_png_text("imagegen", json.dumps(meta, ensure_ascii=False, sort_keys=True)))
    xmp = _xmp(meta).decode("utf-8")
    chunks.append(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp.encode("utf-8")))
    ihdr_end = 8 + 12 + struct.unpack(">I", data[8:12])[0]
    return b"".join([data[:ihdr_end], *chunks, memoryview(data)[ihdr_end:]])  # one copy


def _png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of every chunk after the signature."""
    out = []
    i = 8
    while i + 12 <= len(data):
        length = struct.unpack(">I", data[i : i + 4])[0]
        end = i + 12 + length
        out.append((data[i + 4 : i + 8], i, min(end, len(data))))
        if data[i + 4 : i + 8] == b"IEND":
            break
        i = end
    return out


# --- EXIF (big-endian TIFF)

_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 7: 1}


def _ifd(entries: list[tuple[int, int, int, bytes]], data_at: int) -> tuple[bytes, bytes]:
    """An IFD table and its out-of-line data (placed at DATA_AT): (tag, type, count, value).

    A value of 4 bytes or fewer lives in the entry itself (TIFF 6.0, section 2):
    readers take a short value from there, never from an offset.
    """
    table = struct.pack(">H", len(entries))
    extra = b""
    for tag, typ, count, value in sorted(entries):
        if len(value) <= 4:
            table += struct.pack(">HHI", tag, typ, count) + value.ljust(4, b"\0")
        else:
            table += struct.pack(">HHII", tag, typ, count, data_at + len(extra))
            extra += value + (b"\0" if len(value) % 2 else b"")
    return table + struct.pack(">I", 0), extra


def _exif(meta: dict[str, Any], prompt: str) -> bytes:
    """TIFF header | IFD0 | Exif IFD | IFD0's data | Exif IFD's data."""
    desc = prompt.encode("utf-8") + b"\0"
    software = SOFTWARE.encode() + b"\0"
    comment = b"UNICODE\0" + infotext(meta, prompt).encode("utf-16-be")
    ifd0_at, n0, n1 = 8, 3, 1
    exif_at = ifd0_at + 2 + 12 * n0 + 4
    data_at = exif_at + 2 + 12 * n1 + 4
    ifd0, extra0 = _ifd([(0x010E, 2, len(desc), desc),
                         (0x0131, 2, len(software), software),
                         (0x8769, 4, 1, struct.pack(">I", exif_at))], data_at)
    exif, extra1 = _ifd([(0x9286, 7, len(comment), comment)], data_at + len(extra0))
    return b"MM\x00\x2a" + struct.pack(">I", ifd0_at) + ifd0 + exif + extra0 + extra1


# --- JPEG

def _fit(build: Callable[[str], bytes], prompt: str, limit: int) -> tuple[bytes, str]:
    """BUILD(prompt) if it fits in LIMIT bytes, else BUILD of the longest prefix that does."""
    whole = build(prompt)
    if len(whole) <= limit:
        return whole, prompt
    lo, hi = 0, len(prompt)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(build(prompt[:mid])) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return build(prompt[:lo]), prompt[:lo]


def _jpeg(data: bytes, meta: dict[str, Any],
          warn: Callable[[str], None] | None) -> tuple[bytes, bool]:
    prompt = str(meta.get("prompt", ""))
    exif_head, xmp_head = b"Exif\0\0", b"http://ns.adobe.com/xap/1.0/\0"
    exif, kept_e = _fit(lambda p: exif_head + _exif(meta, p), prompt, JPEG_SEGMENT_MAX)
    xmp, kept_x = _fit(lambda p: xmp_head + _xmp(meta, p), prompt, JPEG_SEGMENT_MAX)
    cut = min(len(kept_e), len(kept_x)) < len(prompt)
    if cut and warn is not None:
        warn(f"the prompt ({len(prompt)} characters) is longer than a JPEG metadata segment "
             f"holds: the image's EXIF and XMP carry its first {min(len(kept_e), len(kept_x))}"
             " characters and all settings; the sidecar .json keeps the whole text")
    segments = b"".join(b"\xff\xe1" + struct.pack(">H", len(p) + 2) + p for p in (exif, xmp))
    pos = 2
    if data[2:4] == b"\xff\xe0":  # after a JFIF APP0
        pos = 4 + struct.unpack(">H", data[4:6])[0]
    return data[:pos] + segments + data[pos:], cut


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of the segments before the scan data."""
    out = []
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD9, 0xDA):
            break
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        out.append((marker, i, i + 2 + length))
        i += 2 + length
    return out


# --- WebP

def _riff_chunk(ctype: bytes, body: bytes) -> bytes:
    return ctype + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    i = 12
    while i + 8 <= len(data):
        ctype = data[i : i + 4]
        size = struct.unpack("<I", data[i + 4 : i + 8])[0]
        out.append((ctype, data[i + 8 : i + 8 + size]))
        i += 8 + size + (size & 1)
    return out


def _webp(data: bytes, exif: bytes, xmp: bytes) -> bytes:
    from imagegen_cli.images import _webp_info

    w, h, alpha = _webp_info(data)
    chunks = _riff_chunks(data)
    if chunks and chunks[0][0] == b"VP8X":
        head = bytearray(chunks[0][1])
        head[0] |= 0x08 | 0x04
        chunks[0] = (b"VP8X", bytes(head))
    else:
        flags = 0x08 | 0x04 | (0x10 if alpha else 0)
        vp8x = bytes([flags, 0, 0, 0]) + (w - 1).to_bytes(3, "little") \
            + (h - 1).to_bytes(3, "little")
        chunks.insert(0, (b"VP8X", vp8x))
    chunks += [(b"EXIF", exif), (b"XMP ", xmp)]
    body = b"".join(_riff_chunk(t, b) for t, b in chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


# --- stripping

_PNG_META = {b"tEXt", b"iTXt", b"zTXt", b"eXIf"}


def strip(data: bytes, fmt: str) -> bytes:
    """DATA without text, EXIF or XMP metadata (what --no-metadata promises)."""
    if fmt == "png":
        spans = _png_chunks(data)
        if spans and spans[-1][2] == len(data) and not any(
                t in _PNG_META for t, _, _ in spans):
            return data  # nothing to take out: no copy of a big image
        view = memoryview(data)
        return b"".join([data[:8], *(view[s:e] for t, s, e in spans if t not in _PNG_META)])
    if fmt == "jpeg":
        segs = _jpeg_segments(data)
        if not segs:
            return data
        body_at = segs[-1][2]
        keep = [data[s:e] for m, s, e in segs
                if not (m == 0xE1 or (m == 0xFE))]  # APP1 (Exif, XMP) and COM
        return data[:2] + b"".join(keep) + data[body_at:]
    if fmt == "webp":
        chunks = _riff_chunks(data)
        kept = [(t, b) for t, b in chunks if t not in (b"EXIF", b"XMP ")]
        if len(kept) == len(chunks):
            return data
        if kept and kept[0][0] == b"VP8X":
            head = bytearray(kept[0][1])
            head[0] &= ~(0x08 | 0x04) & 0xFF
            kept[0] = (b"VP8X", bytes(head))
        out = b"".join(_riff_chunk(t, b) for t, b in kept)
        return b"RIFF" + struct.pack("<I", 4 + len(out)) + b"WEBP" + out
    return data


# ------------------------------------------------------------------- reading


def read(data: bytes) -> dict[str, Any]:
    """What an image carries: {'fields': ours, 'source': where from, 'ai_generated': bool}.

    imagegen's own JSON wins; else an A1111 `parameters` text; else nothing.
    """
    from imagegen_cli.images import sniff

    fmt = sniff(data)
    texts: dict[str, str] = {}
    xmp: bytes | None = None
    comment: str | None = None
    if fmt == "png":
        for t, s, e in _png_chunks(data):
            body = data[s + 8 : e - 4]
            if t in (b"tEXt", b"iTXt", b"zTXt"):
                key, value = _png_text_value(t, body)
                if key == "XML:com.adobe.xmp":
                    xmp = value.encode("utf-8")
                elif key:
                    texts[key] = value
    elif fmt == "jpeg":
        for m, s, e in _jpeg_segments(data):
            body = data[s + 4 : e]
            if m == 0xE1 and body.startswith(b"Exif\0\0"):
                comment = _exif_user_comment(body[6:])
            elif m == 0xE1 and body.startswith(b"http://ns.adobe.com/xap/1.0/\0"):
                xmp = body[29:]
    elif fmt == "webp":
        for t, b in _riff_chunks(data):
            if t == b"EXIF":
                comment = _exif_user_comment(b[6:] if b.startswith(b"Exif\0\0") else b)
            elif t == b"XMP ":
                xmp = b
    xmp_fields, ai = _parse_xmp(xmp) if xmp else ({}, False)
    fields: dict[str, Any] = {}
    source = None
    if "imagegen" in texts:
        try:
            fields, source = dict(json.loads(texts["imagegen"])), "imagegen"
        except (ValueError, TypeError):
            fields = {}
    if not fields and xmp_fields.get("json"):
        try:
            fields, source = dict(json.loads(xmp_fields["json"])), "imagegen"
        except (ValueError, TypeError):
            fields = {}
    params = texts.get("parameters") or comment
    if not fields and params:
        fields, source = from_infotext(params), "a1111"
    return {"format": fmt, "source": source, "fields": fields, "ai_generated": ai}


def _png_text_value(ctype: bytes, body: bytes) -> tuple[str, str]:
    key, _, rest = body.partition(b"\0")
    try:
        if ctype == b"tEXt":
            return key.decode("latin-1"), rest.decode("latin-1")
        if ctype == b"zTXt":
            return key.decode("latin-1"), zlib.decompress(rest[1:]).decode("latin-1")
        flag, method = rest[0], rest[1]
        _lang, _, rest = rest[2:].partition(b"\0")
        _tkey, _, text = rest.partition(b"\0")
        if flag:
            text = zlib.decompress(text)
        del method
        return key.decode("latin-1"), text.decode("utf-8")
    except (zlib.error, UnicodeDecodeError, IndexError):
        return "", ""


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
                size = count * _TYPE_SIZE.get(typ, 1)
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


def _parse_xmp(xmp: bytes) -> tuple[dict[str, str], bool]:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xmp.decode("utf-8", errors="replace").strip("\0 \n"))
    except ET.ParseError:
        return {}, False
    fields: dict[str, str] = {}
    ai = False
    for desc in root.iter(f"{{{NS_RDF}}}Description"):
        for name, value in desc.attrib.items():
            if name.startswith(f"{{{NS_IMAGEGEN}}}"):
                fields[name.split("}", 1)[1]] = value
            elif name == f"{{{NS_IPTC_EXT}}}DigitalSourceType":
                ai = ai or value.rstrip("/").endswith("trainedAlgorithmicMedia")
        for el in desc.iter(f"{{{NS_IPTC_EXT}}}DigitalSourceType"):
            text = el.text or el.get(f"{{{NS_RDF}}}resource") or ""
            ai = ai or text.rstrip("/").endswith("trainedAlgorithmicMedia")
    return fields, ai


# What `generate --from` may take from a file, and the option each value fills.
FROM_KEYS = ("prompt", "negative_prompt", "seed", "steps", "guidance", "model", "provider",
             "quality", "style", "background", "moderation", "size")


def settings_from(path: Any) -> dict[str, Any]:
    """Prompt and settings recorded in an image (ours or A1111's) or a sidecar JSON file.

    UsageError (exit 2) when the file cannot be read or carries no prompt.
    """
    from imagegen_cli.errors import UsageError
    from imagegen_cli.images import sniff

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UsageError(f"--from {path}: cannot read it ({exc.strerror or exc})") from None
    if sniff(data) is not None:
        fields = read(data)["fields"]
    else:
        try:
            fields = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            fields = None
        if not isinstance(fields, dict):
            raise UsageError(f"--from {path} is neither an image (PNG, JPEG, WebP) nor a "
                             "sidecar .json written by --sidecar")
    if not fields.get("prompt"):
        raise UsageError(f"--from {path} carries no prompt (written with --no-metadata, or "
                         "by another tool): pass the prompt yourself")
    out = {k: fields[k] for k in FROM_KEYS if fields.get(k) not in (None, "")}
    if fields.get("generator") == "imagegen":
        # Our `size` is what came back; what was asked (if anything) is requested_size.
        out.pop("size", None)
        if fields.get("requested_size"):
            out["size"] = fields["requested_size"]
    if isinstance(fields.get("params"), dict) and fields["params"]:
        out["params"] = fields["params"]
    return out
