"""`imagegen gallery`: one self-contained page, from a folder, the history or a batch's
NDJSON; checked as text here, and in a real headless Chromium (Debian's
`chromium`, driven by Playwright for Python) where both are installed."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.fakes.openai_fake import OpenAIFake

PROMPTS = ["a red fox in the snow", "a blue whale <b>bold</b> & co", "a red barn at dusk"]


@pytest.fixture
def made(fake: OpenAIFake) -> Path:
    """Three images made by a batch (recorded in the history), its NDJSON beside them."""
    Path("p.txt").write_text("\n".join(PROMPTS) + "\n")
    r = run_cli(["batch", "p.txt", "-o", "out/", "--json"])
    assert r.code == 0, r.err
    Path("run.ndjson").write_text(r.stdout)
    return Path("out")


def cards(page: Path) -> list[str]:
    return re.findall(r'<figure class="card" data-text="([^"]*)"', page.read_text())


def test_folder_page_is_self_contained(made: Path) -> None:
    r = run_cli(["gallery", "out"])
    assert r.code == 0, r.err
    page = Path(r.lines()[0])
    assert page == made / "gallery.html"
    text = page.read_text()
    assert len(cards(page)) == 3
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    # Nothing fetched: every image is a data: URI, no script or style from elsewhere.
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert text.count('src="data:image/jpeg;base64,') == 3
    assert "<b>bold</b>" not in text and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in text
    for name in re.findall(r'class="file"><a href="([^"]+)"', text):
        assert (made / name).is_file()  # links relative to the page


def test_since_reads_the_history(made: Path) -> None:
    r = run_cli(["gallery", "--since", "1d", "-o", "recent.html"])
    assert r.code == 0, r.err
    got = cards(Path("recent.html"))
    assert len(got) == 3 and all("openai/" in c for c in got)


def test_batch_ndjson(made: Path) -> None:
    r = run_cli(["gallery", "--batch", "run.ndjson", "-o", "b/g.html"])
    assert r.code == 0, r.err
    page = Path("b/g.html")
    got = cards(page)
    assert len(got) == 3 and any(c.startswith("a red fox in the snow ") for c in got)
    for href in re.findall(r'class="file"><a href="([^"]+)"', page.read_text()):
        assert (page.parent / href).is_file()


def test_one_source_and_bad_input() -> None:
    assert run_cli(["gallery", ".", "--since", "1d"]).code == 2
    Path("bad.ndjson").write_text("{not json\n")
    r = run_cli(["gallery", "--batch", "bad.ndjson"])
    assert r.code == 2 and "line 1" in r.err
    r = run_cli(["gallery", "-o", "empty.html"])
    assert r.code == 0 and "No images." in Path("empty.html").read_text()


# ------------------------------------------------------------ a real browser


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium installed (Debian: apt-get install chromium; .ci/run does "
                "when root)")


@pytest.fixture
def browser() -> Iterator[Any]:
    exe = _chromium()
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python is not installed (the dev extra "
        "installs it)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def test_in_chromium_no_errors_every_image_filter_works(made: Path, browser: Any) -> None:
    assert run_cli(["gallery", "out"]).code == 0
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("request", lambda req: problems.append(f"request: {req.url}")
            if not req.url.startswith(("file:", "data:")) else None)
    page.goto((made / "gallery.html").absolute().as_uri())
    page.wait_for_load_state("load")
    shown = page.eval_on_selector_all(
        ".card img", "els => els.map(e => e.complete && e.naturalWidth > 0)")
    assert shown == [True, True, True]
    assert page.inner_text("#shown") == "3 of 3 shown"
    page.fill("#filter", "red")
    assert page.inner_text("#shown") == "2 of 3 shown"
    visible = page.eval_on_selector_all(
        ".card:not([hidden]) .prompt", "els => els.map(e => e.textContent)")
    assert sorted(visible) == ["a red barn at dusk", "a red fox in the snow"]
    page.fill("#filter", "red FOX")
    assert page.inner_text("#shown") == "1 of 3 shown"
    page.fill("#filter", "")
    assert page.inner_text("#shown") == "3 of 3 shown"
    # The filter rides in the address: a shared link opens filtered.
    page.goto((made / "gallery.html").absolute().as_uri() + "#q=whale")
    page.reload()
    assert page.inner_text("#shown") == "1 of 3 shown"
    assert problems == []


def test_sorted_newest_first(made: Path) -> None:
    import os
    import time

    files = sorted(made.glob("*.png"))
    now = time.time()
    for age, path in enumerate(files):  # the first file oldest
        os.utime(path, (now - 1000 * (len(files) - age), now - 1000 * (len(files) - age)))
    assert run_cli(["gallery", "out"]).code == 0
    text = (made / "gallery.html").read_text()
    order = [text.index(p.name) for p in reversed(files)]
    assert order == sorted(order)
