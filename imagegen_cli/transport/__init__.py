"""The one HTTP client and what it needs: deadlines, retries, classification of
answers, downloads, streamed bodies, rate limits, and base64 of image payloads.

httpx's own __init__ imports httpx._main, its command-line client (click,
rich.console, rich.progress, rich.syntax, pygments), only to offer `httpx.main`:
about a third of httpx's import time, paid by every run that sends a request
(bench/bench.py). A None in sys.modules makes that import fail over to the
placeholder httpx defines for when its CLI extra is missing; nothing here uses
`httpx.main`. Set before any module of this package imports httpx.
"""

import sys

if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
