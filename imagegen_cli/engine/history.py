"""Remembering every image written: the recorder the writer calls, and the
queries `imagegen history` and `imagegen spend` make.

The writer (save.py) builds one `Entry` per image it writes and hands it to the
run's `Recorder`; `run.py` opens the recorder and closes it with the run's exit
status. Another front door (serve, mcp) that writes an image some other way
calls `record`. History is on unless `[defaults] history = false` or
IMAGEGEN_HISTORY=0; a history that cannot be written is said once and never
fails a run.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from imagegen_cli import clock
from imagegen_cli.errors import UsageError
from imagegen_cli.files.history import Entry, Store, location

if TYPE_CHECKING:
    from imagegen_cli.settings.schema import Config

ENV_SWITCH = "IMAGEGEN_HISTORY"
_OFF = {"0", "false", "no", "off"}
_ON = {"1", "true", "yes", "on"}


def enabled(cfg: Config | None, env: Mapping[str, str]) -> bool:
    """IMAGEGEN_HISTORY (0/1) over `[defaults] history` over on."""
    switch = env.get(ENV_SWITCH, "").strip().lower()
    if switch in _OFF:
        return False
    if switch in _ON:
        return True
    return not (cfg is not None and cfg.defaults.get("history") is False)


def now() -> datetime:
    """Local time, to the second, as rows record it."""
    return clock.now().replace(microsecond=0)


@dataclass
class Recorder:
    """One run's recording: a row per image, the run's status at its end."""

    store: Store
    run: str
    command: str | None = None
    batch: str | None = None
    warn: Callable[[str], None] | None = None
    _started: bool = False
    _broken: bool = field(default=False)

    def __call__(self, entry: Entry) -> None:
        if self._broken:
            return
        try:
            if not self._started:
                self.store.start_run(self.run, now().isoformat(), self.command, self.batch)
                self._started = True
            entry.run = self.run
            self.store.add(entry)
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc)

    def finish(self, status: int) -> None:
        if self._started and not self._broken:
            try:
                self.store.finish_run(self.run, status)
            except (sqlite3.Error, OSError) as exc:
                self._fail(exc)
        self.store.close()

    def _fail(self, exc: Exception) -> None:
        self._broken = True
        if self.warn is not None:
            self.warn(f"history not recorded ({self.store.path}: {exc}); the images are "
                      f"written. IMAGEGEN_HISTORY=0 or `[defaults] history = false` turns "
                      "it off")


def recorder(cfg: Config | None, env: Mapping[str, str], *, command: str | None = None,
             batch: str | None = None,
             warn: Callable[[str], None] | None = None) -> Recorder | None:
    """The run's recorder, or None when history is off."""
    if not enabled(cfg, env):
        return None
    import os

    run = f"{now():%Y%m%dT%H%M%S}-{os.getpid()}-{os.urandom(3).hex()}"
    return Recorder(Store(location(env)), run, command=command, batch=batch, warn=warn)


def record(entry: Entry, *, env: Mapping[str, str] | None = None,
           cfg: Config | None = None) -> int | None:
    """ENTRY into the history, on its own (a front door writing an image outside a run:
    serve, mcp). Its id, or None when history is off. sqlite3.Error/OSError are raised:
    the caller decides what a failed record means to it."""
    import os

    env = os.environ if env is None else env
    if not enabled(cfg, env):
        return None
    store = Store(location(env))
    try:
        return store.add(entry)
    finally:
        store.close()


def reader(env: Mapping[str, str]) -> Store | None:
    """The history to read, or None when none was ever written."""
    path = location(env)
    return Store(path, create=False) if path.exists() else None


# ------------------------------------------------------------ --since

_SPAN = re.compile(r"(\d+)\s*(m|min|h|d|w)", re.IGNORECASE)
_UNIT = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since(text: str | None, flag: str = "--since") -> datetime | None:
    """The start of a --since span: `7d`, `12h`, `30m`, `2w` before now, or a date
    (`2026-11-01`, from its midnight). Now's date is clock.today()'s (IMAGEGEN_TODAY
    pins it)."""
    if text is None:
        return None
    text = text.strip()
    m = _SPAN.fullmatch(text)
    if m:
        current = datetime.combine(clock.today(), now().time())
        return current - timedelta(**{_UNIT[m.group(2).lower()]: int(m.group(1))})
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: write a span (30m, 12h, 7d, 2w) or a date "
                         "(2026-11-01)") from None


def options_of(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved options a row keeps besides its own columns."""
    own = {"prompt", "negative_prompt", "provider", "model", "seed", "generator", "timings"}
    return {k: v for k, v in meta.items() if k not in own and v is not None}


def settings_from_id(image_id: int, env: Mapping[str, str]) -> dict[str, Any]:
    """What `generate --from ID` takes from history row ID (as from an image's
    metadata); UsageError when there is no such row."""
    from imagegen_cli.files.metadata.read import settings_of

    store = reader(env)
    row = store.get(image_id) if store is not None else None
    if store is not None:
        store.close()
    if row is None:
        raise UsageError(f"--from {image_id}: no image {image_id} in the history "
                         f"({location(env)}); `imagegen history` lists them")
    fields = dict(row["options"], prompt=row["prompt"], provider=row["provider"],
                  model=row["model"], seed=row["seed"], generator="imagegen",
                  negative_prompt=row["negative_prompt"] or None)
    return settings_of(fields)
