"""XMP packets: the one written into every image, and reading one back.

Owns the XMP namespaces, the packet we write (dc:description, xmp:CreatorTool,
our imagegen:* fields and IPTC DigitalSourceType = trainedAlgorithmicMedia, the
mark the industry reads as "AI-generated"; control characters XML forbids are
dropped) and `parse_xmp`, which finds our fields and that mark in any packet.
"""

from __future__ import annotations

import json
import re
from typing import Any

from imagegen_cli.files.metadata.infotext import SOFTWARE, infotext

AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
NS_IMAGEGEN = "https://github.com/imagegen-cli/ns/1.0/"
NS_IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

# xml.sax.saxutils.escape does the same, but importing it imports urllib.request,
# http.client and email: a cost every image would pay for three replacements.
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTRIBUTE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                            "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def escape(text: str, *, attribute: bool = False) -> str:
    """TEXT for XML character data, or (ATTRIBUTE) for a double-quoted attribute value,
    whose newlines and tabs must survive attribute-value normalisation."""
    return text.translate(_ATTRIBUTE if attribute else _TEXT)


def _xml_text(text: str) -> str:
    # XML 1.0 forbids most C0 controls (an ESC in a prompt made the packet unreadable).
    # The complement of XML's Char production, written as its few small ranges: the
    # negated class of the large ones takes milliseconds to compile.
    return re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]", "", text)


def xmp_packet(meta: dict[str, Any], prompt: str | None = None) -> bytes:
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
        return escape(_xml_text(v), attribute=True)

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


def parse_xmp(xmp: bytes) -> tuple[dict[str, str], bool]:
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
