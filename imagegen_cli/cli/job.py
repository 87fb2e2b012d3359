"""`imagegen job get PROVIDER ID`: the images of a job submitted earlier (one that
Ctrl-C or --timeout left running), written as `generate` would have written them."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from imagegen_cli.cli.batchapi import cancel_batch, get_batch, is_batch_id
from imagegen_cli.cli.completion import complete_provider
from imagegen_cli.cli.console import note, out, warn
from imagegen_cli.errors import RefusedError, UsageError
from imagegen_cli.settings.options import finite

app = typer.Typer(help="Fetch the images of provider-side jobs (Distribute async jobs, Black "
                  "Forest Labs).",
                  no_args_is_help=True, rich_markup_mode=None)


@app.command("get")
def get(
    provider: Annotated[str, typer.Argument(help="Provider name.",
                                            autocompletion=complete_provider)],
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job id.")],
    output: Annotated[str | None, typer.Option(
        "-o", "--output", metavar="PATH",
        help="File, folder/ or template; default: what the submitting command used.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files.")]
    = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", metavar="SECONDS", help="How long to wait for an unfinished job.")]
    = 300.0,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress on stderr.")]
    = False,
) -> None:
    """Wait for job ID at PROVIDER to finish, then write its images with the names
    and metadata the command that submitted it would have used."""
    from imagegen_cli.cli.report import make_reporter
    from imagegen_cli.cli.summary import report_of
    from imagegen_cli.engine import history
    from imagegen_cli.engine import pending as jobs
    from imagegen_cli.engine.save import Outcome, SaveOptions, Saver
    from imagegen_cli.files.naming import OutputPlan
    from imagegen_cli.registry import create
    from imagegen_cli.secrets import register_secret
    from imagegen_cli.settings import config
    from imagegen_cli.transport.client import Transport

    if not (finite(timeout) and timeout > 0):
        raise UsageError(f"--timeout {timeout:g}: pass a finite number of seconds, more than 0")
    env = os.environ
    cfg = config.load(env)
    for w in cfg.warnings:
        warn(w)
    if provider not in cfg.providers:
        raise config.unknown_provider(cfg, provider)
    pcfg = cfg.providers[provider]
    if is_batch_id(pcfg.type, job_id):  # OpenAI's Batch API (batch --batch-api)
        get_batch(provider, job_id, output=output, overwrite=overwrite, json_out=json_out,
                  timeout=timeout, quiet=quiet)
        return
    prov = create(pcfg, env)
    if not prov.runs_jobs:  # said before asking for a key
        raise UsageError(f"Provider {prov.name} runs no jobs to look up: `imagegen job get` "
                         "is for providers with async jobs (distribute, bfl)")
    record = jobs.load(provider, job_id) or jobs.JobRecord(provider, job_id, {})
    done = jobs.already_fetched(record)
    if done and output is None and not overwrite:
        for path in done:
            out(path)
        note(f"job {job_id} was fetched already: its images are listed above (pass -o "
             "PATH to write them again)")
        return
    req = record.image_request()
    req = req.with_(model=req.model or prov.default_model())
    if output == "-":
        raise UsageError("job get writes files: pass a file, folder/ or template to -o")
    plan = (OutputPlan.from_option(output, overwrite=overwrite) if output
            else OutputPlan(record.output, exact=bool(record.extra.get("exact")),
                            overwrite=overwrite) if record.output
            else OutputPlan.from_option(None, overwrite=overwrite))
    plan.check_extension()
    plan.check_writable()
    key = pcfg.require_key(env) if prov.needs_key else None
    register_secret(key)
    recorder = history.recorder(cfg, env, command="job get", warn=warn)
    saver = Saver(plan=plan, provider=prov.name, model=str(req.model), request=req,
                  count=record.count, warn=warn, note=None if quiet else note,
                  history=recorder,
                  files=SaveOptions(format=record.format or plan.wanted_format(),
                                   metadata=record.metadata, sidecar=record.sidecar))
    outcome = Outcome()
    reporter = make_reporter(quiet)
    with reporter, Transport(timeout=timeout, retries=2, who=prov.name,
                             on_retry=reporter.retry) as tr:
        try:
            where = record.extra.get("where")
            # Only when the submitting run noted one: a plugin's get_job may predate WHERE.
            found = (prov.get_job(job_id, key, tr, reporter, where=str(where)) if where
                     else prov.get_job(job_id, key, tr, reporter))
            for i, (img, info) in enumerate(found):
                if info not in outcome.infos:
                    outcome.infos.append(info)
                saved = saver.save(img, record.index + i)
                if saved is not None:
                    outcome.saved.append(saved)
                    if not json_out:
                        out(saved.path)
        except RefusedError:
            jobs.drop(provider, job_id)  # the job failed: nothing will come later
            raise
    jobs.fetched(record, [s.path for s in outcome.saved])
    if recorder is not None:
        recorder.finish(0)
    if json_out:
        import json

        out(json.dumps(report_of(prov.name, req.model, outcome), indent=2,
                       ensure_ascii=False))


@app.command("cancel")
def cancel(
    provider: Annotated[str, typer.Argument(help="Provider name.",
                                            autocompletion=complete_provider)],
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The batch id (batch_...).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Cancel batch ID at PROVIDER (OpenAI's Batch API): it stops within minutes, and
    its finished lines can still be fetched (run the batch command again, or `job
    get`)."""
    from imagegen_cli.settings import config

    cfg = config.load(os.environ)
    if provider not in cfg.providers:
        raise config.unknown_provider(cfg, provider)
    if not is_batch_id(cfg.providers[provider].type, job_id):
        raise UsageError(f"`imagegen job cancel` cancels OpenAI batches (batch_...) at an "
                         f"openai-type provider; {job_id} at {provider} is not one")
    cancel_batch(provider, job_id, json_out=json_out)
