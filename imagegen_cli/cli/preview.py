"""`--preview`: each written image, inline in the terminal (stdout must be one).

iTerm2 and WezTerm get iTerm2's inline-image escape (a dozen lines, no library);
everything else goes through textual-image, which asks the terminal what it
speaks: sixel, kitty's graphics protocol, else coloured half-blocks. Loaded
only here, so `--help` and runs without --preview never import it.
"""

from __future__ import annotations

import base64
import os
import sys

from imagegen_cli.cli.console import warn

# Cells across: big enough to judge the image, small enough to leave the paths in view.
WIDTH = 40
ITERM2 = {"iTerm.app", "WezTerm"}


def show(paths: list[str]) -> None:
    """Preview PATHS; a terminal that cannot show them costs a warning, never the run."""
    if not paths or not sys.stdout.isatty():
        return
    try:
        _show(paths)
    except Exception as exc:  # noqa: BLE001 - the images are written; the preview is a bonus

        warn(f"--preview: this terminal could not show the image ({type(exc).__name__}: "
             f"{exc})")


def _show(paths: list[str]) -> None:
    if os.environ.get("TERM_PROGRAM") in ITERM2:
        for path in paths:
            _iterm2(path)
        return
    import logging

    from rich.console import Console
    from textual_image.renderable import Image

    logging.getLogger("textual_image").setLevel(logging.ERROR)
    console = Console()
    width = min(WIDTH, max(8, console.width - 2))
    for path in paths:
        console.print(Image(path, width=width, height="auto"))


def _iterm2(path: str) -> None:
    with open(path, "rb") as fh:
        data = fh.read()
    name = base64.b64encode(os.path.basename(path).encode()).decode()
    sys.stdout.write(f"\x1b]1337;File=name={name};size={len(data)};inline=1;"
                     f"width={WIDTH};preserveAspectRatio=1:"
                     f"{base64.b64encode(data).decode()}\a\n")
    sys.stdout.flush()
