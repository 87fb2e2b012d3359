"""Secrets: the one registry of values never to print, and the redaction every
output path runs text through.

Two mechanisms, applied together by `redact`:
- values registered as secrets (API keys, as soon as they are read; passwords
  and secret query values found in configured URLs; --param values whose name
  looks secret) are replaced wherever they appear;
- any URL in the text loses its userinfo (`https://user:KEY@host` ->
  `https://***@host`) and the values of secret-looking query parameters
  (`?api-key=KEY` -> `?api-key=***`), registered or not.
Nothing here imports httpx: it is on every command's path.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
SENSITIVE_HEADERS = {"authorization", "proxy-authorization", "x-key", "api-key", "x-api-key",
                     "x-goog-api-key"}

_secrets: set[str] = set()
_lock = threading.Lock()

# scheme://userinfo@ : the userinfo is dropped whole (a key may sit in the user part too).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/?#@\s\"'<>]*)@")
# ?name=value or &name=value where the name looks secret.
_QUERY = re.compile(r"([?&;])([^=&;#\s\"'<>]+)=([^&;#\s\"'<>]*)")
_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "pwd", "auth", "signature",
                 "sig", "credential", "session")


def looks_secret(name: str) -> bool:
    """Whether a field, parameter or query name suggests its value is a secret."""
    norm = re.sub(r"[^a-z0-9]", "", name.lower())
    return norm in _SECRET_WORDS or any(norm.endswith(w) for w in _SECRET_WORDS) or any(
        w in norm for w in ("apikey", "accesskey", "secret", "password"))


def register_secret(value: str | None) -> None:
    """Every output path runs through `redact`; register keys as soon as they are read.
    The value is registered as given and stripped (a key read with a stray line break)."""
    if not value:
        return
    import json
    from urllib.parse import quote, quote_plus

    if value in _secrets and quote_plus(value) in _secrets:  # a batch: once per job
        return

    forms = set()
    for v in {value, value.strip()}:
        # As it may be shown: itself, URL-encoded, or escaped inside a JSON string.
        forms |= {v, quote(v), quote(v, safe=""), quote_plus(v), json.dumps(v)[1:-1],
                  json.dumps(v, ensure_ascii=False)[1:-1]}
    with _lock:
        _secrets.update(f for f in forms if len(f) >= 4)


def register_url(url: str | None) -> None:
    """Register the password, user and secret query values of URL (a configured
    base_url may carry a key: `https://user:KEY@host/v1?api-key=KEY`)."""
    if not url:
        return
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
        query = parse_qsl(parts.query, keep_blank_values=False)
    except ValueError:
        return
    for value in (password, user if "@" in parts.netloc else None):
        if value:
            register_secret(value)
            register_secret(unquote(value))
    for name, value in query:
        if looks_secret(name):
            register_secret(value)


def _query_sub(m: re.Match[str]) -> str:
    sep, name, value = m.group(1), m.group(2), m.group(3)
    if value and looks_secret(unquote(name)):
        return f"{sep}{name}={MASK}"
    return m.group(0)


def redact(text: str) -> str:
    """TEXT with every registered secret, URL userinfo and secret query value masked."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, MASK)
    if "@" in text:
        text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    if "=" in text:
        text = _QUERY.sub(_query_sub, text)
    return text


def redact_url(url: str) -> str:
    return redact(url)


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    out = {}
    for k, v in headers.items():
        if k.lower() in SENSITIVE_HEADERS:
            scheme = v.split(" ", 1)[0] if " " in v else ""
            out[k] = f"{scheme} {MASK}".strip()
        else:
            out[k] = redact(v)
    return out


def redact_data(value: Any) -> Any:
    """A JSON-able copy of VALUE with secret-looking fields masked and every string
    redacted (request bodies, --param, metadata)."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and isinstance(v, str) and v and looks_secret(k)
                    else redact_data(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_data(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def register_params(params: dict[str, Any]) -> None:
    """--param values whose name looks secret are secrets from here on."""
    for k, v in params.items():
        if looks_secret(k) and isinstance(v, str):
            register_secret(v)
