"""One HTTP request as data (`HttpCall`), and how requests and answers are shown.

`HttpCall` is what a provider builds and the Transport sends; `describe` prints it
for --dry-run with secrets redacted. `summarise`, `short_value` and `body_summary`
shorten bodies for --dry-run and --debug (base64 images shown by size, secrets
redacted). Nothing here imports httpx at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imagegen_cli.secrets import redact, redact_data, redact_headers

if TYPE_CHECKING:
    import httpx


@dataclass
class HttpCall:
    """One request, ready to send, and printable for --dry-run."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: dict[str, str] | None = None  # multipart text fields
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None  # multipart files
    # False for a call that starts paid work (a job submit): once it may have reached
    # the server (a timeout or a dropped connection after sending), it is never sent
    # again, which could pay twice; only a failure to connect, or an answer that says
    # nothing was done (429, 5xx), is retried.
    resend_when_lost: bool = True

    def __post_init__(self) -> None:
        # Calls are built as BASE + "/path"; a base_url with a query (a gateway's
        # `?api-version=...`) keeps its query at the end of every call's URL.
        head, sep, rest = self.url.partition("?")
        if sep and "/" in rest:
            query, _, tail = rest.partition("/")
            self.url = f"{head}/{tail}?{query}"

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "url": self.url,
            "headers": redact_headers(self.headers),
        }
        if self.json is not None:
            out["body"] = summarise(redact_data(self.json))
        if self.files is not None or self.data is not None:
            out["multipart"] = {
                "fields": redact_data(dict(self.data or {})),
                "files": [
                    {"name": name, "filename": f[0], "content_type": f[2], "bytes": len(f[1])}
                    for name, f in (self.files or [])
                ],
            }
        redacted: dict[str, Any] = json.loads(redact(json.dumps(out, default=short_value)))
        return redacted


def summarise(value: Any) -> Any:
    """The body as sent, but with long strings (base64 images) shown by size."""
    if isinstance(value, str) and len(value) > 512:
        return f"<{len(value)} characters>"
    if type(value).__name__ == "Spool":  # base64 decoded to disk as it arrived
        return f"<{getattr(value, 'size', 0)} bytes decoded from base64>"
    if isinstance(value, dict):
        return {k: summarise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [summarise(v) for v in value]
    return value


def body_summary(resp: httpx.Response) -> str:
    """A response body for --debug: JSON with long strings (base64) shown by size,
    anything else cut short; secrets redacted."""
    try:
        text = json.dumps(summarise(resp.json()), ensure_ascii=False)
    except ValueError:
        text = resp.text[:1000] if resp.content else "(empty)"
    return redact(text)


def short_value(value: Any) -> str:
    return f"<{type(value).__name__}>"
