"""A provider's model lifecycle: which models are active, deprecated or shut down.

One `Lifecycle` per dialect that ships a table (data/NAME_models.json in the wheel,
read on first use only): `{"read": DAY, "sources": {key: url}, "models": [{"model",
"status", "shutdown", "deprecated", "replacement", "also", "source", "read"}]}`. A
model's status follows from the dates: once its shutdown date has passed it counts as
shut down, whatever the file says, so an old install still tells the truth on any day
(`clock.today()`, pinned by IMAGEGEN_TODAY). Nothing here imports httpx, Pillow or typer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Any

from imagegen_cli import clock
from imagegen_cli.errors import UsageError

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
    provider_type: str = ""  # for "see `imagegen providers models TYPE`"

    def status(self, today: date | None = None) -> str:
        today = today or clock.today()
        if self.declared == "shutdown" or (self.shutdown and today >= self.shutdown):
            return SHUTDOWN
        if self.declared == "deprecated" or (self.deprecated and today >= self.deprecated):
            return DEPRECATED
        return ACTIVE

    def use_instead(self) -> str:
        if not self.replacement:
            return (f"a current model (see `imagegen providers models "
                    f"{self.provider_type}`)")
        return self.replacement + (f" or {self.also}" if self.also else "")

    def describe(self, today: date | None = None) -> str:
        """'active', 'deprecated: shuts down 2026-12-01, use X' or 'shut down 2026-10-23,
        use X'."""
        status = self.status(today)
        if status == ACTIVE:
            return ACTIVE
        when = self.shutdown.isoformat() if self.shutdown else "date not announced"
        head = f"deprecated: shuts down {when}" if status == DEPRECATED else f"shut down {when}"
        return f"{head}, use {self.use_instead()}"

    def as_json(self, today: date | None = None) -> dict[str, Any]:
        return {"model": self.model, "status": self.status(today),
                "shutdown": self.shutdown.isoformat() if self.shutdown else None,
                "replacement": self.replacement, "source": self.source, "read": self.read}


class Lifecycle:
    """The table in PACKAGE's data/DATA of VENDOR's models (type PROVIDER_TYPE); BARE
    turns a model id as written (a gateway's 'account/model', the API's 'models/x')
    into the table's key."""

    def __init__(self, data: str, vendor: str, provider_type: str,
                 bare: Callable[[str], str] = str.lower, package: str = "imagegen_cli") -> None:
        self.data = data
        self.package = package  # whose data/ holds the table (a plugin names its own)
        self.vendor = vendor
        self.provider_type = provider_type
        self.bare = bare

    @cached_property
    def table(self) -> dict[str, Entry]:
        from importlib.resources import files

        raw = json.loads(files(self.package).joinpath(f"data/{self.data}")
                         .read_text(encoding="utf-8"))
        sources: dict[str, str] = raw["sources"]

        def day(value: Any) -> date | None:
            return date.fromisoformat(value) if value else None

        return {m["model"]: Entry(model=m["model"], declared=m["status"],
                                  shutdown=day(m.get("shutdown")),
                                  deprecated=day(m.get("deprecated")),
                                  replacement=m.get("replacement"), also=m.get("also"),
                                  source=sources.get(m.get("source", ""), m.get("source", "")),
                                  read=m.get("read") or raw["read"],
                                  provider_type=self.provider_type)
                for m in raw["models"]}

    def read_on(self) -> str:
        """The day the table's sources were last read (YYYY-MM-DD)."""
        return max(e.read for e in self.table.values())

    def lookup(self, model: str | None) -> Entry | None:
        return self.table.get(self.bare(model or ""))

    def current(self, today: date | None = None) -> list[str]:
        """Models one can still call: active first, then deprecated (the file's order)."""
        entries = [e for e in self.table.values() if e.status(today) != SHUTDOWN]
        entries.sort(key=lambda e: e.status(today) != ACTIVE)  # stable
        return [e.model for e in entries]

    def check(self, model: str | None, *, first_party: bool, provider: str,
              today: date | None = None) -> str | None:
        """A warning to print, or None; UsageError (exit 2) for a shut-down model where
        FIRST_PARTY says the vendor itself answers (its own API, or a deployment mapped
        to the real model). Gateways and proxies keep old models alive under their own
        terms, so there a shut-down model only warns. The caller prints each warning
        once (a batch says it once)."""
        entry = self.lookup(model)
        if entry is None:
            return None
        status = entry.status(today)
        if status == ACTIVE:
            return None
        when = entry.shutdown.isoformat() if entry.shutdown else "a date not yet announced"
        if status == SHUTDOWN and first_party:
            raise UsageError(f"Model {model} was shut down by {self.vendor} on {when}: pass "
                             f"-m {entry.replacement or 'a current model'} (or set "
                             f"providers.{provider}.model), see `imagegen providers models "
                             f"{self.provider_type}`")
        if status == SHUTDOWN:
            return (f"model {model} was shut down by {self.vendor} on {when}; this endpoint "
                    f"may still serve it. Its replacement is {entry.use_instead()}")
        return (f"model {model} is deprecated by {self.vendor} and shuts down on {when}: "
                f"switch to {entry.use_instead()}")
