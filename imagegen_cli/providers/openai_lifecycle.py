"""OpenAI's image model lifecycle: which models are active, deprecated or shut down.

The table is data (imagegen_cli/data/openai_models.json, shipped in the wheel),
read on first use only. A model's status follows from the dates: once its
shutdown date has passed it counts as shut down, whatever the file says, so an
old install still tells the truth. Nothing here imports httpx, Pillow or typer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from imagegen_cli import clock
from imagegen_cli.providers import UsageError

OPENAI_HOST = "api.openai.com"
ACTIVE, DEPRECATED, SHUTDOWN = "active", "deprecated", "shut down"


@dataclass(frozen=True)
class Entry:
    model: str
    declared: str  # "active" | "deprecated" | "shutdown", as the file says
    shutdown: date | None
    deprecated: date | None
    replacement: str | None
    also: str | None
    source: str  # the page the fact comes from
    read: str  # when that page was read

    def status(self, today: date | None = None) -> str:
        today = today or clock.today()
        if self.declared == "shutdown" or (self.shutdown and today >= self.shutdown):
            return SHUTDOWN
        if self.declared == "deprecated" or (self.deprecated and today >= self.deprecated):
            return DEPRECATED
        return ACTIVE

    def use_instead(self) -> str:
        return self.replacement + (f" or {self.also}" if self.also else "") \
            if self.replacement else "a current model (see `imagegen providers models openai`)"

    def describe(self, today: date | None = None) -> str:
        """'active', 'deprecated: shuts down 2026-12-01, use X' or 'shut down 2026-10-23, use X'."""
        status = self.status(today)
        if status == ACTIVE:
            return ACTIVE
        when = self.shutdown.isoformat() if self.shutdown else "date unknown"
        head = f"deprecated: shuts down {when}" if status == DEPRECATED else f"shut down {when}"
        return f"{head}, use {self.use_instead()}"

    def as_json(self, today: date | None = None) -> dict[str, Any]:
        return {"model": self.model, "status": self.status(today),
                "shutdown": self.shutdown.isoformat() if self.shutdown else None,
                "replacement": self.replacement, "source": self.source, "read": self.read}


@lru_cache(maxsize=1)
def table() -> dict[str, Entry]:
    from importlib.resources import files

    raw = json.loads(files("imagegen_cli").joinpath("data/openai_models.json")
                     .read_text(encoding="utf-8"))
    sources: dict[str, str] = raw["sources"]

    def day(value: Any) -> date | None:
        return date.fromisoformat(value) if value else None

    return {m["model"]: Entry(model=m["model"], declared=m["status"],
                              shutdown=day(m.get("shutdown")),
                              deprecated=day(m.get("deprecated")),
                              replacement=m.get("replacement"), also=m.get("also"),
                              source=sources.get(m.get("source", ""), m.get("source", "")),
                              read=raw["read"])
            for m in raw["models"]}


def read_on() -> str:
    """The day the table's sources were last read (YYYY-MM-DD)."""
    return next(iter(table().values())).read


def lookup(model: str | None) -> Entry | None:
    """The entry for MODEL; a gateway's 'account/model' id is judged by its last part."""
    name = (model or "").rsplit("/", 1)[-1].lower()
    return table().get(name)


def current(today: date | None = None) -> list[str]:
    """Models one can still call on OpenAI: active first, then deprecated, newest first."""
    entries = [e for e in table().values() if e.status(today) != SHUTDOWN]
    entries.sort(key=lambda e: e.status(today) != ACTIVE)  # stable: keeps the file's order
    return [e.model for e in entries]


def is_openai(base_url: str | None) -> bool:
    """True for OpenAI's own API (where shut-down models are gone for good)."""
    from urllib.parse import urlsplit

    host = (urlsplit(base_url or f"https://{OPENAI_HOST}/v1").hostname or "").lower()
    return host == OPENAI_HOST


def check(model: str | None, base_url: str | None, today: date | None = None,
          provider: str = "openai", *, first_party: bool = False) -> str | None:
    """A warning to print, or None; UsageError (exit 2) for a shut-down model on OpenAI
    itself, or where FIRST_PARTY says the model is the real one (Azure, a deployment
    mapped to it). Gateways keep old models alive under their own terms, so there a
    shut-down model only warns. The caller prints each warning once (a batch says it
    once)."""
    entry = lookup(model)
    if entry is None:
        return None
    status = entry.status(today)
    if status == ACTIVE:
        return None
    when = entry.shutdown.isoformat() if entry.shutdown else "an unknown date"
    if status == SHUTDOWN and (first_party or is_openai(base_url)):
        raise UsageError(f"Model {model} was shut down by OpenAI on {when}: pass -m "
                         f"{entry.replacement or 'a current model'} (or set providers.{provider}."
                         "model), see `imagegen providers models openai`")
    if status == SHUTDOWN:
        return (f"model {model} was shut down by OpenAI on {when}; this gateway may still "
                f"serve it. Its replacement is {entry.use_instead()}")
    return (f"model {model} is deprecated and shuts down on {when}: switch to "
            f"{entry.use_instead()}")
