"""What an image command reports once its job has run (or would run).

Owns the --dry-run plan (each call of the fallback chain, secrets redacted, with
its estimated cost), the --json report (`report_of`, also used by `imagegen job
get`), the one cost line at the end of an interactive run, and turning the
job's failures into the error that sets the exit code.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from imagegen_cli.cli.console import err, note, out
from imagegen_cli.errors import ImagegenError, PartialError

if TYPE_CHECKING:
    from imagegen_cli.engine.jobs import Job, Member
    from imagegen_cli.engine.save import Outcome
    from imagegen_cli.pricing.costs import Estimate


def print_dry_run(job: Job, ests: list[Estimate], quiet: bool) -> None:
    """The exact calls of each provider of the chain (secrets redacted), and what each
    would cost."""
    import dataclasses
    import json

    def shown(m: Member) -> dict[str, Any]:
        pc = m.pcfg
        key = pc.key(os.environ) if m.provider.needs_key else None
        shown_key = key or (f"${pc.api_key_env}" if pc.api_key_env else None)
        one: dict[str, Any] = dataclasses.replace(job, provider=m.provider,
                                                  request=m.request).describe(shown_key)
        return one

    report = shown(job.members[0])
    report["estimated_cost"] = ests[0].as_json()
    if len(job.members) > 1:
        report["fallback"] = [dict(shown(m), estimated_cost=e.as_json())
                              for m, e in zip(job.members[1:], ests[1:], strict=True)]
    out(json.dumps(report, indent=2, ensure_ascii=False))
    if not quiet:
        for shown_one in (report, *report.get("fallback", ())):
            note_shown(shown_one)
        for e in ests:
            note(f"estimated cost ({e.provider}): {e.text()} ({e.reason or e.how})"
                 + (f"; {e.advice()}" if e.advice() else ""))


def note_shown(described: dict[str, Any], who: str = "") -> None:
    """Say that a dry run listed only the first of a huge -n's requests."""
    total = described.get("requests_total")
    if total:
        note(f"--dry-run{who}: showing the first {len(described['requests'])} of {total:,} "
             f"requests to {described['provider']} (the rest are like them)")


def _run_cost(outcome: Outcome) -> dict[str, Any]:
    """cost_usd / cost_source for the whole run (and compute seconds where local)."""
    from imagegen_cli.pricing.costs import total_cost

    cost, source = total_cost([(s.cost_usd, s.cost_source) for s in outcome.saved])
    out: dict[str, Any] = {"cost_usd": cost, "cost_source": source}
    compute = [s.timings.get("inference_s") for s in outcome.saved]
    if outcome.saved and cost == 0 and all(c is not None for c in compute):
        out["compute_s"] = round(sum(c for c in compute if c is not None), 3)
    return out


def cost_line(job: Job, outcome: Outcome) -> None:
    """The one line at the end of an interactive run: '3 images, $0.126'."""
    from imagegen_cli.pricing.costs import money

    n = len(outcome.saved)
    if not n:
        return
    c = _run_cost(outcome)
    images = f"{n} image{'s' if n != 1 else ''}"
    makers = {s.provider for s in outcome.saved}
    if c["cost_usd"] is None:
        unknown = sorted({f"{s.provider} {s.model}" for s in outcome.saved
                          if s.cost_usd is None})
        err(f"{images}, cost unknown (no price for {', '.join(unknown)}; set one in "
            "[providers.NAME.prices])")
    elif c["cost_usd"] == 0 and all(m.pricing.free for m in job.members
                                    if m.provider.name in makers):
        compute = c.get("compute_s", outcome.timings.get("total_s"))
        err(f"{images}, $0 (runs on this machine: {compute} s of compute)")
    else:
        err(f"{images}, {money(c['cost_usd'])}"
            + (" (from the price table)" if c["cost_source"] == "table" else ""))


def print_report(job: Job, outcome: Outcome, fallbacks: list[dict[str, Any]]) -> None:
    import json

    # Who made the images: a fallback provider when every image came from it.
    makers = sorted({(s.provider or job.provider.name, s.model or job.request.model)
                     for s in outcome.saved})
    provider, model = makers[0] if len(makers) == 1 else (job.provider.name,
                                                          job.request.model)
    report = report_of(provider, model, outcome)
    if fallbacks:
        report["fallbacks"] = fallbacks
    out(json.dumps(report, indent=2, ensure_ascii=False))


def report_of(provider: str, model: str | None, outcome: Outcome) -> dict[str, Any]:
    """The --json object: images, kept partial frames, and failures as objects."""
    # A failed call has no CallInfo, but its error kept the server's x-request-id.
    ids = list(outcome.request_ids)
    ids += [rid for e in outcome.failures
            if (rid := getattr(e, "request_id", None)) and rid not in ids]
    report: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "request_id": ids[0] if ids else None,
        "request_ids": ids,
        "timings": outcome.timings,
        "usage": outcome.usage,
        **_run_cost(outcome),
        "images": [s.as_json() for s in outcome.saved],
        "errors": [{"message": str(e), "exit_code": int(e.exit_code),
                    "request_id": getattr(e, "request_id", None), "provider": provider}
                   for e in outcome.failures],
    }
    if outcome.partials:
        report["partials"] = [s.as_json() | {"partial": s.partial} for s in outcome.partials]
    extra = {k: v for i in outcome.infos for k, v in i.extra.items()}
    if extra:
        report["extra"] = extra
    return report


def raise_failures(job: Job, outcome: Outcome) -> None:
    if not outcome.failures:
        return
    first = outcome.failures[0]
    more = f" (and {len(outcome.failures) - 1} more)" if len(outcome.failures) > 1 else ""
    if outcome.saved:
        # Name every failure (up to a few): which images are missing, and why.
        shown = "; ".join(str(e) for e in outcome.failures[:3])
        rest = len(outcome.failures) - 3
        raise PartialError(f"{len(outcome.saved)} of {job.n} images written; failed: "
                           f"{shown}" + (f" (and {rest} more)" if rest > 0 else ""))
    if more and isinstance(first, ImagegenError):
        first.message += more
    raise first
