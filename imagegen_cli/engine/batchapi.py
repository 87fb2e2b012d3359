"""`imagegen batch --batch-api`: a batch's jobs sent as OpenAI Batch API files
instead of live calls, then written as a live batch writes them.

Three steps, each resumable from the batch's journal:
- submit: one JSONL line per call (`custom_id` = job key + "-" + call index,
  `body` the live request's exact JSON), in parts of at most 50,000 lines and
  200 MB; each part is kept beside the journal, journaled (its token, lines,
  estimate) before it is uploaded, its file id journaled before the batch is
  created, and the batch id journaled before anything waits on it. A run killed
  between upload and journaling finds its file by name; one killed between
  `POST /batches` and journaling finds its batch by the token in its metadata:
  nothing is submitted twice.
- wait: poll each open part's batch until it has ended (progress to `note`).
- fetch: the output and error files streamed to disk and indexed by custom_id
  (any order); the scheduler then runs every job as a live batch does, its
  calls reading their lines instead of the network (`Results.chain`), so files,
  names, metadata, the journal and NDJSON are the live batch's, plus `"via":
  "batch-api"` and the batch id. A part is journaled fetched once its lines are
  all written; a re-run then submits the jobs that failed, as a live re-run would.

The journal's lines about batches carry a `batch_api` key (the image journal
skips any line without `key`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen_cli.engine.jobs import Job
from imagegen_cli.engine.journal import Journal
from imagegen_cli.errors import (
    OutputError,
    OverBudget,
    RefusedError,
    ShortfallError,
    UnavailableError,
    UsageError,
)
from imagegen_cli.files import jsontext
from imagegen_cli.files.images import sniff
from imagegen_cli.pricing.costs import estimate, money
from imagegen_cli.pricing.lookup import BatchPrice, batch_price
from imagegen_cli.providers.openai import OpenAIProvider
from imagegen_cli.providers.openai_batch import (
    ENDED,
    GENERATIONS,
    INPUT_PURPOSE,
    MAX_BYTES,
    MAX_LINES,
    TOKEN_KEY,
    BatchClient,
    batch_body,
    check_batchable,
    custom_id_of,
    endpoint_of,
    images_of,
    line_error,
    new_token,
    read_line,
)
from imagegen_cli.registry import create
from imagegen_cli.types import Batches, CallInfo, GeneratedImage, ImageRequest

if TYPE_CHECKING:
    from imagegen_cli.engine.calls import Call
    from imagegen_cli.engine.jobs import Member
    from imagegen_cli.engine.options import Context
    from imagegen_cli.transport.client import Transport
    from imagegen_cli.types import Reporter

ENTRY = "batch_api"


# ---------------------------------------------------------------- what goes in

def max_n(job: Job) -> int:
    return max(1, job.provider.capabilities(job.request.model).max_n)


def calls_of(job: Job) -> Iterator[tuple[int, int, int]]:
    """(call index, offset, images) of each call JOB makes: the custom_id's index."""
    per = max_n(job)
    for i, offset in enumerate(range(0, job.n, per)):
        yield i, offset, min(per, job.n - offset)


def sub_request(job: Job, offset: int, n: int) -> ImageRequest:
    req = job.request
    return req.with_(n=n, seed=req.seed + offset if req.seed is not None else None)


def custom_id(job: Job, index: int) -> str:
    return f"{job.key}-{index}"


def check_job(job: Job, ctx: Context) -> None:
    """Exit 2 for what cannot go through the Batch API: a provider whose service does
    not offer it (naming those that do), --stream, edits (not yet: see README)."""
    if not job.provider.offers_batch_api():
        names = offering(ctx)
        raise UsageError(
            f"--batch-api: provider {job.provider.name} does not offer OpenAI's Batch API "
            + (f"(providers that do: {', '.join(names)})" if names else
               "(none of your providers does: the openai provider at api.openai.com, or "
               "an openai-type provider with `batch_api = true`)"))
    if job.request.stream:
        raise UsageError("--batch-api: --stream has no meaning in a batch (answers come "
                         "whole, within 24 h): drop --stream")
    assert isinstance(job.provider, OpenAIProvider)
    check_batchable(job.provider, job.request)


def offering(ctx: Context) -> list[str]:
    """The configured providers whose service offers the Batch API."""
    out = []
    for name, pcfg in sorted(ctx.cfg.providers.items()):
        try:
            if create(pcfg, ctx.env).offers_batch_api():
                out.append(name)
        except Exception:  # noqa: BLE001 - a provider that cannot be made offers nothing
            continue
    return out


def line_of(job: Job, index: int, offset: int, n: int,
            file_id_of: Callable[[bytes], str] = lambda data: "") -> bytes:
    """One BatchRequestInput line: the live request's exact JSON body (an edit's: the
    JSON edit body, its local inputs as the file ids FILE_ID_OF gives)."""
    assert isinstance(job.provider, OpenAIProvider)
    req = sub_request(job, offset, n)
    body = batch_body(job.provider, req, file_id_of)
    return (json.dumps({"custom_id": custom_id(job, index), "method": "POST",
                        "url": endpoint_of(req), "body": body}, ensure_ascii=False)
            + "\n").encode()


def price_of(job: Job) -> BatchPrice:
    got = batch_price(job.pcfg)
    if got is None:  # the shipped table always has OpenAI's
        raise UsageError(f"--batch-api: no batch price for {job.provider.name}")
    return got


def estimate_of(job: Job, images: int | None = None) -> tuple[float, float, bool]:
    """(low, high, known) USD of JOB's IMAGES (default: all) at the live price."""
    m = job.members[0]
    est = estimate(m.pricing, m.request, Batches(images if images is not None else job.n,
                                                 max_n(job)))
    return est.low, est.high, est.known


# ---------------------------------------------------------------- the ledger

@dataclass
class Part:
    """One batch file of a run: its lines kept at PATH, and where it stands."""

    token: str
    provider: str
    path: Path
    lines: int = 0
    bytes: int = 0
    estimate: float | None = None  # the top of its estimate, at the batch price
    sha256: str | None = None  # of its lines as written (checked before a re-upload)
    endpoint: str = GENERATIONS
    file_id: str | None = None
    batch_id: str | None = None
    fetched: bool = False
    batch: dict[str, Any] = field(default_factory=dict)  # as last seen (not journaled)

    @property
    def filename(self) -> str:
        return f"imagegen-{self.token}.jsonl"

    @property
    def status(self) -> str | None:
        s = self.batch.get("status")
        return s if isinstance(s, str) else None

    def counts(self) -> tuple[int, int, int]:
        c = self.batch.get("request_counts")
        c = c if isinstance(c, dict) else {}
        return (int(c.get("completed") or 0), int(c.get("failed") or 0),
                int(c.get("total") or self.lines))


class Ledger:
    """The parts of a batch, as its journal's `batch_api` lines record them."""

    def __init__(self, journal_path: Path, *, force: bool = False) -> None:
        self.journal_path = journal_path
        self.folder = journal_path.with_name(journal_path.name + ".batches")
        self.force = force
        self.parts: dict[str, Part] = {}
        self.inputs: dict[tuple[str, str], str] = {}  # (provider, sha256) -> file id

    def load(self) -> None:
        """Read the journal's batch lines: call it holding the journal (`Journal.open`),
        so no other run's submit lands between reading and submitting."""
        self.parts, self.inputs = {}, {}
        if not self.force:
            self._load()

    def _load(self) -> None:
        try:
            fh = self.journal_path.open(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise OutputError(f"Cannot read journal {self.journal_path}: "
                              f"{exc.strerror or exc}") from None
        with fh:
            for line in fh:
                if f'"{ENTRY}"' not in line:
                    continue
                try:
                    rec = jsontext.loads(line)
                    self.apply(rec)
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a kill

    def apply(self, rec: dict[str, Any]) -> None:
        if rec[ENTRY] == "input":  # an edit's input image, uploaded once per provider
            self.inputs[(str(rec["provider"]), str(rec["sha256"]))] = str(rec["file_id"])
            return
        kind, token = rec[ENTRY], str(rec["token"])
        if kind == "part":
            self.parts[token] = Part(token, str(rec["provider"]),
                                     self.folder / str(rec["file"]), int(rec["lines"]),
                                     int(rec["bytes"]), rec.get("estimate"),
                                     rec.get("sha256"), str(rec.get("endpoint") or GENERATIONS))
            return
        part = self.parts[token]
        if kind == "file":
            part.file_id = str(rec["file_id"])
        elif kind == "batch":
            part.batch_id = str(rec["batch_id"])
        elif kind == "fetched":
            part.fetched = True

    def record(self, journal: Journal, rec: dict[str, Any]) -> None:
        journal.append(rec)
        self.apply(rec)

    def open_parts(self) -> list[Part]:
        return [p for p in self.parts.values() if not p.fetched]

    def covered(self) -> dict[str, Part]:
        """custom_id -> the open part that holds it (read from the parts' files)."""
        out: dict[str, Part] = {}
        for part in self.open_parts():
            try:
                with part.path.open("rb") as fh:
                    for raw in fh:
                        cid = custom_id_of(raw[:4096])
                        if cid:
                            out[cid] = part
            except OSError as exc:
                raise OutputError(f"Cannot read {part.path} (the lines of batch "
                                  f"{part.batch_id or part.token}): {exc.strerror or exc}; "
                                  "it is kept beside the journal: restore it") from None
        return out


# ---------------------------------------------------------------- submit

@dataclass
class Submitted:
    """What a submit step did: the parts open now, and the jobs left out by the cap."""

    parts: list[Part]
    refused: dict[str, OverBudget] = field(default_factory=dict)  # job key -> why
    new: int = 0  # parts created by this run


class Submitter:
    """Writes each job's lines into parts and submits each part as it fills."""

    def __init__(self, journal: Journal, ledger: Ledger,
                 client_for: Callable[[str], BatchClient], *, note: Callable[[str], None],
                 force: bool = False, cap: tuple[float, str] | None = None) -> None:
        self.journal = journal
        self.ledger = ledger
        self.client_for = client_for
        self.note = note
        self.force = force
        self.cap = cap
        # (provider, model, endpoint) -> (part, its file, its sha256 so far): a batch
        # goes to one endpoint, and a file holds requests to one model.
        self.writing: dict[tuple[str, str, str], tuple[Part, Any, Any]] = {}
        self.out = Submitted([])
        self.committed = 0.0

    def run(self, jobs: Iterable[Job], ctx: Context) -> Submitted:
        self.resume()
        covered = self.ledger.covered()
        if self.cap is not None:
            self.committed = self.journal.spent(None) + sum(
                p.estimate or 0.0 for p in self.ledger.open_parts())
        fallback_said = False
        for job in jobs:
            check_job(job, ctx)
            if len(job.members) > 1 and not fallback_said:
                fallback_said = True
                self.note("--batch-api: fallback providers do not apply (a batch goes to "
                          "one provider)")
            have = {s.index for s in (self.journal.finished(job) or [])} \
                if not self.force else set()
            todo = [(i, off, n) for i, off, n in calls_of(job)
                    if custom_id(job, i) not in covered
                    and not all(x in have for x in range(off + 1, off + n + 1))]
            if not todo:
                continue
            factor = price_of(job).factor
            _, high, known = estimate_of(job, sum(n for _, _, n in todo))
            if self.cap is not None:
                amount, where = self.cap
                if not known:
                    raise UsageError(f"line {job.line} (id {job.id}): the price of "
                                     f"{job.provider.name} {job.request.model} is unknown, "
                                     f"so {where} cannot be kept: set its price")
                if self.committed + high * factor > amount + 1e-12:
                    self.out.refused[job.key] = OverBudget(
                        f"not submitted: its estimated {money(high * factor)} (batch price) "
                        f"would take the batch over {where} {money(amount)} "
                        f"({money(self.committed)} spent or committed)")
                    continue
                self.committed += high * factor
            inputs = functools.partial(self._input, job.provider.name)
            for i, off, n in todo:
                self._add(job, line_of(job, i, off, n, inputs),
                          high * factor / len(todo) if known else None)
        for open_part in list(self.writing):
            self._flush(open_part)
        self.out.parts = self.ledger.open_parts()
        return self.out

    def _input(self, provider: str, data: bytes) -> str:
        """The file id of an edit's input image: uploaded once per distinct file (by
        sha256) and journaled. A run killed between an upload and its line uploads that
        image again (an unused file, no cost)."""
        sha = hashlib.sha256(data).hexdigest()
        got = self.ledger.inputs.get((provider, sha))
        if got is None:
            ext = sniff(data) or "png"
            got = self.client_for(provider).upload(
                f"imagegen-input-{sha[:40]}.{'jpg' if ext == 'jpeg' else ext}", data,
                purpose=INPUT_PURPOSE, content_type=f"image/{ext}")
            self.ledger.record(self.journal, {ENTRY: "input", "provider": provider,
                                              "sha256": sha, "file_id": got})
        return got

    def _add(self, job: Job, line: bytes, est: float | None) -> None:
        name = (job.provider.name, str(job.request.model), endpoint_of(job.request))
        cur = self.writing.get(name)
        if cur is not None and (cur[0].lines + 1 > MAX_LINES
                                or cur[0].bytes + len(line) > MAX_BYTES):
            self._flush(name)
            cur = None
        if cur is None:
            self.ledger.folder.mkdir(parents=True, exist_ok=True)
            token = new_token()
            part = Part(token, name[0], self.ledger.folder / f"{token}.jsonl", estimate=0.0,
                        endpoint=name[2])
            fh = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in _flush
                dir=self.ledger.folder, prefix=f".{token}.", suffix=".part", delete=False)
            cur = (part, fh, hashlib.sha256())
        part, fh, sha = cur
        fh.write(line)
        sha.update(line)
        part.lines += 1
        part.bytes += len(line)
        if est is None or part.estimate is None:
            part.estimate = None
        else:
            part.estimate += est
        self.writing[name] = (part, fh, sha)

    def _flush(self, name: tuple[str, str, str]) -> None:
        part, fh, sha = self.writing.pop(name)
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        os.replace(fh.name, part.path)
        # The intent first: a run killed from here on finds this part (and its lines)
        # in the journal, and never writes those lines into another part.
        self.ledger.record(self.journal, {
            ENTRY: "part", "token": part.token, "provider": part.provider,
            "model": name[1], "file": part.path.name,
            "lines": part.lines, "bytes": part.bytes, "sha256": sha.hexdigest(),
            "endpoint": part.endpoint,
            "estimate": round(part.estimate, 6) if part.estimate is not None else None})
        self.out.new += 1
        self._submit(self.ledger.parts[part.token], self.client_for(part.provider))

    def resume(self) -> None:
        """Open parts a killed run left without a file id or a batch id."""
        for part in self.ledger.open_parts():
            if part.batch_id is None:
                self._submit(part, self.client_for(part.provider))

    def _submit(self, part: Part, client: BatchClient) -> None:
        if part.file_id is None:
            found = client.find_file(part.filename) if part.lines else None
            if found is None:
                try:
                    data = part.path.read_bytes()
                except OSError as exc:
                    raise OutputError(f"Cannot read {part.path}: {exc.strerror or exc}") \
                        from None
                if hashlib.sha256(data).hexdigest() != part.sha256:
                    raise OutputError(f"{part.path} is not as it was written ({len(data)} "
                                      f"bytes, not {part.bytes}): restore it or pass --force")
                found = client.upload(part.filename, data)
            self.ledger.record(self.journal, {ENTRY: "file", "token": part.token,
                                              "file_id": found})
        assert part.file_id is not None
        batch = client.find_batch(part.token)
        if batch is None:
            batch = client.create(part.file_id, part.endpoint, {
                "generator": "imagegen", TOKEN_KEY: part.token,
                # Which batch of yours this is, without telling the provider your paths.
                "imagegen_journal": hashlib.sha256(
                    str(self.journal.path.resolve()).encode()).hexdigest()[:16]})
        part.batch = batch
        self.ledger.record(self.journal, {ENTRY: "batch", "token": part.token,
                                          "batch_id": str(batch["id"]),
                                          "file_id": part.file_id})
        self.note(f"submitted batch {batch['id']} ({part.lines} request"
                  f"{'' if part.lines == 1 else 's'} to {part.provider})")


def submit(jobs: Iterable[Job], ctx: Context, journal: Journal, ledger: Ledger,
           client_for: Callable[[str], BatchClient], *, note: Callable[[str], None],
           force: bool = False, cap: tuple[float, str] | None = None) -> Submitted:
    """Submit every call of JOBS that no open part holds and the journal has not
    written; first resume the parts a killed run left half-submitted. JOURNAL is held
    (opened) by the caller; LEDGER is read now."""
    ledger.load()
    return Submitter(journal, ledger, client_for, note=note, force=force,
                     cap=cap).run(jobs, ctx)


# ---------------------------------------------------------------- wait

def wait(parts: list[Part], client_for_provider: Callable[[str], BatchClient], *,
         poll: float, note: Callable[[str], None],
         sleep: Callable[[float], None] = time.sleep, once: bool = False) -> None:
    """Poll each part's batch until every one has ended (ONCE: look once)."""
    t0 = time.monotonic()
    while True:
        for part in parts:
            if part.status in ENDED:
                continue
            assert part.batch_id is not None
            part.batch = client_for_provider(part.provider).get(part.batch_id)
        note(progress(parts, time.monotonic() - t0))
        if once or all(p.status in ENDED for p in parts):
            return
        sleep(poll)


def progress(parts: list[Part], elapsed: float) -> str:
    done = failed = total = 0
    states: dict[str, int] = {}
    for p in parts:
        c, f, t = p.counts()
        done, failed, total = done + c, failed + f, total + t
        states[p.status or "?"] = states.get(p.status or "?", 0) + 1
    shown = ", ".join(f"{k}" if len(parts) == 1 else f"{n} {k}" for k, n in states.items())
    ids = parts[0].batch_id if len(parts) == 1 else f"{len(parts)} batches"
    return (f"batch {ids}: {shown}, {done}/{total} done, {failed} failed, "
            f"{_clock(elapsed)} elapsed")


def _clock(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s // 60 % 60:02d}m{s % 60:02d}s" if s >= 3600 else \
        f"{s // 60}m{s % 60:02d}s"


# ---------------------------------------------------------------- fetch

class Results:
    """Every answered line of the ended parts, found by custom_id (output lines come
    in any order): the files are streamed to disk, then indexed by offset, so memory
    holds one line at a time however large the batch."""

    def __init__(self, covered: dict[str, Part], refused: dict[str, OverBudget]) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="imagegen-batch-"))
        self.covered = covered
        self.refused = refused
        self.fds: list[int] = []
        self.where: dict[str, tuple[int, int, int]] = {}  # cid -> (fd index, offset, len)
        self.price: dict[str, float] = {}  # provider -> factor

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        shutil.rmtree(self.tmp, ignore_errors=True)

    def load(self, part: Part, client: BatchClient) -> None:
        for key in ("output_file_id", "error_file_id"):
            file_id = part.batch.get(key)
            if not isinstance(file_id, str) or not file_id:
                continue
            path = self.tmp / f"{file_id}.jsonl"
            with path.open("wb") as fh:
                client.download(file_id, fh)
            self._index(path)

    def _index(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        self.fds.append(fd)
        k = len(self.fds) - 1
        offset = 0
        with open(path, "rb") as fh:
            for raw in fh:
                cid = custom_id_of(raw[:4096]) or custom_id_of(raw)
                if cid and cid not in self.where:  # output wins over an error of the same
                    self.where[cid] = (k, offset, len(raw))
                offset += len(raw)

    def raw(self, cid: str) -> bytes | None:
        got = self.where.get(cid)
        if got is None:
            return None
        k, offset, length = got
        return os.pread(self.fds[k], length, offset)

    def chain(self, call: Call, transport_for: Callable[[Job, Member], Transport],
              reporter: Reporter, fell_back: Callable[..., None]
              ) -> Iterator[tuple[GeneratedImage, CallInfo, Transport]]:
        """The scheduler's source of CALL's images: its job's answered lines."""
        job = call.job
        provider = job.provider
        assert isinstance(provider, OpenAIProvider)
        transport = transport_for(job, job.members[0])
        per = max_n(job)
        got = 0
        for i in range(call.offset // per, (call.offset + call.n - 1) // per + 1):
            cid = custom_id(job, i)
            part = self.covered.get(cid)
            raw = self.raw(cid)
            if raw is None:
                raise self._missing(job, part)
            assert part is not None
            status, body, rid, err = read_line(raw, provider.name)
            if err is not None:
                raise line_error(status, err, provider.name, rid)
            offset = i * per
            n = min(per, job.n - offset)
            info = CallInfo(request_id=rid, images=n,
                            extra={"batch_id": part.batch_id,
                                   "price_factor": price_of(job).factor})
            for img, inf in images_of(provider, sub_request(job, offset, n), body, info):
                index = offset + img.index
                if call.offset <= index < call.offset + call.n:
                    img.index = index - call.offset
                    got += 1
                    yield img, inf, transport
        if got < call.n:
            raise ShortfallError(f"{provider.name} (batch) sent {got} of the {call.n} "
                                 "images asked for")

    def _missing(self, job: Job, part: Part | None) -> Exception:
        if job.key in self.refused:
            return self.refused[job.key]
        if part is None:
            return UnavailableError("not in any batch of this run (run the same command "
                                    "again to submit it)")
        if part.status == "failed":
            return RefusedError(f"batch {part.batch_id} failed validation: "
                                f"{failure_text(part.batch)}")
        return UnavailableError(f"batch {part.batch_id} ended {part.status} before this "
                                "request was answered (run the same command again to "
                                "submit it anew)")


def failure_text(batch: dict[str, Any]) -> str:
    """A failed batch's errors.data, each naming its input line (batch_error.py)."""
    errs = batch.get("errors")
    data = errs.get("data") if isinstance(errs, dict) else None
    texts = []
    for e in data if isinstance(data, list) else []:
        if isinstance(e, dict):
            where = f"line {e['line']}: " if isinstance(e.get("line"), int) else ""
            code = f" ({e['code']})" if e.get("code") else ""
            texts.append(f"{where}{e.get('message') or 'invalid'}{code}")
    return "; ".join(texts[:5]) + (f" (and {len(texts) - 5} more)" if len(texts) > 5 else "") \
        if texts else "no reason given"
