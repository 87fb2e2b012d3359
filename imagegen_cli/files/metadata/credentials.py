"""Content credentials (C2PA): finding a provider's signed manifest and reading it.

OpenAI's and Google's images carry a C2PA manifest store: a JUMBF box signed
over the file's other bytes. Any byte imagegen adds or takes out (a text chunk,
EXIF, XMP) breaks that signature (`assertion.dataHash.mismatch`), so the writer
asks `present` first and, when it says yes, writes the bytes as received.

Where the store lives:

    PNG    one `caBX` chunk
    JPEG   APP11 segments ("JP", box instance, sequence number, then the JUMBF
           box cut into pieces, each after a copy of the box header)
    WebP   one `C2PA` RIFF chunk

`present` and `summary` are pure Python (the store's boxes and the CBOR inside
them, read defensively: a damaged store is reported as such, never raised).
`validate` checks the signature with c2pa-python, the optional `c2pa` extra,
imported only when called and only when installed.
"""

from __future__ import annotations

import io
import struct
from typing import Any

from imagegen_cli.files.metadata.chunks import jpeg_segments, png_chunks, riff_chunks

MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
# IPTC digital source types that say "made by a model".
AI_SOURCES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia",
              "algorithmicMedia", "compositeSynthetic")
# Said when the signature is fine but its certificate is not on a trust list
# c2pa-python was given: the usual case without one (test certificates, or no list).
UNTRUSTED = "signingCredential.untrusted"


def store(data: bytes, fmt: str | None) -> bytes | None:
    """The C2PA manifest store (a JUMBF superbox) embedded in DATA, or None."""
    if fmt == "png":
        for t, s, e in png_chunks(data):
            if t == b"caBX":
                return data[s + 8 : e - 4]
            if t == b"IDAT":  # the store comes before the pixels
                break
        return None
    if fmt == "jpeg":
        return _jpeg_store(data)
    if fmt == "webp":
        for t, body in riff_chunks(data):
            if t == b"C2PA":
                return body
    return None


def present(data: bytes, fmt: str | None) -> bool:
    """Whether DATA carries an embedded C2PA manifest store (cheap: container walk only)."""
    if fmt == "png":
        return any(t == b"caBX" for t, _, _ in png_chunks(data))
    if fmt == "jpeg":
        return any(m == 0xEB and data[s + 4 : s + 6] == b"JP" for m, s, _ in jpeg_segments(data))
    if fmt == "webp":
        return any(t == b"C2PA" for t, _ in riff_chunks(data))
    return False


def _jpeg_store(data: bytes) -> bytes | None:
    pieces: dict[int, list[tuple[int, bytes]]] = {}
    for m, s, e in jpeg_segments(data):
        body = data[s + 4 : e]
        if m != 0xEB or body[:2] != b"JP" or len(body) < 16:
            continue
        instance, seq = struct.unpack(">HI", body[2:8])
        pieces.setdefault(instance, []).append((seq, body[8:]))
    for parts in pieces.values():
        parts.sort()
        first = parts[0][1]
        head = 16 if struct.unpack(">I", first[:4])[0] == 1 else 8
        whole = first + b"".join(p[head:] for _, p in parts[1:])
        if _label(whole) == "c2pa":
            return whole
    return None


# --- JUMBF boxes (ISO 19566-5)

def _boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of each box in DATA; stops at the first damaged one."""
    out = []
    i = 0
    while i + 8 <= len(data):
        size, btype = struct.unpack(">I4s", data[i : i + 8])
        head = 8
        if size == 1:
            if i + 16 > len(data):
                break
            size, head = struct.unpack(">Q", data[i + 8 : i + 16])[0], 16
        elif size == 0:
            size = len(data) - i
        if size < head or i + size > len(data):
            break
        out.append((btype, data[i + head : i + size]))
        i += size
    return out


def _label(superbox: bytes) -> str | None:
    """The label of the first JUMBF superbox in SUPERBOX (a whole `jumb` box)."""
    boxes = _boxes(superbox)
    if not boxes or boxes[0][0] != b"jumb":
        return None
    return _describe(boxes[0][1])[0]


def _describe(jumb: bytes) -> tuple[str | None, list[tuple[bytes, bytes]]]:
    """A superbox payload: (its label, its content boxes)."""
    inner = _boxes(jumb)
    if not inner or inner[0][0] != b"jumd":
        return None, inner
    desc = inner[0][1]
    label = None
    if len(desc) > 17 and desc[16] & 0x02:
        label = desc[17:].split(b"\0", 1)[0].decode("utf-8", errors="replace")
    return label, inner[1:]


def _children(jumb: bytes) -> dict[str, bytes]:
    """Label -> payload of each child superbox (the first of a repeated label)."""
    out: dict[str, bytes] = {}
    for btype, payload in _describe(jumb)[1]:
        if btype == b"jumb":
            label = _describe(payload)[0]
            if label is not None:
                out.setdefault(label, payload)
    return out


def _content(jumb: bytes) -> Any:
    """The decoded CBOR (or JSON) content of an assertion or claim superbox; None."""
    import json

    for btype, payload in _describe(jumb)[1]:
        try:
            if btype == b"cbor":
                return _cbor(payload)
            if btype == b"json":
                return json.loads(payload.decode("utf-8"))
        except (ValueError, IndexError, struct.error, RecursionError):
            return None
    return None


# --- CBOR (RFC 8949), what claims and assertions use

def _cbor(data: bytes) -> Any:
    return _item(io.BytesIO(data), 0)


_BREAK = object()


def _item(s: io.BytesIO, depth: int) -> Any:
    if depth > 32:
        raise ValueError("CBOR nested too deeply")
    head = s.read(1)
    if not head:
        raise ValueError("CBOR ends early")
    major, info = head[0] >> 5, head[0] & 0x1F
    if head[0] == 0xFF:
        return _BREAK
    if major == 7:
        if info == 25:
            return struct.unpack(">e", _take(s, 2))[0]
        if info == 26:
            return struct.unpack(">f", _take(s, 4))[0]
        if info == 27:
            return struct.unpack(">d", _take(s, 8))[0]
        if info == 24:
            _take(s, 1)
            return None
        return {20: False, 21: True}.get(info)
    n = None if info == 31 else _arg(s, info)
    if major == 0:
        return n
    if major == 1:
        return -1 - (n or 0)
    if major in (2, 3):
        if n is None:
            parts = []
            while (part := _item(s, depth + 1)) is not _BREAK:
                parts.append(part)
            return (b"" if major == 2 else "").join(parts)
        raw = _take(s, n)
        return (raw if major == 2 else raw.decode("utf-8", errors="replace"))
    if major == 4:
        items: list[Any] = []
        while n is None or len(items) < n:
            got = _item(s, depth + 1)
            if got is _BREAK:
                break
            items.append(got)
        return items
    if major == 5:
        out: dict[Any, Any] = {}
        while n is None or len(out) < n:
            key = _item(s, depth + 1)
            if key is _BREAK:
                break
            value = _item(s, depth + 1)
            out[key if isinstance(key, (str, int)) else str(key)] = value
        return out
    return _item(s, depth + 1)  # 6: a tag; its content is what counts


def _arg(s: io.BytesIO, info: int) -> int:
    if info < 24:
        return info
    size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
    if size is None:
        raise ValueError("bad CBOR length")
    n = int.from_bytes(_take(s, size), "big")
    if n > 1 << 28:
        raise ValueError("CBOR length too large")
    return n


def _take(s: io.BytesIO, n: int) -> bytes:
    raw = s.read(n)
    if len(raw) != n:
        raise ValueError("CBOR ends early")
    return raw


# --- what the manifest says

def summary(data: bytes, fmt: str | None) -> dict[str, Any]:
    """What DATA's content credentials say, read without c2pa-python:
    {'present', 'manifests', 'claim_generator', 'title', 'actions',
    'digital_source_type', 'ai_generated', 'damaged'}."""
    raw = store(data, fmt)
    if raw is None:
        return {"present": False}
    out: dict[str, Any] = {"present": True, "manifests": 0, "claim_generator": None,
                           "actions": [], "digital_source_type": None, "ai_generated": False}
    boxes = _boxes(raw)
    if not boxes or boxes[0][0] != b"jumb" or _describe(boxes[0][1])[0] != "c2pa":
        out["damaged"] = True
        return out
    manifests = [p for t, p in _describe(boxes[0][1])[1] if t == b"jumb"]
    out["manifests"] = len(manifests)
    if not manifests:
        out["damaged"] = True
        return out
    active = _children(manifests[-1])  # the active manifest is the store's last
    claim_box = active.get("c2pa.claim.v2") or active.get("c2pa.claim")
    claim = _content(claim_box) if claim_box is not None else None
    if isinstance(claim, dict):
        out["claim_generator"] = _generator(claim)
        title = claim.get("dc:title")
        if isinstance(title, str):
            out["title"] = title
    else:
        out["damaged"] = True
    assertions = _children(active["c2pa.assertions"]) if "c2pa.assertions" in active else {}
    for label, payload in assertions.items():
        if not label.startswith("c2pa.actions"):
            continue
        content = _content(payload)
        actions = content.get("actions") if isinstance(content, dict) else None
        for action in actions if isinstance(actions, list) else []:
            if not isinstance(action, dict):
                continue
            name = action.get("action")
            if isinstance(name, str):
                out["actions"].append(name)
            source = action.get("digitalSourceType")
            if isinstance(source, str) and out["digital_source_type"] is None:
                out["digital_source_type"] = source
    dst = out["digital_source_type"] or ""
    out["ai_generated"] = dst.rsplit("/", 1)[-1] in AI_SOURCES
    return out


def _generator(claim: dict[str, Any]) -> str | None:
    info = claim.get("claim_generator_info")
    if isinstance(info, list) and info:
        info = info[0]
    if isinstance(info, dict) and isinstance(info.get("name"), str):
        version = info.get("version")
        return f"{info['name']} {version}" if isinstance(version, str) else info["name"]
    gen = claim.get("claim_generator")
    return gen if isinstance(gen, str) else None


def validate(data: bytes, fmt: str) -> dict[str, Any] | None:
    """Whether DATA's manifest validates, by c2pa-python: {'state', 'valid', 'trusted',
    'failures': ['code: explanation', ...]}; None when c2pa-python is not installed.

    Call it only when `present` says yes: on a file without an embedded store the
    library would look for a remote one."""
    try:
        import c2pa
    except ImportError:
        return None
    try:
        with c2pa.Reader(MIME[fmt], io.BytesIO(data)) as reader:
            state = reader.get_validation_state()
            results = reader.get_validation_results() or {}
    except (c2pa.C2paError, KeyError, ValueError) as exc:
        return {"state": "Invalid", "valid": False, "trusted": False,
                "failures": [str(exc) or type(exc).__name__]}
    active = results.get("activeManifest") if isinstance(results, dict) else None
    failed = (active or {}).get("failure") or []
    failures = [f"{f.get('code')}: {f.get('explanation')}" for f in failed
                if isinstance(f, dict)]
    return {"state": state, "valid": state in ("Valid", "Trusted"),
            "trusted": state == "Trusted", "failures": failures}
