"""One self-contained HTML page showing images: `imagegen gallery` writes it.

Each image is a card: its thumbnail (a JPEG, embedded as a data: URI, so the
page needs nothing beside it), prompt, provider, model, seed, cost, time and a
link to the file. A text box filters the cards (every word must appear); the
page's address may carry the filter (`gallery.html#q=red+fox`). The script is
inline and small; a Content-Security-Policy forbids the page any network
access. Nothing here knows where the images came from: engine/gallery.py
gathers them.
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass
from pathlib import Path

THUMB = 320  # the thumbnail's longer side, in pixels


@dataclass
class Card:
    path: Path  # the image file
    time: str  # ISO 8601, local; the page is sorted on it, newest first
    prompt: str = ""
    provider: str | None = None
    model: str | None = None
    seed: int | None = None
    cost_usd: float | None = None
    width: int | None = None
    height: int | None = None


def thumbnail(data: bytes) -> str | None:
    """DATA as a JPEG data: URI at most THUMB pixels on its longer side; None when the
    image cannot be decoded (its card says so)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (THUMB, THUMB))  # JPEG: decode at a smaller scale
            im.thumbnail((THUMB, THUMB))
            if im.mode in ("RGBA", "LA", "P"):
                rgba = im.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                im2 = flat
            else:
                im2 = im.convert("RGB")
            out = io.BytesIO()
            im2.save(out, format="JPEG", quality=82)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def render(cards: list[tuple[Card, str | None]], page: Path, title: str) -> str:
    """The page for CARDS (each with its thumbnail URI), to be written at PAGE (links
    to the images are relative to it)."""
    items = sorted(cards, key=lambda c: c[0].time, reverse=True)
    body = "\n".join(_card(card, thumb, page) for card, thumb in items)
    empty = "" if items else '<p class="empty">No images.</p>'
    return _PAGE.format(title=html.escape(title), count=len(items), cards=body,
                        script=_SCRIPT, style=_STYLE, empty=empty)


def _card(card: Card, thumb: str | None, page: Path) -> str:
    try:
        href = os.path.relpath(card.path, page.parent)
    except ValueError:  # another drive (Windows)
        href = card.path.as_uri()
    href = "/".join(href.split(os.sep))
    cost = f"${card.cost_usd:.4f}" if card.cost_usd is not None else ""
    who = "/".join(x for x in (card.provider, card.model) if x)
    size = f"{card.width}x{card.height}" if card.width and card.height else ""
    facts = [x for x in (who, size, f"seed {card.seed}" if card.seed is not None else "",
                         cost, card.time.replace("T", " ")) if x]
    search = " ".join([card.prompt, who, card.path.name]).lower()
    if thumb is not None:
        img = (f'<img src="{thumb}" alt="{html.escape(card.prompt[:200])}" loading="lazy">')
    else:
        img = '<div class="broken">cannot be shown</div>'
    return (f'<figure class="card" data-text="{html.escape(search)}">'
            f'<a href="{html.escape(href)}">{img}</a><figcaption>'
            f'<p class="prompt">{html.escape(card.prompt) or "<i>no prompt recorded</i>"}</p>'
            f'<p class="facts">{" · ".join(html.escape(f) for f in facts)}</p>'
            f'<p class="file"><a href="{html.escape(href)}">{html.escape(card.path.name)}</a>'
            "</p></figcaption></figure>")


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f4f5;color:#18181b}
header{position:sticky;top:0;background:#fff;padding:12px 16px;border-bottom:1px solid #ddd;
display:flex;gap:16px;align-items:center;flex-wrap:wrap}
h1{font-size:18px;margin:0}
#filter{flex:1;min-width:200px;max-width:480px;padding:6px 10px;font-size:14px}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:16px;
padding:16px}
.card{margin:0;background:#fff;border-radius:8px;overflow:hidden;
box-shadow:0 1px 3px rgba(0,0,0,.12)}
.card img{display:block;width:100%;height:260px;object-fit:contain;background:#e4e4e7}
.card[hidden]{display:none}
.broken{height:260px;display:flex;align-items:center;justify-content:center;color:#888}
figcaption{padding:8px 12px}
figcaption p{margin:4px 0;overflow-wrap:anywhere}
.facts,.file{color:#52525b;font-size:12px}
.empty{padding:16px}
"""

_SCRIPT = """
(function () {
  var box = document.getElementById('filter');
  var cards = Array.prototype.slice.call(document.querySelectorAll('.card'));
  var shown = document.getElementById('shown');
  function apply() {
    var words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var n = 0;
    cards.forEach(function (card) {
      var text = card.getAttribute('data-text');
      var hit = words.every(function (w) { return text.indexOf(w) >= 0; });
      card.hidden = !hit;
      if (hit) { n += 1; }
    });
    shown.textContent = n + ' of ' + cards.length + ' shown';
    var here = location.pathname + location.search;
    try {  // the filter in the address, to share or reload (a file: page may refuse)
      history.replaceState(null, '', box.value ? '#q=' + encodeURIComponent(box.value) : here);
    } catch (e) { /* the page works the same without it */ }
  }
  var m = /^#q=(.*)$/.exec(location.hash);
  if (m) { box.value = decodeURIComponent(m[1].replace(/\\+/g, ' ')); }
  box.addEventListener('input', apply);
  apply();
})();
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="imagegen">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header><h1>{title}</h1>
<input id="filter" type="search" placeholder="Filter: words in the prompt, provider, model"
 aria-label="Filter" autofocus>
<span id="shown">{count} of {count} shown</span></header>
{empty}
<main>
{cards}
</main>
<script>{script}</script>
</body>
</html>
"""
