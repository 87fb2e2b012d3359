"""OpenAI's image model lifecycle: which models are active, deprecated or shut down.

The table is data (imagegen_cli/data/openai_models.json, shipped in the wheel),
read on first use only. A model's status follows from the dates: once its
shutdown date has passed it counts as shut down, whatever the file says, so an
old install still tells the truth. Nothing here imports httpx, Pillow or typer.
"""

from __future__ import annotations

from datetime import date

from imagegen_cli.providers import Entry, Lifecycle
from imagegen_cli.providers.lifecycle import ACTIVE, DEPRECATED, SHUTDOWN

__all__ = ["ACTIVE", "DEPRECATED", "SHUTDOWN", "Entry", "check", "current", "is_openai",
           "lookup", "read_on", "table"]

OPENAI_HOST = "api.openai.com"
# A gateway's 'account/model' id is judged by its last part.
LIFECYCLE = Lifecycle("openai_models.json", "OpenAI", "openai",
                      bare=lambda model: model.rsplit("/", 1)[-1].lower())


def table() -> dict[str, Entry]:
    return LIFECYCLE.table


def read_on() -> str:
    """The day the table's sources were last read (YYYY-MM-DD)."""
    return LIFECYCLE.read_on()


def lookup(model: str | None) -> Entry | None:
    return LIFECYCLE.lookup(model)


def current(today: date | None = None) -> list[str]:
    """Models one can still call on OpenAI: active first, then deprecated."""
    return LIFECYCLE.current(today)


def is_openai(base_url: str | None) -> bool:
    """True for OpenAI's own API (where shut-down models are gone for good)."""
    from urllib.parse import urlsplit

    host = (urlsplit(base_url or f"https://{OPENAI_HOST}/v1").hostname or "").lower()
    return host == OPENAI_HOST


def check(model: str | None, base_url: str | None, today: date | None = None,
          provider: str = "openai", *, first_party: bool = False) -> str | None:
    """A warning to print, or None; UsageError (exit 2) for a shut-down model on OpenAI
    itself, or where FIRST_PARTY says the model is the real one (Azure, a deployment
    mapped to it); a gateway only warns."""
    return LIFECYCLE.check(model, first_party=first_party or is_openai(base_url),
                           provider=provider, today=today)
