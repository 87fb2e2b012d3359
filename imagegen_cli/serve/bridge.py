"""One image request through the engine, for the server's and the MCP tools' clients.

A `Door` is made once per server: one session (run.session: the config read once, each
provider created once and kept, so the local model stays loaded), one `Gates` shared
by every request (so 50 clients queue behind -j, rpm and the 429 pause instead of
storming a provider), the cost caps, and the folder the images are written to. Each
request is `prepare`d (settled by run.plan_one, as `generate` does: every check, the
estimate against --max-cost and the day's budget) and then `execute`d (run.run on
the calling thread; events to the request's own sinks). Nothing here speaks HTTP or
MCP: the doors map what comes back.
"""

from __future__ import annotations

import secrets as _random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegen_cli import clock
from imagegen_cli.engine import run
from imagegen_cli.engine.events import Event, ImageWritten, JobFinished, PartialWritten
from imagegen_cli.engine.fallback import estimates
from imagegen_cli.engine.jobs import Job
from imagegen_cli.engine.options import Context, ImageOptions
from imagegen_cli.engine.save import SavedImage
from imagegen_cli.engine.scheduler import Gates
from imagegen_cli.errors import ImagegenError, UsageError
from imagegen_cli.pricing.costs import check_cap, money
from imagegen_cli.types import Reporter


class OverCap(UsageError):
    """A request over --max-cost, or over what is left of --max-cost-per-day: nothing was
    sent (HTTP 402)."""


@dataclass
class Ledger:
    """--max-cost-per-day (or, not PER_DAY, an MCP session's --max-cost): what the
    requests spent, plus what those running may still spend (their estimate's high end,
    until their real cost is known)."""

    cap: float
    per_day: bool = True
    what: str = "--max-cost-per-day"
    day: str = field(default_factory=lambda: clock.today().isoformat())
    spent: float = 0.0
    held: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _roll(self) -> None:
        today = clock.today().isoformat()
        if self.per_day and today != self.day:
            self.day, self.spent = today, 0.0

    def hold(self, job: Job) -> float:
        """Reserve JOB's highest estimate, or raise OverCap (an unknown price too)."""
        ests = estimates(job)
        with self.lock:
            self._roll()
            left = max(0.0, self.cap - self.spent - self.held)
            try:
                check_cap(ests, left, f"what is left of {self.what}")
            except UsageError as exc:
                when = "today" if self.per_day else "so far"
                raise OverCap(f"{exc} ({self.what} is {money(self.cap)}; "
                              f"{money(self.spent)} spent {when})") from None
            high = max(e.high for e in ests)
            self.held += high
            return high

    def settle(self, held: float, spent: float) -> None:
        with self.lock:
            self._roll()
            self.held = max(0.0, self.held - held)
            self.spent += spent


@dataclass
class Prepared:
    """A settled request, its caps checked, ready to run."""

    plan: run.Plan
    request_id: str
    client_request_id: str | None
    held: float = 0.0

    @property
    def job(self) -> Job:
        return self.plan.jobs[0]


@dataclass
class Served:
    """What a request made: its images (in index order), its cost and usage."""

    images: list[SavedImage]
    failures: list[ImagegenError]
    usage: dict[str, Any] | None
    cost_usd: float | None
    request_id: str
    job: Job


class Door:
    """The engine behind a server: see the module's docstring."""

    def __init__(self, env: Mapping[str, str], output: Path, *, concurrency: int = 4,
                 max_cost: float | None = None, max_cost_per_day: float | None = None,
                 note: Callable[[str], None] = lambda text: None,
                 warn: Callable[[str], None] = lambda text: None, name: str = "serve",
                 keep_metadata: bool = True) -> None:
        self.frontend = run.Frontend(note=note, warn=warn)
        self.ctx: Context = run.session(self.frontend, env)
        self.output = output
        self.concurrency = concurrency
        self.max_cost = max_cost
        self.ledger = Ledger(max_cost_per_day) if max_cost_per_day is not None else None
        self.gates = Gates()
        self.name = name
        self.keep_metadata = keep_metadata
        # Settling creates providers (Context caches one per name) and reads config
        # notices: one request at a time; it is quick, and no call is made there.
        self.settling = threading.Lock()

    def close(self) -> None:
        """The HTTP clients every request shared, closed (the server has stopped)."""
        self.gates.close()

    # ---------------------------------------------------------------- routing

    def route(self, model: str | None) -> tuple[str | None, str | None]:
        """(provider, model) for OpenAI's `model`: PROVIDER/MODEL, PROVIDER (its
        default model), else a model of the default provider."""
        if not model:
            return None, None
        names = self.ctx.cfg.providers
        if model in names:
            return model, None
        head, sep, rest = model.partition("/")
        if sep and head in names and rest:
            return head, rest
        return None, model

    def routable(self) -> list[tuple[str, str | None]]:
        """(provider, model) pairs a client can name: each provider that can run here
        (its key set, or none needed), with its default model (None) and known ones."""
        out: list[tuple[str, str | None]] = []
        for name, pcfg in self.ctx.cfg.providers.items():
            if pcfg.needs_key and not pcfg.key(self.ctx.env):
                continue
            try:
                with self.settling:
                    provider, _ = self.ctx.provider(name)
                models = provider.known_models()
            except ImagegenError:
                continue
            out.append((name, None))
            out.extend((name, m) for m in models)
        return out

    # ---------------------------------------------------------------- running

    def prepare(self, options: ImageOptions, *, edit: bool = False, inpaint: bool = False,
                request_id: str | None = None, client_request_id: str | None = None,
                folder: Path | None = None) -> Prepared:
        """OPTIONS settled and checked as `generate` checks them (UsageError, ConfigError),
        written under FOLDER (else the door's output folder) with the request's id in
        each name; over a cap: OverCap, nothing sent."""
        rid = request_id or "req_" + _random.token_hex(8)
        where = folder if folder is not None else self.output
        options = options.with_(
            output=str(where / f"{{date}}-{{time}}-{rid}-{{index}}.{{ext}}"),
            no_metadata=options.no_metadata or not self.keep_metadata)
        with self.settling:
            plan = run.plan_one(options, self.ctx, edit=edit, inpaint=inpaint)
        if self.max_cost is not None:
            try:
                run.cap_cost(plan, (self.max_cost, "--max-cost"))
            except UsageError as exc:
                raise OverCap(str(exc)) from None
        plan.concurrency = self.concurrency
        plan.gates = self.gates
        prepared = Prepared(plan, rid, client_request_id)
        if self.ledger is not None:
            prepared.held = self.ledger.hold(prepared.job)
        return prepared

    def execute(self, prepared: Prepared, on_event: Callable[[Event], None] | None = None,
                reporter: Reporter | None = None) -> Served:
        """Run PREPARED here (a worker thread of the door): the images written, each to
        the history hook; ON_EVENT sees the event stream as it goes."""
        images: list[SavedImage] = []
        finished: list[JobFinished] = []

        def sink(ev: Event) -> None:
            if isinstance(ev, ImageWritten) and not ev.skipped:
                images.append(ev.image)
            elif isinstance(ev, JobFinished):
                finished.append(ev)
            if on_event is not None and isinstance(ev, (ImageWritten, PartialWritten,
                                                        JobFinished)):
                on_event(ev)

        spent = 0.0
        try:
            # Every image goes to the history (engine/run.py records what the run writes)
            # under this door's name, with the request's id and the client's own.
            cid = prepared.client_request_id
            frontend = run.Frontend(note=self.frontend.note, warn=self.frontend.warn,
                                    sinks=[sink], history_command=self.name,
                                    history_part=f"request {prepared.request_id}"
                                    + (f", client request {cid}" if cid else ""))
            if reporter is not None:
                frontend.reporter_for = lambda job: reporter
            tally = run.run(prepared.plan, frontend)
            cost, _ = tally.cost()
            spent = cost if cost is not None else prepared.held
        finally:
            if self.ledger is not None:
                self.ledger.settle(prepared.held, spent if images else 0.0)
        outcome = finished[0].outcome if finished else None
        failures = list(outcome.failures) if outcome is not None else []
        images.sort(key=lambda img: img.index)
        return Served(images, failures, outcome.usage if outcome is not None else None,
                      cost if images else 0.0, prepared.request_id, prepared.job)

    def generate(self, options: ImageOptions, *, edit: bool = False,
                 inpaint: bool = False, **how: Any) -> Served:
        """prepare, then execute: the images, or the first failure raised when none came."""
        served = self.execute(self.prepare(options, edit=edit, inpaint=inpaint, **how))
        if not served.images and served.failures:
            raise served.failures[0]
        return served
