"""A batch's jobs, made from its records as the run takes them.

A million-line prompt file must start its first request within seconds and keep
memory flat in its length: nothing here holds every record or every job. Records
come from `records.stream` one at a time; `Templates` settles each distinct set of
options once (records that differ only in their prompt share it) and gives each
record its own copy; `KeyMaker` keys jobs in about 24 bytes each (the occurrence
numbers that keep identical records distinct jobs); the shard keeps its own.

The first WINDOW records are read, settled and checked before anything is sent, so
a batch of that size is refused whole (exit 2) for one bad record, as always. A
longer input is checked as it is read: a bad record further on stops the batch
there (no new call starts; what is finished is journaled), exit 2 naming its line.
"""

from __future__ import annotations

import copy
import itertools
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen_cli.engine.fallback import settle_chain
from imagegen_cli.engine.jobs import Job, KeyMaker, Member, Shard
from imagegen_cli.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from imagegen_cli.engine.options import Context
    from imagegen_cli.engine.records import Record
    from imagegen_cli.types import ImageRequest

# Records read and settled before the first request: a batch this size is checked whole.
WINDOW = 10_000
# Distinct option sets kept settled at once (records mostly share a few).
TEMPLATES = 256


def with_prompt(req: ImageRequest, prompt: str) -> ImageRequest:
    """REQ for another PROMPT: a shallow copy (dataclasses.replace re-runs every
    field's init, 40 us a request; this is 1)."""
    new = copy.copy(req)
    object.__setattr__(new, "prompt", prompt)
    return new


def _options_key(rec: Record) -> tuple[Any, ...]:
    """What decides a record's settled job besides its prompt: the fields it set
    (every record starts from the same flags)."""
    opts = rec.options
    out = []
    for name in sorted(rec.given):
        if name in ("prompt", "id"):
            continue
        from imagegen_cli.settings import options as table

        row = table.by_record(name)
        attr = row.name if row is not None else name
        out.append((attr, repr(getattr(opts, attr, None))))
    return tuple(out)


class Templates:
    """Settles each distinct set of a record's options once; every record gets its own
    copy of that job with its prompt, checked against each provider's prompt limit
    (the only check that reads the prompt). ON_NEW hooks see each newly settled job
    (key and output checks, stale-file cleanup, a cost cap's price check)."""

    def __init__(self, ctx: Context, check: Callable[[Job], None]) -> None:
        self.ctx = ctx
        self.check = check
        self.cache: OrderedDict[tuple[Any, ...], Job] = OrderedDict()
        self.on_new: list[Callable[[Job], object]] = []
        # The templates settled before the run (while the first records are read): the
        # hooks added then run over them. Not kept after: hooks see every later one.
        self.made: list[Job] | None = []

    def job(self, rec: Record) -> Job:
        key = _options_key(rec)
        tpl = self.cache.get(key)
        if tpl is not None:
            self.cache.move_to_end(key)
            return self._copy(tpl, str(rec.options.prompt).strip())
        tpl = settle_chain(rec.options, self.ctx, inpaint=rec.inpaint)
        tpl.id, tpl.line = rec.id or str(rec.default_id), rec.line  # what a hook's error names
        self.check(tpl)
        for hook in self.on_new:
            hook(tpl)
        self.cache[key] = tpl
        if self.made is not None:
            self.made.append(tpl)
        if len(self.cache) > TEMPLATES:
            self.cache.popitem(last=False)
        return self._copy(tpl, tpl.request.prompt)

    def add_hook(self, hook: Callable[[Job], object]) -> None:
        """HOOK over the templates settled so far, and every one settled from now."""
        for tpl in self.made or ():
            hook(tpl)
        self.on_new.append(hook)

    def seal(self) -> None:
        """The run starts: every hook is in; templates settled from now are not kept."""
        self.made = None

    @staticmethod
    def _copy(tpl: Job, prompt: str) -> Job:
        members = []
        for i, m in enumerate(tpl.members):
            limit = m.provider.capabilities(m.request.model).prompt_max
            if limit and len(prompt) > limit:
                text = (f"Prompt is {len(prompt)} characters; provider {m.provider.name} "
                        f"(model {m.request.model}) takes at most {limit}")
                raise UsageError(text if i == 0 else f"Fallback provider {m.provider.name} "
                                 f"cannot take this request: {text}")
            members.append(Member(m.provider, m.pcfg, with_prompt(m.request, prompt),
                                  m.pricing, m.key))
        job = copy.copy(tpl)
        job.request = members[0].request if members else with_prompt(tpl.request, prompt)
        job.members = members
        return job


class JobStream:
    """The jobs of a batch in record order, made as they are taken: the shard's jobs
    only, each keyed for the journal. `prime()` reads the first WINDOW records (a bad
    one is exit 2 before anything is sent); iterating goes on from there."""

    def __init__(self, records: Iterator[Record], ctx: Context, *, source: str,
                 check: Callable[[Job], None], shard: Shard | None = None,
                 width: int | None = None, on_invalid: Callable[[UsageError], None] |
                 None = None, window: int | None = None) -> None:
        self.records = records
        self.source = source
        self.shard = shard
        self.width = width
        self.on_invalid = on_invalid
        self.window = window if window is not None else WINDOW
        self.templates = Templates(ctx, check)
        self.keys = KeyMaker()
        self.ahead: deque[Job] = deque()
        self.made = 0  # jobs of the shard made so far
        self.records_read = 0
        self.valid = 0  # records settled into a job (any shard's)
        self.exhausted = False

    @property
    def total(self) -> int | None:
        """Jobs of this batch (the shard's), once the whole input has been read."""
        return self.made if self.exhausted else None

    def prime(self) -> None:
        """Read and settle up to WINDOW records now; the width of the default ids comes
        from the last line read when the input ends within them."""
        # Read (and so parse) them all first, then settle: a file's syntax errors are
        # said before any record's settings are judged, as when it was read whole.
        recs = list(itertools.islice(self.records, self.window))
        self.exhausted = len(recs) < self.window
        pending: list[tuple[Record, Job]] = []
        for rec in recs:
            job = self._settle(rec)
            if job is not None:
                pending.append((rec, job))
        if self.exhausted or self.width is None:
            # Ids are zero-filled to the last record's line number, when it was read.
            self.width = len(str(pending[-1][0].default_id)) if pending and self.exhausted \
                else self.width or 1
        for rec, job in pending:
            self._finish(rec, job)

    def __iter__(self) -> Iterator[Job]:
        while self.ahead:
            yield self.ahead.popleft()
        if self.exhausted:
            return
        for rec in self.records:
            job = self._settle(rec)
            if job is None:
                continue
            self._finish(rec, job)
            while self.ahead:
                yield self.ahead.popleft()
        self.exhausted = True

    def primed(self) -> list[Job]:
        """The jobs read ahead and not taken yet."""
        return list(self.ahead)

    def _settle(self, rec: Record) -> Job | None:
        self.records_read += 1
        try:
            job = self.templates.job(rec)
            self.valid += 1
            return job
        except (UsageError, ConfigError) as exc:
            f = "output" if exc.message.startswith("output ") else rec.field_in(exc.message)
            where = f", field '{f}'" if f else ""
            exc.message = f"{self.source}, line {rec.line}{where}: {exc.message}"
            if self.on_invalid is None or isinstance(exc, ConfigError):
                raise
            self.on_invalid(exc)
            return None

    def _finish(self, rec: Record, job: Job) -> None:
        job.id, job.line = rec.id or str(rec.default_id).zfill(self.width or 1), rec.line
        self.keys.assign(job, rec.id is not None)
        if self.shard is None or self.shard.holds(job.shard_key):
            self.made += 1
            self.ahead.append(job)


def count_lines(path: Path) -> int | None:
    """Lines in the regular file PATH, counted in flat memory (the width of a long
    batch's default ids); None for anything else (stdin, a pipe)."""
    try:
        if not path.is_file():
            return None
        n, last = 0, b"\n"
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                n += chunk.count(b"\n")
                last = chunk[-1:]
        return n + (last != b"\n")
    except OSError:
        return None
