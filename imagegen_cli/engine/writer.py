"""The writing thread's half of the scheduler: each call's notes and images, in the
order they come back, become saved files, outcomes and the event stream; a job is
finished (and reported) when its last call is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from imagegen_cli.engine.events import Event, ImageWritten, JobFinished, JobStarted, PartialWritten
from imagegen_cli.engine.save import Claim, Outcome, Saver
from imagegen_cli.errors import DiskFullError, ExitCode, OutputError, UnavailableError
from imagegen_cli.files.history import Entry
from imagegen_cli.types import CallInfo

if TYPE_CHECKING:
    from imagegen_cli.engine.calls import Call
    from imagegen_cli.engine.events import Tally
    from imagegen_cli.engine.jobs import Job

# A failure with one of these codes fails every job alike (bad usage, config, key).
FATAL = {ExitCode.USAGE, ExitCode.CONFIG, ExitCode.AUTH}


@dataclass
class JobState:
    outcome: Outcome = field(default_factory=Outcome)
    calls_left: int = 0
    started: bool = False
    cancelled: bool = False
    saver: Saver | None = None
    seen: set[int] = field(default_factory=set)


class JobWriter:
    """Mixed into the Scheduler, which sets these and emits events to its sinks."""

    states: dict[int, JobState]
    tally: Tally
    stopping: bool
    max_failures: int | None
    claim_for: Callable[[Job], Claim | None]
    warn: Callable[[str], None] | None
    note: Callable[[str], None] | None
    said: set[str]  # notices given this run, each once (shared by its savers)
    history: Callable[[Entry], None] | None  # each image written, remembered
    stdout: IO[bytes] | None
    now: datetime

    def emit(self, ev: Event) -> None:
        raise NotImplementedError

    def _saver(self, job: Job, st: JobState) -> Saver:
        if st.saver is None:
            st.saver = Saver(
                plan=job.plan, provider=job.provider.name,
                model=job.provider.public_model(str(job.request.model)), warn=self.warn,
                note=self.note, said=self.said, history=self.history,
                request=job.request, count=job.n, files=job.files,
                stdout=self.stdout if job.plan.stdout else None, now=self.now, id=job.id,
                claim=self.claim_for(job), cost_of=job.cost_of)
        return st.saver

    def _handle(self, kind: str, call: Call, payload: Any, info: CallInfo | None) -> None:
        job = call.job
        st = self.states[id(job)]
        out = st.outcome
        if kind == "start":
            if not st.started:
                st.started = True
                self.emit(JobStarted(job))
        elif kind == "image":
            assert info is not None
            if payload.seed is None and call.job.request.seed is not None and call.n == 1:
                payload.seed = call.job.request.seed + call.offset  # recorded per image
            if id(info) not in st.seen:
                st.seen.add(id(info))
                out.infos.append(info)
            if info.images is None:
                info.images = call.n  # a call's usage covers this many images
            if info.request_id:
                payload.settings.setdefault("request_id", info.request_id)
            index = call.offset + payload.index + 1
            try:
                saved = self._saver(job, st).save(payload, index, info)
            except UnavailableError as exc:
                if info.request_id and not exc.request_id:
                    exc.request_id = info.request_id
                out.failures.append(exc)
                return
            except OutputError as exc:
                if job.plan.stdout:
                    raise
                # One image that could not be written: the others still are, but on a
                # full disk no new call is paid for (those in flight still land).
                if isinstance(exc, DiskFullError):
                    self.stopping = True
                exc.message = f"image {index}: {exc.message}"
                out.failures.append(exc)
                return
            if saved is None:
                return
            if saved.partial is None:  # streamed preview frames are no results
                out.timings.setdefault("first_image_s", round(self.tally.elapsed, 3))
                out.saved.append(saved)
                self.emit(ImageWritten(job, saved, info.request_id))
            else:  # a kept --keep-partials frame: a file written, listed as such
                out.partials.append(saved)
                self.emit(PartialWritten(job, saved))
        elif kind == "error":
            out.failures.append(payload)
            if payload.exit_code in FATAL:
                self.stopping = True
                self.tally.fatal = self.tally.fatal or payload
        elif kind == "fallback":
            self.emit(payload)
        elif kind == "cancel":
            st.cancelled = True
        if kind in ("done", "cancel"):
            # (a cancel's payload: how many of the job's calls it stands for, when more)
            st.calls_left -= payload if kind == "cancel" and payload else 1
            if st.calls_left == 0:
                self._finish(job, st)

    def _finish(self, job: Job, st: JobState) -> None:
        out = st.outcome
        out.saved.sort(key=lambda s: s.index)
        out.timings["total_s"] = round(self.tally.elapsed, 3)
        not_run = st.cancelled and not st.started and not out.failures
        if st.cancelled and not not_run and len(out.saved) < job.n and not out.failures:
            out.failures.append(UnavailableError(
                "the batch stopped before all of this job's images were made"))
        self.emit(JobFinished(job, out, not_run=not_run))
        st.saver = None
        del self.states[id(job)]
        if self.max_failures is not None and self.tally.failed >= self.max_failures:
            self.stopping = True
