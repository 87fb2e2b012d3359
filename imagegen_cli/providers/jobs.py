"""Provider-side jobs: submit once, poll until done, fetch what it made.

One mechanism for every queue-style API (Distribute's async jobs, Black Forest
Labs, the next ones). A dialect subclasses `JobProvider` and says only what is
its own: how the submit answer names the job (`job_of`), how a poll is asked
(`poll_call`) and read (`read_job`), and what a finished job made
(`job_images`). What is shared, and so the same for every such provider:

- the submit is sent once: a submit whose answer was lost (a timeout or a
  dropped connection once it may have arrived) is never resent, which could pay
  twice (`HttpCall.resend_when_lost`); a refusal that says nothing was done
  (429, 5xx) is retried by the Transport as any call is;
- the job is told to the reporter at once (its id, and the URL the provider
  gave for it), so Ctrl-C can name it and `imagegen job get` can finish it;
- polls back off from POLL_START to POLL_CAP seconds apart, bounded by
  --timeout; a poll that fails (after the Transport's own retries) is asked
  again as a poll, never by submitting again, until --timeout;
- --timeout ends with the job id and the `imagegen job get PROVIDER ID` that
  finishes it; `get_job` is the same poll loop for a job submitted earlier.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from imagegen_cli.errors import ProviderError, RefusedError, UnavailableError
from imagegen_cli.providers.base import Provider
from imagegen_cli.transport.call import HttpCall
from imagegen_cli.transport.classify import request_id_of
from imagegen_cli.transport.client import Transport
from imagegen_cli.types import CallInfo, GeneratedImage, ImageRequest, Reporter


@dataclass
class Submitted:
    """What a submit answer says about the job it started."""

    job_id: str
    # The URL to poll, when the provider gives one (BFL's polling_url: regional, never
    # rebuilt from the id); None: the dialect's `poll_call` knows where.
    where: str | None = None


@dataclass
class JobState:
    """One poll's answer, as the dialect read it."""

    status: str  # the provider's own word, shown to the user
    done: bool = False  # finished with images: `job_images` reads the same answer


class JobProvider(Provider):
    """A Provider whose images come from jobs it submits and polls."""

    runs_jobs: ClassVar[bool] = True
    first_status: ClassVar[str] = "submitted"  # shown until the first poll answers
    poll_start: ClassVar[float] = 1.0
    poll_factor: ClassVar[float] = 1.5
    poll_cap: ClassVar[float] = 5.0
    # Polls in a row that fail (each after the Transport's own retries) before giving
    # up before --timeout: a server answering garbage is not waited on for an hour.
    poll_failures: ClassVar[int] = 5

    # -- what a dialect says ---------------------------------------------
    def job_of(self, answer: Any, info: CallInfo) -> Submitted:
        """The job a submit ANSWER started; UnavailableError when it names none."""
        job_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise UnavailableError(f"{self.name} accepted the job but sent no job id",
                                   request_id=info.request_id)
        return Submitted(job_id)

    def poll_call(self, job_id: str, where: str | None, key: str | None) -> HttpCall:
        """The request that asks how job JOB_ID is doing."""
        raise NotImplementedError

    def read_job(self, job_id: str, answer: Any) -> JobState:
        """A poll's ANSWER: its status, and whether it is done; raises the
        ProviderError a failed, refused or unknown job ends with."""
        raise NotImplementedError

    def job_images(
        self, job_id: str, answer: Any, info: CallInfo, transport: Transport,
        reporter: Reporter,
    ) -> Iterator[tuple[GeneratedImage, CallInfo]]:
        """The images of a finished job (fetched now where they are URLs that expire)."""
        raise NotImplementedError

    def poll_refused(self, job_id: str, exc: RefusedError) -> ProviderError:
        """What a refused poll means (a 404: the provider does not know the job)."""
        if exc.status == 404:
            return self.unknown_job(job_id, exc.request_id)
        return exc

    def unknown_job(self, job_id: str, request_id: str | None = None) -> ProviderError:
        """A job the provider does not know, right after submitting it: unavailable
        (exit 6); `get_job` turns it into a refusal of the id given by hand."""
        return UnavailableError(f"{self.name} does not know job {job_id}", status=404,
                                request_id=request_id)

    # -- shared ----------------------------------------------------------
    def submit_job(
        self, call: HttpCall, req: ImageRequest, key: str | None, transport: Transport,
        reporter: Reporter,
    ) -> Iterator[tuple[GeneratedImage, CallInfo]]:
        """Send CALL (a submit) once, note the job it started, then poll it."""
        reporter.status(f"submitting job to {self.name}")
        answer, resp = transport.json(dataclasses.replace(call, resend_when_lost=False))
        info = CallInfo(request_id=request_id_of(resp))
        sub = self.job_of(answer, info)
        info.job_id = sub.job_id
        reporter.job(sub.job_id, sub.where)
        reporter.job_request(sub.job_id, req)
        yield from self.poll_job(sub.job_id, sub.where, key, transport, reporter, info)

    def get_job(
        self, job_id: str, key: str | None, transport: Transport, reporter: Reporter,
        where: str | None = None,
    ) -> Iterator[tuple[GeneratedImage, CallInfo]]:
        try:
            yield from self.poll_job(job_id, where, key, transport, reporter,
                                     CallInfo(job_id=job_id))
        except UnavailableError as exc:
            if exc.status != 404:
                raise
            # An id given by hand that the provider does not know: a refused request
            # (exit 5), not an outage worth retrying later.
            raise RefusedError(f"{self.name} does not know job {job_id}: check the id "
                               "(the one `generate` printed when it stopped waiting)",
                               status=404, request_id=exc.request_id) from None

    def poll_job(
        self, job_id: str, where: str | None, key: str | None, transport: Transport,
        reporter: Reporter, info: CallInfo,
    ) -> Iterator[tuple[GeneratedImage, CallInfo]]:
        """Poll job JOB_ID until it is done (its images), fails (its error) or
        --timeout passes (UnavailableError naming `imagegen job get`)."""
        poll = self.poll_call(job_id, where, key)
        started = time.monotonic()
        waited = 0.0
        delay = self.poll_start
        status = self.first_status
        reporter.job_status(job_id, status)
        failures = 0
        while True:
            failed: UnavailableError | None = None
            try:
                answer, _ = transport.json(poll)
            except RefusedError as exc:
                raise self.poll_refused(job_id, exc) from None
            except UnavailableError as exc:  # after the Transport's retries: ask again
                failed = exc
                failures += 1
            if failed is None:
                failures = 0
                state = self.read_job(job_id, answer)
                if state.status != status:
                    status = state.status
                    reporter.job_status(job_id, status)
                if state.done:
                    yield from self.job_images(job_id, answer, info, transport, reporter)
                    return
            elapsed = max(waited, time.monotonic() - started)
            if elapsed >= transport.timeout or failures >= self.poll_failures:
                why = (f"could not be asked about ({failed.message})" if failed
                       else f"is still {status or 'pending'}")
                raise UnavailableError(
                    f"{self.name} job {job_id} {why} after {elapsed:.0f} s (raise "
                    f"--timeout, or fetch it later with `imagegen job get {self.name} "
                    f"{job_id}`)")
            if failed is not None:
                reporter.retry(f"asking {self.name} about job {job_id[:8]} failed "
                               f"({failed.message}); asking again")
            pause = min(delay, self.poll_cap, max(transport.timeout - elapsed, 0.05))
            transport.pause(pause)
            waited += pause
            delay = min(delay * self.poll_factor, self.poll_cap)
