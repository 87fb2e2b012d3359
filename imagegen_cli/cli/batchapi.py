"""`imagegen batch FILE --batch-api`: the batch through OpenAI's Batch API (half
price, answered within 24 h), and `imagegen job get|cancel` for such batches.

The engine (engine/batchapi.py) submits, waits and indexes the answers; the
answers are then written by the same run as a live batch's (cli/batch.py `_run`):
the same files, names, metadata, journal and NDJSON, each record adding
`"via": "batch-api"` and its batch id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from imagegen_cli.cli.console import err, note, out
from imagegen_cli.errors import ConfigError, ImagegenError, Interrupted, UsageError
from imagegen_cli.settings.options import finite

if TYPE_CHECKING:
    from imagegen_cli.engine.events import Tally
    from imagegen_cli.engine.jobs import Job
    from imagegen_cli.engine.options import Context
    from imagegen_cli.engine.run import Frontend, Plan
    from imagegen_cli.providers.openai_batch import BatchClient
    from imagegen_cli.transport.client import Transport


class Clients:
    """One BatchClient per provider name (its key and transport), closed at the end."""

    def __init__(self, ctx: Context, log: Callable[[str], None] | None) -> None:
        self.ctx = ctx
        self.log = log
        self.made: dict[str, BatchClient] = {}
        self.transports: list[Transport] = []

    def __call__(self, name: str) -> BatchClient:
        from imagegen_cli.providers.openai import OpenAIProvider
        from imagegen_cli.providers.openai_batch import BatchClient
        from imagegen_cli.registry import create
        from imagegen_cli.secrets import register_secret
        from imagegen_cli.transport.client import Transport

        if name not in self.made:
            pcfg = self.ctx.cfg.providers.get(name)
            if pcfg is None:
                raise ConfigError(f"The journal names provider {name}, which is not "
                                  "configured any more: add it back to finish its batches")
            prov = create(pcfg, self.ctx.env)
            if not isinstance(prov, OpenAIProvider) or not prov.offers_batch_api():
                raise UsageError(f"Provider {name} does not offer OpenAI's Batch API")
            key = pcfg.require_key(self.ctx.env) if prov.needs_key else None
            register_secret(key)
            # Status calls are short; a file's upload or content gets an hour (--timeout
            # bounds a call as a whole, and an output file can be gigabytes).
            tr = Transport(timeout=300.0, retries=2, who=name, log=self.log)
            bulk = Transport(timeout=3600.0, retries=2, who=name, log=self.log)
            self.transports += [tr, bulk]
            self.made[name] = BatchClient(prov, key, tr, bulk)
        return self.made[name]

    def close(self) -> None:
        for tr in self.transports:
            tr.close()


def poll_interval(value: float | None) -> float:
    poll = 30.0 if value is None else value
    if not (finite(poll) and poll > 0):
        raise UsageError(f"--poll-interval {poll:g}: pass a number of seconds more than 0")
    return poll


def run_batch_api(opts: dict[str, Any], plan: Plan, make_plan: Callable[[], Plan],
                  frontend: Frontend, quiet: bool, *,
                  write: Callable[[dict[str, Any], Plan, Frontend, bool], Tally],
                  finish: Callable[[Tally], None]) -> None:
    """Submit (or resume), wait unless --no-wait, then write every answer: WRITE runs a
    plan as `imagegen batch` does (paths or NDJSON, progress, summary), FINISH exits as
    it does."""
    from imagegen_cli.cli.imageargs import max_cost_of
    from imagegen_cli.engine import batchapi, run
    from imagegen_cli.engine.fallback import require_keys
    from imagegen_cli.engine.journal import DEFAULT_NAME, Journal

    poll = poll_interval(opts.get("poll_interval"))
    if opts["dry_run"]:
        dry_run(plan, quiet)
        return
    if opts.get("stream"):
        raise UsageError("--batch-api: --stream has no meaning in a batch: drop --stream")
    batch, ctx = plan.batch, plan.ctx
    assert batch is not None
    path = batch.state or run.output_folder(batch, ctx) / DEFAULT_NAME
    reuse = plan.stream is None or plan.stream.exhausted  # every job is in plan.jobs
    jobs: Iterable[Job] = list(plan.jobs) if reuse else plan.each()
    for job in plan.jobs:  # before anything is sent: what a batch cannot carry (exit 2),
        batchapi.check_job(job, ctx)  # then the keys (exit 3)
    for job in plan.jobs:
        require_keys(job, ctx.env)
    clients = Clients(ctx, frontend.log)
    try:
        ledger = batchapi.Ledger(path, force=batch.force)
        sub = _submit(jobs, ctx, Journal(path, force=batch.force), ledger, clients,
                      frontend.note, batch.force, max_cost_of(opts, ctx.cfg, os.environ))
        if sub.refused:
            frontend.warn(f"--batch-api: {len(sub.refused)} job(s) not submitted: they "
                          "would take the batch over its --max-cost")
        if opts["no_wait"]:
            _print_parts(sub.parts, path, bool(opts["json_out"] or opts.get("jsonl")))
            return
        if sub.parts:
            batchapi.wait(sub.parts, clients, poll=poll,
                          note=frontend.note if not quiet else (lambda text: None))
        covered = ledger.covered()
        results = batchapi.Results(covered, sub.refused)
        fetch = plan
        try:
            for part in sub.parts:
                results.load(part, clients(part.provider))
            if reuse:
                fetch = plan
                fetch.jobs = list(jobs)
            else:
                # The input is read again for the fetch: let the first reading's jobs go
                # first (the 10,000 read ahead would otherwise be held twice).
                plan.jobs.clear()
                plan.stream = None
                jobs = []
                fetch = make_plan()
            fetch.chain = results.chain
            fetch.budget = None  # the cap was kept when submitting: these are paid for
            fetch.max_failures = None  # every answer is paid for: write them all
            tally = write(opts, fetch, frontend, quiet)
        finally:
            results.close()
        if not tally.not_run and not tally.unread and not tally.fatal:
            journal = Journal(path, force=True)  # to append to: its entries are not read
            journal.open()
            try:
                for part in sub.parts:
                    ledger.record(journal, {batchapi.ENTRY: "fetched", "token": part.token,
                                            "batch_id": part.batch_id,
                                            "status": part.status})
            finally:
                journal.close()
        if not quiet:
            _cost_line(tally, fetch)
        finish(tally)
    except Interrupted as exc:
        exc.message += (" (the batches are still at the provider: run the same command "
                        "again to fetch them; nothing is submitted twice)")
        raise
    finally:
        clients.close()


def _submit(jobs: Iterable[Job], ctx: Context, journal: Any, ledger: Any, clients: Clients,
            note: Callable[[str], None], force: bool, cap: tuple[float, str] | None) -> Any:
    """The submit step under the journal's lock; its entries are let go after it (the
    fetch reads the journal again)."""
    from imagegen_cli.engine import batchapi

    journal.open()
    try:
        return batchapi.submit(jobs, ctx, journal, ledger, clients, note=note, force=force,
                               cap=cap)
    finally:
        journal.close()


def _print_parts(parts: list[Any], journal: Any, as_json: bool) -> None:
    for p in parts:
        if as_json:
            out(json.dumps({"batch_id": p.batch_id, "provider": p.provider,
                            "status": p.status, "requests": p.lines,
                            "input_file_id": p.file_id, "via": "batch-api",
                            "journal": str(journal)}, ensure_ascii=False))
        else:
            out(str(p.batch_id))
    if parts:
        note(f"{len(parts)} batch{'es' if len(parts) > 1 else ''} at the provider: run the "
             "same command again to wait for them and write the images")


def _cost_line(tally: Any, plan: Plan) -> None:
    from imagegen_cli.engine.batchapi import price_of
    from imagegen_cli.pricing.costs import money

    cost, _ = tally.cost()
    if cost is None or not plan.jobs:
        return
    factor = price_of(plan.jobs[0]).factor
    err(f"Batch API: {money(cost)} for this run's images (the same images live: "
        f"{money(cost / factor)})")


def _to_upload(data: bytes) -> str:
    """What a --dry-run line shows for an input image it would upload."""
    import hashlib

    return f"(upload of sha256:{hashlib.sha256(data).hexdigest()[:16]})"


def dry_run(plan: Plan, quiet: bool) -> None:
    """Every JSONL line the batch would upload (nothing is sent), and the estimate at
    the batch price (and the live one) on stderr."""
    from imagegen_cli.engine import batchapi
    from imagegen_cli.pricing.costs import money_range
    from imagegen_cli.secrets import redact

    low = high = 0.0
    lines = unknown = 0
    factor = 1.0
    for job in plan.each():
        batchapi.check_job(job, plan.ctx)
        for i, off, n in batchapi.calls_of(job):
            line = batchapi.line_of(job, i, off, n, _to_upload)
            out(redact(line.decode().rstrip("\n")))
            lines += 1
        factor = batchapi.price_of(job).factor
        lo, hi, known = batchapi.estimate_of(job)
        if known:
            low, high = low + lo * factor, high + hi * factor
        else:
            unknown += 1
    if not quiet and lines:
        note(f"{lines} request{'' if lines == 1 else 's'} for the Batch API; estimated "
             f"cost at the batch price: {money_range(low, high)} (live: "
             f"{money_range(low / factor, high / factor)})"
             + (f", plus {unknown} job(s) at an unknown price" if unknown else ""))


# ---------------------------------------------------------------- job get / cancel

def get_batch(provider: str, batch_id: str, *, output: str | None, overwrite: bool,
              json_out: bool, timeout: float, quiet: bool, poll: float = 30.0) -> None:
    """`imagegen job get openai BATCH_ID`: wait for the batch (up to TIMEOUT s), then
    write each answered image as `generate` names it (prompt, index), its failures on
    stderr (exit 8 when some failed)."""
    import tempfile
    import time
    from pathlib import Path

    from imagegen_cli.engine.batchapi import failure_text
    from imagegen_cli.engine.save import SaveOptions, Saver
    from imagegen_cli.errors import PartialError
    from imagegen_cli.files.naming import OutputPlan
    from imagegen_cli.providers.openai_batch import (
        ENDED,
        custom_id_of,
        images_of,
        line_error,
        read_line,
    )
    from imagegen_cli.types import CallInfo

    client, clients = _client(provider)
    try:
        t0 = time.monotonic()
        while True:
            batch = client.get(batch_id)
            status = batch.get("status")
            counts = batch.get("request_counts") or {}
            if not quiet:
                note(f"batch {batch_id}: {status}, {counts.get('completed', 0)}/"
                     f"{counts.get('total', 0)} done, {counts.get('failed', 0)} failed")
            if status in ENDED:
                break
            if time.monotonic() - t0 + poll > timeout:
                from imagegen_cli.errors import UnavailableError

                raise UnavailableError(f"batch {batch_id} is still {status} after "
                                       f"{timeout:g} s: run this again later")
            time.sleep(poll)
        plan = OutputPlan.from_option(output, overwrite=overwrite)
        plan.check_writable()
        written, failed = 0, []
        with tempfile.TemporaryDirectory(prefix="imagegen-batch-") as tmp:
            bodies = _Bodies(client, batch.get("input_file_id"), Path(tmp))
            for key in ("output_file_id", "error_file_id"):
                file_id = batch.get(key)
                if not isinstance(file_id, str) or not file_id:
                    continue
                with (Path(tmp) / f"{file_id}.jsonl").open("w+b") as fh:
                    client.download(file_id, fh)
                    fh.seek(0)
                    for raw in fh:
                        status_code, body, rid, error = read_line(raw, provider)
                        cid = custom_id_of(raw[:4096]) or custom_id_of(raw) or "?"
                        if error is not None:
                            failed.append(f"{cid}: "
                                          f"{line_error(status_code, error, provider, rid)}")
                            continue
                        req = bodies.request(cid, batch.get("model"))
                        saver = Saver(plan=plan, provider=provider,
                                      model=str(req.model or ""), request=req, count=req.n,
                                      files=SaveOptions(format=plan.wanted_format()))
                        info = CallInfo(request_id=rid, images=req.n,
                                        extra={"batch_id": batch_id})
                        for img, inf in images_of(client.provider, req, body, info):
                            saved = saver.save(img, img.index + 1, inf)
                            if saved is None:
                                continue
                            written += 1
                            out(json.dumps({"custom_id": cid, **saved.as_json()},
                                           ensure_ascii=False) if json_out else saved.path)
        if status == "failed":
            raise PartialError(f"batch {batch_id} failed validation: {failure_text(batch)}")
        for text in failed:
            err(text, prefix="error")
        if failed:
            raise PartialError(f"{len(failed)} request(s) of batch {batch_id} failed; "
                               f"{written} image(s) written")
    finally:
        clients.close()


class _Bodies:
    """The input file's request bodies by custom_id (spooled, indexed by offset): a
    line's prompt and options name its images."""

    def __init__(self, client: BatchClient, file_id: Any, tmp: Any) -> None:
        from imagegen_cli.providers.openai_batch import custom_id_of

        self.where: dict[str, tuple[int, int]] = {}
        self.path = tmp / "input.jsonl"
        self.path.write_bytes(b"")
        if isinstance(file_id, str) and file_id:
            try:
                with self.path.open("wb") as fh:
                    client.download(file_id, fh)
            except ImagegenError:
                return  # names then come from the custom_id
            offset = 0
            with self.path.open("rb") as fh:
                for raw in fh:
                    cid = custom_id_of(raw[:4096]) or custom_id_of(raw)
                    if cid:
                        self.where[cid] = (offset, len(raw))
                    offset += len(raw)

    def request(self, cid: str, model: Any) -> Any:
        from imagegen_cli.types import ImageRequest

        body: dict[str, Any] = {}
        got = self.where.get(cid)
        if got is not None:
            with self.path.open("rb") as fh:
                fh.seek(got[0])
                line = json.loads(fh.read(got[1]))
            body = line.get("body") if isinstance(line.get("body"), dict) else {}
        n = body.get("n")
        return ImageRequest(prompt=str(body.get("prompt") or cid),
                            model=str(body.get("model") or model or "") or None,
                            n=n if isinstance(n, int) and n > 0 else 1,
                            size=body.get("size"), quality=body.get("quality"),
                            background=body.get("background"),
                            output_format=body.get("output_format"))


def cancel_batch(provider: str, batch_id: str, *, json_out: bool) -> None:
    """`imagegen job cancel openai BATCH_ID`: POST /batches/{id}/cancel. The batch is
    `cancelling` (up to 10 minutes), then `cancelled` with its finished lines in its
    output file: the same `imagegen batch ... --batch-api` (or `job get`) writes them."""
    client, clients = _client(provider)
    try:
        batch = client.cancel(batch_id)
    finally:
        clients.close()
    if json_out:
        out(json.dumps({"batch_id": batch.get("id", batch_id), "status": batch.get("status"),
                        "via": "batch-api"}))
    else:
        out(f"{batch.get('id', batch_id)} {batch.get('status')}")


def _client(provider: str) -> tuple[BatchClient, Clients]:
    from imagegen_cli.cli.report import frontend
    from imagegen_cli.engine.run import session

    ctx = session(frontend(True), os.environ)
    if provider not in ctx.cfg.providers:
        raise ConfigError(f"Unknown provider '{provider}': known providers are "
                          + ", ".join(sorted(ctx.cfg.providers)))
    clients = Clients(ctx, None)
    try:
        return clients(provider), clients
    except ImagegenError:
        clients.close()
        raise


def is_batch_id(provider_type: str, job_id: str) -> bool:
    """A Batch API id (`batch_...`) at an openai-type provider."""
    return provider_type == "openai" and job_id.startswith("batch_")
