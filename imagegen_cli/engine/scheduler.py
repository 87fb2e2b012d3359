"""One scheduler for every job's calls, under per-provider limits.

Each job is split into calls of at most the model's per-request n. Worker
threads (-j of them) take calls in job order, each holding a slot of its
provider's `Gate` while the call runs; a call whose provider is unavailable
goes to the next provider of its job's fallback chain (calls.run_chain), under
that provider's own limits. Images come back to this thread, which writes them
one at a time (writer.py; a bounded queue of images: memory stays flat) and
emits the event stream (events.py) to every sink.

Hooks for what builds on it: `admit(job, wait)` may refuse a job before its first
call (a cost cap; with `wait`, in a worker, it may first wait for running jobs to
settle), and `done_before(job)` returns the images a journal holds: all of them,
the job is skipped and sends nothing; some, only the others are asked for.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from imagegen_cli import clock
from imagegen_cli.engine import malloc
from imagegen_cli.engine.calls import Call, run_chain
from imagegen_cli.engine.events import Event, FellBack, ImageWritten, JobFinished, Tally
from imagegen_cli.engine.jobs import Job, Spans
from imagegen_cli.engine.save import Claim, Outcome, SavedImage, warm_up
from imagegen_cli.engine.writer import FATAL, JobState, JobWriter
from imagegen_cli.errors import ImagegenError, Interrupted, OutputError
from imagegen_cli.files.history import Entry
from imagegen_cli.transport.client import Transport
from imagegen_cli.transport.limits import Gate
from imagegen_cli.types import CallInfo, GeneratedImage, Reporter

if TYPE_CHECKING:
    from imagegen_cli.engine.jobs import Member
    from imagegen_cli.providers.base import Provider




@dataclass
class Gates:
    """The Gate of each provider, by name. A run makes its own; a server hands every
    run the same one, so concurrent requests queue behind one set of limits (-j, rpm,
    the shared 429 pause) instead of each opening its own."""

    table: dict[str, Gate] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Shared runs share their transports too: one HTTP client per provider (and timeout,
    # retries), its connections kept alive from one request to the next. Made by the
    # first run that needs each; closed by `close`, not by a run.
    transports: dict[tuple[str, float, int], Transport] = field(default_factory=dict)

    def close(self) -> None:
        with self.lock:
            for tr in self.transports.values():
                tr.close()
            self.transports.clear()


@dataclass
class _Left:
    job: Job
    spans: Iterator[tuple[int, int]]
    count: int  # calls not taken yet


class Feed:
    """Every job's calls, made as workers take them: -n 100000000000 starts at once,
    in flat memory, and a stopped batch cancels each job's remaining calls at once.

    Jobs come from an iterator (a batch's JobStream reads its input as the run goes):
    the writer thread `fill`s the feed (preparing a job may emit events: a journal's
    skips), workers `take`; a worker that finds it empty waits for the next fill."""

    def __init__(self, jobs: Iterator[Job],
                 prepare: Callable[[Job], Spans | None]) -> None:
        self.lock = threading.Condition()
        self.jobs = jobs
        self.prepare = prepare
        self.left: deque[_Left] = deque()
        self.queued = 0  # calls in the feed, not taken yet
        self.handed = 0  # calls taken, plus calls cancelled by `rest`
        self.ended = False  # no job left to read (or the run stopped reading)

    def fill(self, want: float) -> None:
        """Writer thread: prepare jobs until WANT calls wait or the jobs run out."""
        try:
            while not self.ended and self.queued < want:
                job = next(self.jobs, None)
                if job is None:
                    self.end()
                    break
                spans = self.prepare(job)
                if spans is None:
                    continue
                with self.lock:
                    self.left.append(_Left(job, iter(spans), len(spans)))
                    self.queued += len(spans)
                    self.lock.notify_all()
        except BaseException:
            self.end()
            raise

    def end(self) -> None:
        with self.lock:
            self.ended = True
            self.lock.notify_all()

    def take(self, wait: bool = False) -> Call | None:
        """The next call; None when there is none (WAIT: none will come)."""
        with self.lock:
            while True:
                while self.left:
                    head = self.left[0]
                    span = next(head.spans, None)
                    if span is None:
                        self.left.popleft()
                        continue
                    head.count -= 1
                    self.queued -= 1
                    self.handed += 1
                    return Call(head.job, span[1], span[0])
                if not wait or self.ended:
                    return None
                self.lock.wait(0.05)

    def rest(self) -> list[tuple[Call, int]]:
        """A call of each job with calls left, and how many are left; none are left,
        and no more jobs are read."""
        with self.lock:
            out = []
            for left in self.left:
                span = next(left.spans, None)
                if span is not None and left.count:
                    out.append((Call(left.job, span[1], span[0]), left.count))
                    self.handed += left.count
            self.left = deque()
            self.queued = 0
            self.ended = True
            self.lock.notify_all()
            return out


class HeldSignals:
    """Ctrl-C and SIGTERM held while an image is being written (on the main thread): a
    stop that lands mid-write would throw away an answer already paid for. The held
    signal is delivered, to the handler that was in place, as soon as the write ends."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self.writing = False
        self.held: tuple[Any, int, Any] | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> HeldSignals:
        import signal

        if threading.current_thread() is not threading.main_thread():
            return self
        for name in self.SIGNALS:
            num = getattr(signal, name)
            old = signal.getsignal(num)
            if callable(old):  # SIG_DFL/SIG_IGN stay as they are
                self.previous[num] = old
                signal.signal(num, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for num, old in self.previous.items():
            signal.signal(num, old)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.writing:
            self.held = self.held or (self.previous[signum], signum, frame)
            return
        self.previous[signum](signum, frame)

    def write(self, func: Callable[..., None], *args: Any) -> None:
        """FUNC(*ARGS) (a write) run whole; a signal that came meanwhile is delivered
        after it."""
        self.writing = True
        try:
            func(*args)
        finally:
            self.writing = False
            held, self.held = self.held, None
            if held is not None:
                handler, signum, frame = held
                handler(signum, frame)


# Seconds a stopped run waits for the answers of calls already sent (they are paid
# for) before it exits 130/143: enough for a downloaded image to land, short enough
# for a CI cancel's own grace period.
STOP_GRACE = 5.0


class Scheduler(JobWriter):
    def __init__(
        self,
        *,
        concurrency: int = 4,
        rpm: float | None = None,
        max_failures: int | None = None,
        reporter_for: Callable[[Job], Reporter] = lambda job: Reporter(),
        sinks: Sequence[Callable[[Event], None]] = (),
        admit: Callable[[Job, bool], ImagegenError | None] | None = None,
        done_before: Callable[[Job], list[SavedImage] | None] | None = None,
        claim_for: Callable[[Job], Claim | None] = lambda job: None,
        log: Callable[[str], None] | None = None,
        stdout: IO[bytes] | None = None,
        warn: Callable[[str], None] | None = None,
        gates: Gates | None = None,
        note: Callable[[str], None] | None = None,
        history: Callable[[Entry], None] | None = None,
        chain: Callable[..., Iterator[tuple[GeneratedImage, CallInfo, Transport]]] = run_chain,
    ) -> None:
        # Where a call's images come from: the providers of its job's chain, or (batch
        # --batch-api) the answered lines of a batch.
        self.chain = chain
        self.concurrency = max(1, concurrency)
        self.rpm = rpm
        self.max_failures = max_failures
        self.reporter_for = reporter_for
        self.tally = Tally()
        self.sinks: list[Callable[[Event], None]] = [self.tally, *sinks]
        self.admit = admit
        self.done_before = done_before
        self.claim_for = claim_for
        self.log = log
        self.stdout = stdout
        self.warn = warn  # e.g. a prompt cut to fit a JPEG's metadata
        self.note = note  # e.g. a signed image written as received
        self.said: set[str] = set()
        self.history = history
        self.now = clock.now()
        shared = gates if gates is not None else Gates()
        self.gates: dict[str, Gate] = shared.table
        self.gate_lock = shared.lock
        self.shared = gates is not None
        self.transports: dict[tuple[str, float, int], Transport] = shared.transports
        self.reporters: list[Reporter] = []
        # Per reporter: the providers of its jobs that run provider-side jobs (what
        # `imagegen job get PROVIDER ID` needs after a Ctrl-C).
        self.job_providers: dict[int, set[str]] = {}
        self.stopping = False
        self.lock = threading.Lock()
        self.states: dict[int, JobState] = {}
        self.failed_jobs: set[int] = set()
        self.input_error: ImagegenError | None = None  # a bad record read mid-run

    # -- per-provider plumbing -------------------------------------------
    def gate(self, job: Job) -> Gate:
        """The Gate of JOB's own provider; each fallback provider of its chain keeps its
        own limits (--rpm, rpm, the shared 429 pause) in its own Gate, one per provider
        across the whole run."""
        for m in job.members[1:]:
            self.provider_gate(m.provider, m.pcfg.concurrency, m.pcfg.rpm)
        return self.provider_gate(job.provider, job.pcfg.concurrency, job.pcfg.rpm)

    def provider_gate(self, provider: Provider, concurrency: int | None = None,
                      rpm: float | None = None) -> Gate:
        name = provider.name
        with self.gate_lock:
            if name not in self.gates:
                cfg = provider.cfg
                caps = [self.concurrency, concurrency or cfg.concurrency,
                        provider.max_concurrency]
                self.gates[name] = Gate(name, min(c for c in caps if c),
                                        self.rpm or rpm or cfg.rpm)
            return self.gates[name]

    def transport(self, job: Job, member: Member) -> Transport:
        """The transport to MEMBER's provider at JOB's timeout and retries, under that
        provider's Gate: made once, shared by every job that reaches that provider."""
        name = member.provider.name
        k = (name, job.timeout, job.retries)
        if k not in self.transports:
            with self.gate_lock:
                if k not in self.transports:
                    # Shared (a server's), a transport outlives this run: its retries
                    # are not told to this run's reporter.
                    self.transports[k] = Transport(
                        timeout=job.timeout, retries=job.retries, who=name, log=self.log,
                        gate=self.gates[name], on_retry=None if self.shared
                        else lambda text: self._reporter(job).retry(text))
        return self.transports[k]

    def emit(self, ev: Event) -> None:
        for sink in self.sinks:
            sink(ev)

    # -- the run -----------------------------------------------------------
    def run(self, jobs: Iterable[Job]) -> Tally:
        """Run every job's calls. A list is prepared whole before the first call (a
        journal's skips said first); any other iterable is read as the calls go."""
        eager = isinstance(jobs, Sequence)
        feed = Feed(iter(jobs), self._prepare)
        try:
            feed.fill(float("inf") if eager else 2 * self.concurrency + 1)
            if feed.ended and feed.queued == 1:
                # On this thread: the local provider's Ctrl-C handler needs the main
                # thread, and one call gains nothing from a worker.
                call = feed.take()
                assert call is not None
                self._inline(call)
            elif feed.queued:
                self._pooled(feed)
        except KeyboardInterrupt:
            self.stopping = True
            # Every job read is in exactly one count: those stopped before they finished
            # (never started, or cut off in flight) are not run.
            self.tally.not_run += max(0, self.tally.jobs - (
                self.tally.done + self.tally.failed + self.tally.skipped + self.tally.not_run))
            raise Interrupted(self._stopped_message()) from None
        finally:
            if not feed.ended:
                self.tally.unread = True  # stopped before reading every job
            if not self.shared:
                for tr in self.transports.values():
                    tr.close()
        return self.tally

    def _prepare(self, job: Job) -> Spans | None:
        """JOB's calls still to make (None: the journal holds all its images), its
        gate and transports made; the images a journal holds are said as skipped."""
        self.tally.jobs += 1
        before = self.done_before(job) if self.done_before else None
        if before is not None and len(before) >= job.n:
            for img in before:
                self.emit(ImageWritten(job, img, img.request_id, skipped=True))
            self.emit(JobFinished(job, Outcome(saved=list(before)), skipped=True))
            return None
        st = self.states[id(job)] = JobState()
        with self.lock:
            self.gate(job)
            for m in job.members:
                self.transport(job, m)
        # Images a killed run already wrote are kept: only the others are asked for.
        for img in before or ():
            st.outcome.saved.append(img)
            self.emit(ImageWritten(job, img, img.request_id, skipped=True))
        spans = Spans(job.n, {img.index for img in before or ()},
                      job.provider.capabilities(job.request.model).max_n)
        st.calls_left = len(spans)
        if not st.calls_left:
            del self.states[id(job)]
            return None
        return spans

    def _reporter(self, job: Job) -> Reporter:
        rep = self.reporter_for(job)
        with self.lock:
            if rep not in self.reporters:
                self.reporters.append(rep)
            self.job_providers.setdefault(id(rep), set()).update(
                m.provider.name for m in job.members if m.provider.runs_jobs)
        return rep

    def _stopped_message(self) -> str:
        """Ctrl-C's message: nothing half-written, and the provider-side jobs still
        running, each with the command that fetches its images later."""
        left = []
        for r in self.reporters:
            names = self.job_providers.get(id(r), set())
            name = next(iter(names)) if len(names) == 1 else "PROVIDER"
            left += [(name, j) for j in r.jobs]
        if not left:
            return "interrupted; nothing half-written"
        ids = ", ".join(j for _, j in left)
        name, first = left[0]
        more = " (and so on for each)" if len(left) > 1 else ""
        return (f"interrupted; nothing half-written. Job ids still at the provider: {ids} "
                f"(fetch their images later with `imagegen job get {name} {first}`{more})")

    def _refused(self, job: Job, wait: bool = False) -> ImagegenError | None:
        """The admit hook's refusal of JOB, or None. WAIT (a pooled worker): the hook
        may block until running jobs settle, so it is not called under self.lock
        (running workers take that lock); it keeps its own."""
        if self.admit is None:
            return None
        if wait:
            return self.admit(job, True)
        with self.lock:
            return self.admit(job, False)

    def _inline(self, call: Call) -> None:
        # The provider's slot, as a pooled worker holds it: a run alone never waits for
        # it, runs sharing their Gates (a server's requests) queue for it.
        with self.gates[call.job.provider.name].slot():
            self._inline_call(call)

    def _inline_call(self, call: Call) -> None:
        refusal = self._refused(call.job)
        if refusal is not None:
            self._handle("error", call, refusal, None)
            self._handle("done", call, None, None)
            return
        self._handle("start", call, None, None)
        rep = self._reporter(call.job)
        try:
            t0 = time.perf_counter()
            for img, info, tr in self.chain(call, self.transport, rep,
                                            lambda ev: self._handle("fallback", call, ev, None)):
                self._handle("image", call, self._fetch(img, tr, rep, t0), info)
        except OutputError:
            raise
        except ImagegenError as exc:
            self._handle("error", call, exc, None)
        self._handle("done", call, None, None)

    def _pooled(self, feed: Feed) -> None:
        # A worker hands its image (spooled on disk, mostly) to the writer and starts its
        # next call at once, instead of waiting in line while the writer saves the others
        # of its round. Only images count against the bound (2 x -j: a whole round can
        # wait there); start/done notes never block a worker. Memory stays flat.
        inbox: queue.Queue[tuple[str, Call, Any, Any]] = queue.Queue()
        room = threading.BoundedSemaphore(max(2, 2 * self.concurrency))
        def work() -> None:
            while True:
                if self.stopping:  # every call not taken yet: one cancel per job
                    for rest, count in feed.rest():
                        inbox.put(("cancel", rest, count, None))
                    return
                call = feed.take(wait=True)
                if call is None:
                    return
                job = call.job
                with self.gates[job.provider.name].slot():
                    refusal = None if self.stopping else self._refused(job, wait=True)
                    if self.stopping or refusal is not None:
                        if refusal is not None:
                            inbox.put(("error", call, refusal, None))
                        inbox.put(("cancel" if refusal is None else "done", call, None, None))
                        continue
                    inbox.put(("start", call, None, None))
                    rep = self._reporter(job)

                    def fell_back(ev: FellBack, call: Call = call) -> None:
                        inbox.put(("fallback", call, ev, None))

                    try:
                        t0 = time.perf_counter()
                        for img, info, tr in self.chain(call, self.transport, rep, fell_back):
                            room.acquire()
                            inbox.put(("image", call, self._fetch(img, tr, rep, t0), info))
                    except ImagegenError as exc:
                        self._failed_early(job, exc)
                        inbox.put(("error", call, exc, None))
                    except Exception as exc:  # noqa: BLE001 - surfaced as exit 1 below
                        inbox.put(("crash", call, exc, None))
                    finally:
                        inbox.put(("done", call, None, None))

        # Not when any provider of any chain runs a model in this process: torch allocates
        # many mid-size tensors per step, and a fixed, low mmap threshold makes each one a
        # fresh mmap (a local batch's images took 1.3-3x as long as one `generate`'s). Its
        # calls run one at a time: there is no per-thread growth to tame.
        if not any(m.provider.in_process for left in feed.left for m in left.job.members):
            malloc.tame()
        # A fixed pool of daemon threads, not one per call: memory stays flat as the
        # batch grows, and Ctrl-C or a write error never waits for slow calls.
        workers = self.concurrency if not feed.ended else min(self.concurrency, feed.queued)
        for _ in range(workers):
            threading.Thread(target=work, daemon=True).start()
        settled = 0  # calls done, and calls cancelled
        warm = False
        ahead = 2 * self.concurrency + 1  # calls kept ready for the workers

        def drain(until: float | None) -> None:
            nonlocal settled, warm
            while True:
                if until is None and not self.stopping:
                    try:
                        feed.fill(ahead)
                    except ImagegenError as exc:
                        # A bad record read mid-run: no new call starts, the answers of
                        # those in flight are written, then the batch stops with it.
                        self.input_error = exc
                        self.stopping = True
                if self.stopping and not feed.ended:
                    for rest, count in feed.rest():
                        settled += count
                        held.write(self._handle, "cancel", rest, count, None)
                with feed.lock:
                    if feed.ended and not feed.queued and settled >= feed.handed:
                        return
                left = None if until is None else until - time.monotonic()
                if left is not None and left <= 0:
                    return
                try:
                    # Short waits while jobs are still to be read (the feed is topped up
                    # between them) and until the first answer has been waited for.
                    waits = [t for t in (left, None if feed.ended else 0.05,
                                         None if warm else 0.05) if t is not None]
                    kind, call, payload, info = inbox.get(timeout=min(waits) if waits
                                                          else None)
                except queue.Empty:
                    # The first requests are out and their answers not back: load what
                    # writing an image needs now, not when sixteen answers arrive at once.
                    if not warm:
                        warm = True
                        warm_up()
                    continue
                if kind == "crash":
                    self.stopping = True
                    raise payload
                if kind in ("done", "cancel"):
                    settled += payload if kind == "cancel" and payload else 1
                try:
                    held.write(self._handle, kind, call, payload, info)
                finally:
                    if kind == "image":
                        room.release()

        held = HeldSignals()
        try:
            with held:
                drain(None)
            if self.input_error is not None:
                raise self.input_error
        except KeyboardInterrupt:
            # A polite stop (Ctrl-C, SIGTERM): no new call starts, and answers already
            # paid for that arrive within the grace are written, not thrown away. A
            # second signal ends the grace at once.
            self.stopping = True
            drain(time.monotonic() + STOP_GRACE)
            raise

    def _failed_early(self, job: Job, exc: ImagegenError) -> None:
        """Stop starting calls at once when this failure reaches the limit (the writer
        thread would see it a moment later, after a worker took the next call)."""
        with self.lock:
            self.failed_jobs.add(id(job))
            if exc.exit_code in FATAL or (self.max_failures is not None
                                          and len(self.failed_jobs) >= self.max_failures):
                self.stopping = True

    def _fetch(self, img: GeneratedImage, tr: Transport, rep: Reporter,
               t0: float) -> GeneratedImage:
        if img.data is None and img.loader is None and img.url:
            rep.status(f"downloading image {img.index + 1}")
            spool = tr.download_spooled(img.url, on_bytes=rep.download)
            img.loader = spool.read
        # Seconds from sending the call to holding this image (waits, retries, polls
        # and download included), beside whatever the provider reports.
        img.timings.setdefault("request_s", round(time.perf_counter() - t0, 3))
        return img
