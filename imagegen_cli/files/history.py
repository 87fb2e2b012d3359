"""The history database: every image imagegen wrote, searchable.

One SQLite file in the platform's state folder (`~/.local/state/imagegen/history.db`
on Linux; IMAGEGEN_HISTORY_DB names another). WAL journal and a busy timeout, so
many imagegen processes (a batch per shard, `serve`, a script's loop) write at
once; each image is one short transaction. Prompts are indexed with FTS5 (an
external-content table kept in step by triggers), so a text search over a million
rows answers in milliseconds.

    runs     id, started, command, batch, status (the run's exit status, once known)
    images   id, time, run, job, prompt, negative_prompt, provider, model,
             options (JSON: what was asked and what the provider chose), seed,
             cost_usd, cost_source, path, sha256, bytes, width, height, format
    prompts  FTS5 over images(prompt, negative_prompt, provider)

Nothing here knows where a row comes from: the engine's recorder
(engine/history.py) fills it. No key is ever stored: rows are built from the
metadata the writer embeds, already redacted.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ENV_DB = "IMAGEGEN_HISTORY_DB"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    command TEXT,
    batch TEXT,
    status INTEGER
);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    run TEXT,
    job TEXT,
    prompt TEXT NOT NULL DEFAULT '',
    negative_prompt TEXT NOT NULL DEFAULT '',
    provider TEXT,
    model TEXT,
    options TEXT,
    seed INTEGER,
    cost_usd REAL,
    cost_source TEXT,
    path TEXT,
    sha256 TEXT,
    bytes INTEGER,
    width INTEGER,
    height INTEGER,
    format TEXT
);
-- --since, and what `spend` adds up read from this index alone (a covering index).
CREATE INDEX IF NOT EXISTS images_time ON images(time, provider, model, cost_usd);
CREATE INDEX IF NOT EXISTS images_run ON images(run);
CREATE VIRTUAL TABLE IF NOT EXISTS prompts USING fts5(
    prompt, negative_prompt, provider, content='images', content_rowid='id');
CREATE TRIGGER IF NOT EXISTS images_ai AFTER INSERT ON images BEGIN
    INSERT INTO prompts(rowid, prompt, negative_prompt, provider)
    VALUES (new.id, new.prompt, new.negative_prompt, new.provider);
END;
CREATE TRIGGER IF NOT EXISTS images_ad AFTER DELETE ON images BEGIN
    INSERT INTO prompts(prompts, rowid, prompt, negative_prompt, provider)
    VALUES ('delete', old.id, old.prompt, old.negative_prompt, old.provider);
END;
"""

COLUMNS = ("id", "time", "run", "job", "prompt", "negative_prompt", "provider", "model",
           "options", "seed", "cost_usd", "cost_source", "path", "sha256", "bytes", "width",
           "height", "format")


def location(env: Mapping[str, str]) -> Path:
    """Where the history lives: IMAGEGEN_HISTORY_DB, else the platform's state folder."""
    named = env.get(ENV_DB, "").strip()
    if named:
        return Path(named).expanduser()
    import platformdirs

    return Path(platformdirs.user_state_dir("imagegen", appauthor=False)) / "history.db"


@dataclass
class Entry:
    """One image written, as recorded."""

    time: str  # ISO 8601, local time with its offset
    prompt: str
    negative_prompt: str | None
    provider: str | None
    model: str | None
    options: dict[str, Any]
    seed: int | None
    cost_usd: float | None
    cost_source: str | None
    path: str
    sha256: str
    bytes: int
    width: int
    height: int
    format: str
    run: str | None = None
    job: str | None = None


class Store:
    """The database at PATH, opened on first use (so that a run writing nothing never
    creates it); one connection per Store, usable from any one thread at a time."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self.create = create
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if self.create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # Prompts are private: the file is the user's alone (as config files are).
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            elif not self.path.exists():
                raise FileNotFoundError(str(self.path))
            db = sqlite3.connect(self.path, timeout=10, check_same_thread=False,
                                 isolation_level=None)
            db.execute("PRAGMA busy_timeout = 10000")
            if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                db.execute("PRAGMA journal_mode = WAL")  # persistent: once per file
                # IF NOT EXISTS throughout, in one write transaction: two first runs
                # at once create it once.
                try:
                    db.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}"
                                     f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
                except sqlite3.Error:
                    db.close()
                    raise
            # WAL with NORMAL: a commit is durable once checkpointed, never corrupt; one
            # fsync per image would cost more than writing the image.
            db.execute("PRAGMA synchronous = NORMAL")
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # ------------------------------------------------------------ writing

    def start_run(self, run: str, started: str, command: str | None,
                  batch: str | None) -> None:
        with self._lock:
            self._conn().execute(
                "INSERT OR IGNORE INTO runs(id, started, command, batch) VALUES (?,?,?,?)",
                (run, started, command, batch))

    def finish_run(self, run: str, status: int) -> None:
        with self._lock:
            self._conn().execute("UPDATE runs SET status = ? WHERE id = ?", (status, run))

    def add(self, entry: Entry) -> int:
        row = (entry.time, entry.run, entry.job, entry.prompt, entry.negative_prompt or "",
               entry.provider, entry.model,
               json.dumps(entry.options, ensure_ascii=False, sort_keys=True, default=str),
               entry.seed, entry.cost_usd, entry.cost_source, entry.path, entry.sha256,
               entry.bytes, entry.width, entry.height, entry.format)
        with self._lock:
            cur = self._conn().execute(
                f"INSERT INTO images({', '.join(COLUMNS[1:])}) VALUES "
                f"({', '.join('?' * (len(COLUMNS) - 1))})", row)
            return int(cur.lastrowid or 0)

    def add_many(self, entries: list[Entry]) -> None:
        """ENTRIES in one transaction (the bench's million rows)."""
        db = self._conn()
        with self._lock:
            db.execute("BEGIN")
            for e in entries:
                db.execute(
                    f"INSERT INTO images({', '.join(COLUMNS[1:])}) VALUES "
                    f"({', '.join('?' * (len(COLUMNS) - 1))})",
                    (e.time, e.run, e.job, e.prompt, e.negative_prompt or "", e.provider,
                     e.model, json.dumps(e.options), e.seed, e.cost_usd, e.cost_source,
                     e.path, e.sha256, e.bytes, e.width, e.height, e.format))
            db.execute("COMMIT")

    # ------------------------------------------------------------ reading

    def search(self, text: str | None = None, *, since: datetime | None = None,
               provider: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The newest LIMIT images matching: TEXT (full-text, every word, each a prefix
        when it ends in *), written at or after SINCE, by PROVIDER."""
        where: list[str] = []
        args: list[str | int] = []
        if text or provider:
            # The full-text table leads, newest first: FTS5 walks its index in rowid
            # order and stops at LIMIT, whatever the number of matches (a common word
            # over a million rows: a fraction of a ms, not a sort of every match). The
            # provider is in that index too, so a filter few rows pass costs no walk.
            match = []
            if text:
                match.append(f"{{prompt negative_prompt}} : ({fts_query(text)})")
            if provider:
                match.append(f"provider : ({fts_query(provider)})")
            source = "prompts JOIN images ON images.id = prompts.rowid"
            where.append("prompts MATCH ?")
            args.append(" AND ".join(match))
            key = "prompts.rowid"
        else:
            source, key = "images", "images.id"
        if provider:
            where.append("images.provider = ?")  # the index matched words: exact here
            args.append(provider)
        if since is not None:
            where.append("images.time >= ?")
            args.append(since.isoformat(timespec="seconds"))
            # Rows are added as images are written, so ids follow time: the first id
            # at SINCE bounds the walk (a clock set back may hide a row from --since).
            where.append(f"{key} >= coalesce((SELECT id FROM images WHERE time >= ? "
                         "ORDER BY time LIMIT 1), 1 << 62)")
            args.append(since.isoformat(timespec="seconds"))
        sql = (f"SELECT {', '.join('images.' + c for c in COLUMNS)}, "
               "(SELECT status FROM runs WHERE runs.id = images.run) "
               f"FROM {source}" + (f" WHERE {' AND '.join(where)}" if where else "")
               + f" ORDER BY {key} DESC LIMIT ?")
        args.append(max(0, limit))
        with self._lock:
            rows = self._conn().execute(sql, args).fetchall()
        return [_row(r) for r in rows]

    def get(self, image_id: int) -> dict[str, Any] | None:
        with self._lock:
            r = self._conn().execute(
                f"SELECT {', '.join('images.' + c for c in COLUMNS)}, runs.status FROM images "
                "LEFT JOIN runs ON runs.id = images.run WHERE images.id = ?",
                (image_id,)).fetchone()
        return _row(r) if r is not None else None

    def spend(self, *, since: datetime | None = None, by: str = "provider",
              ) -> list[dict[str, Any]]:
        """Cost per provider, model or day: images, known USD, images of unknown price."""
        key = {"provider": "provider", "model": "provider || '/' || model",
               "day": "substr(time, 1, 10)"}[by]
        sql = (f"SELECT {key} AS k, count(*), sum(cost_usd), "
               "sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) FROM images"
               + (" WHERE time >= ?" if since is not None else "")
               + " GROUP BY k ORDER BY k")
        args = [since.isoformat(timespec="seconds")] if since is not None else []
        with self._lock:
            rows = self._conn().execute(sql, args).fetchall()
        return [{by: k, "images": n, "cost_usd": round(usd or 0.0, 6), "unknown": unknown}
                for k, n, usd, unknown in rows]


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(COLUMNS, r[:len(COLUMNS)], strict=True))
    try:
        out["options"] = json.loads(out["options"] or "{}")
    except ValueError:
        out["options"] = {}
    out["run_status"] = r[len(COLUMNS)]
    return out


def fts_query(text: str) -> str:
    """TEXT as an FTS5 query: each word a quoted term (so punctuation and FTS5's own
    operators are plain text), all of them required; a word ending in * a prefix."""
    terms = []
    for word in text.split():
        prefix = word.endswith("*")
        word = word.rstrip("*").replace('"', '""')
        if word:
            terms.append(f'"{word}"' + ("*" if prefix else ""))
    return " ".join(terms) or '""'
