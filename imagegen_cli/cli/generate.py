"""`imagegen generate` and `imagegen inpaint`: flags -> request -> provider -> files."""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from imagegen_cli.cli.options import INPAINT, image_command
from imagegen_cli.errors import ImagegenError, Interrupted, PartialError, UsageError

MAX_ASPECT = 100
FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "webp": "webp"}


def read_prompt(value: str) -> str:
    if value == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("Prompt '-' reads stdin, but stdin is a terminal: pipe the text in")
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError:
            raise UsageError("Prompt from stdin is not UTF-8 text: convert it (e.g. "
                             "iconv -t UTF-8)") from None
    elif value.startswith("@") and len(value) > 1:
        path = Path(value[1:]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"Prompt file {path} does not exist (a prompt starting with @ "
                             "names a file)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"Cannot read prompt file {path}: {exc}") from None
    else:
        text = value
    text = text.strip()
    if not text:
        raise UsageError("Prompt is empty: pass the text, '-' for stdin or @FILE")
    return text


def parse_params(items: list[str] | None) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param '{item}' is not KEY=VALUE")
        try:
            value: Any = json.loads(raw, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            value = raw  # not JSON (or NaN, Infinity, 1e999, too deep): the text itself
        if isinstance(value, float) and not math.isfinite(value):
            value = raw
        out[key.strip()] = value
    from imagegen_cli.secrets import register_params

    register_params(out)  # --param api_key=... is never printed
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def parse_size(size: str | None) -> str | None:
    if size is None:
        return None
    s = size.strip().lower().replace("×", "x")
    if s == "auto":
        return s
    w, sep, h = s.partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
        raise UsageError(f"--size '{size}' is not WIDTHxHEIGHT (e.g. 1024x1024) or auto")
    return f"{int(w)}x{int(h)}"


def parse_aspect(aspect: str) -> float:
    w, sep, h = aspect.partition(":")
    try:
        ratio = float(w) / float(h)
    except (ValueError, ZeroDivisionError, OverflowError):
        ratio = 0
    if not sep or not math.isfinite(ratio) or ratio <= 0:
        raise UsageError(f"--aspect '{aspect}' is not W:H (e.g. 16:9)")
    if not 1 / MAX_ASPECT <= ratio <= MAX_ASPECT:
        raise UsageError(f"--aspect '{aspect}' is beyond {MAX_ASPECT}:1 either way")
    return ratio


def run_images(opts: dict[str, Any], *, inpaint: bool = False) -> None:
    """Everything `generate` and `inpaint` share: settle, validate, run, report."""
    from imagegen_cli import config as cfgmod
    from imagegen_cli.cli.console import note, warn
    from imagegen_cli.http import register_secret
    from imagegen_cli.providers.base import create

    env = os.environ
    cfg = cfgmod.load(env)
    for w in cfg.warnings:
        warn(w)
    pcfg, auto_note = cfgmod.resolve_provider(cfg, opts["provider"], env)
    provider = create(pcfg, env)
    if auto_note and not opts["quiet"]:
        note(auto_note)

    run = _settle(opts, cfg, env)
    req = _request(opts, run, cfg, env, provider, inpaint)
    key = pcfg.key(env) if provider.needs_key else None
    register_secret(key)
    if opts["dry_run"]:
        _dry_run(provider, req, key or (f"${pcfg.api_key_env}" if pcfg.api_key_env else None))
        return
    if provider.needs_key:
        key = pcfg.require_key(env)
    outcome = _execute(opts, run, provider, req, key)
    if opts["json_out"]:
        _print_report(provider.name, req, outcome)
    _raise_failures(req, outcome)


@dataclass
class _Run:
    """Settings resolved from flags, environment and [defaults] (in that order)."""

    plan: Any
    fmt: str | None
    count: int
    size: str | None
    aspect: str | None
    timeout: float
    retries: int
    metadata: bool
    sidecar: bool


def _settle(opts: dict[str, Any], cfg: Any, env: Any) -> _Run:
    from imagegen_cli import config as cfgmod
    from imagegen_cli.output import OutputPlan

    d, pick = cfg.defaults, cfgmod.pick
    fmt_opt = pick(opts["format"], None, d.get("format"), None)
    fmt = None
    if fmt_opt is not None:
        fmt = FORMATS.get(str(fmt_opt).lower())
        if fmt is None:
            raise UsageError(f"-f/--format '{fmt_opt}' is not one of png, jpeg, webp")
    plan = OutputPlan.from_option(
        pick(opts["output"], env.get(cfgmod.ENV_OUTPUT), d.get("output"), None),
        overwrite=opts["overwrite"],
    )
    implied = plan.wanted_format()
    if fmt and implied and implied != fmt:
        raise UsageError(f"-o {plan.template} names a .{implied} file but -f is {fmt}: "
                         "make them agree")
    count = pick(opts["count"], None, d.get("count"), 1)
    if plan.stdout and count != 1:
        raise UsageError("-o - writes one image to stdout: drop -n or write to files")
    if plan.stdout and opts["json_out"]:
        raise UsageError("-o - and --json both want stdout: choose one")
    if opts["keep_partials"] and not (opts["stream"] or opts["partial_images"] is not None):
        raise UsageError("--keep-partials needs --stream")
    size = parse_size(opts["size"])
    aspect = opts["aspect"]
    if aspect and size:
        raise UsageError("--size and --aspect both set the size: pass one")
    if not size and not aspect:
        aspect = d.get("aspect")
        size = None if aspect else parse_size(d.get("size"))
    timeout = float(pick(opts["timeout"], None, d.get("timeout"), 300.0))
    retries = int(pick(opts["retries"], None, d.get("retries"), 2))
    if timeout <= 0:
        raise UsageError("--timeout must be more than 0 seconds")
    if retries < 0:
        raise UsageError("--retries must be 0 or more")
    return _Run(plan=plan, fmt=fmt or implied, count=count, size=size, aspect=aspect,
                timeout=timeout, retries=retries,
                metadata=not (opts["no_metadata"] or d.get("metadata") is False),
                sidecar=opts["sidecar"] or bool(d.get("sidecar")))


def _request(opts: dict[str, Any], run: _Run, cfg: Any, env: Any, provider: Any,
             inpaint: bool) -> Any:
    """The validated ImageRequest (exit 2 for anything the provider would refuse)."""
    from imagegen_cli import config as cfgmod
    from imagegen_cli.cli.console import note
    from imagegen_cli.requests import ImageRequest

    d, pick = cfg.defaults, cfgmod.pick
    req = ImageRequest(
        prompt=read_prompt(opts["prompt"]),
        model=pick(opts["model"], env.get(cfgmod.ENV_MODEL), d.get("model"), None),
        n=run.count,
        size=run.size,
        quality=pick(opts["quality"], None, d.get("quality"), None),
        style=pick(opts["style"], None, d.get("style"), None),
        background=pick(opts["background"], None, d.get("background"), None),
        moderation=pick(opts["moderation"], None, d.get("moderation"), None),
        seed=opts["seed"],
        steps=pick(opts["steps"], None, d.get("steps"), None),
        guidance=pick(opts["guidance"], None, d.get("guidance"), None),
        negative_prompt=pick(opts["negative_prompt"], None, d.get("negative_prompt"), None),
        stream=opts["stream"] or opts["partial_images"] is not None,
        partial_images=opts["partial_images"],
        params=parse_params(opts["param"]),
        device=opts["device"],
        dtype=opts["dtype"],
    )
    if inpaint and provider.inpaint_model() is None and not req.model:
        raise UsageError(_cannot_inpaint(provider.name, cfg, env))
    req = provider.resolve_model(req, inpaint=inpaint)
    if run.aspect:
        caps = provider.capabilities(req.model)
        if caps.sizes is None:
            raise UsageError(f"--aspect needs known sizes, and provider {provider.name} "
                             f"(model {req.model}) does not declare them: pass --size")
        req = req.with_(size=caps.sizes.closest(parse_aspect(run.aspect)))
        if not opts["quiet"]:
            note(f"--aspect {run.aspect}: using size {req.size}")
    if inpaint:
        from imagegen_cli.masks import attach

        req = attach(req, opts["image"], opts["mask"], opts["invert_mask"])
    req = provider.validate(req, inpaint=inpaint)
    if not opts["quiet"]:
        for text in req.notices:
            note(text)
    if run.fmt and run.fmt in provider.capabilities(req.model).formats:
        req = req.with_(output_format=run.fmt)
    return req


def _dry_run(provider: Any, req: Any, shown_key: str | None) -> None:
    import json

    from imagegen_cli.cli.console import out
    from imagegen_cli.pipeline import batches

    calls: list[dict[str, Any]] = []
    for n in batches(req.n, provider.capabilities(req.model).max_n):
        calls.extend(c.describe() for c in provider.prepare(req.with_(n=n), shown_key))
    out(json.dumps({"provider": provider.name, "model": req.model, "requests": calls},
                   indent=2, ensure_ascii=False))


class _PathPrinter:
    """Prints paths in index order (images may finish out of order when several
    requests run at once), each as soon as all before it are printed."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.next = 1
        self.waiting: dict[int, str] = {}

    def saved(self, s: Any) -> None:
        from imagegen_cli.cli.console import out

        if not self.enabled or s.partial is not None:
            return
        self.waiting[s.index] = s.path
        while self.next in self.waiting:
            out(self.waiting.pop(self.next))
            self.next += 1

    def flush(self) -> None:
        from imagegen_cli.cli.console import out

        for index in sorted(self.waiting):
            out(self.waiting.pop(index))


def _execute(opts: dict[str, Any], run: _Run, provider: Any, req: Any, key: str | None) -> Any:
    from imagegen_cli.cli.app import debug_enabled
    from imagegen_cli.cli.console import err, make_reporter
    from imagegen_cli.http import Transport
    from imagegen_cli.pipeline import Saver, execute

    saver = Saver(
        plan=run.plan, provider=provider.name, model=str(req.model), request=req, count=req.n,
        wanted_format=run.fmt, metadata=run.metadata, sidecar=run.sidecar,
        keep_partials=opts["keep_partials"],
        stdout=sys.stdout.buffer if run.plan.stdout else None,
    )
    log = (lambda line: err(line, prefix="debug")) if debug_enabled() else None
    paths = _PathPrinter(enabled=not (opts["json_out"] or run.plan.stdout))
    reporter = make_reporter(opts["quiet"])
    try:
        with reporter, Transport(timeout=run.timeout, retries=run.retries,
                                 who=provider.name, log=log) as tr:
            return execute(provider, req, key, tr, reporter, saver, paths.saved)
    except KeyboardInterrupt:
        jobs = ", ".join(reporter.jobs)
        raise Interrupted(
            f"interrupted; nothing half-written. Job ids still at {provider.name}: {jobs}"
            if jobs else "interrupted; nothing half-written") from None
    finally:
        paths.flush()  # whatever happened, every file written is listed


def _print_report(provider: str, req: Any, outcome: Any) -> None:
    import json

    from imagegen_cli.cli.console import out

    report = {
        "provider": provider,
        "model": req.model,
        "request_id": outcome.request_ids[0] if outcome.request_ids else None,
        "request_ids": outcome.request_ids,
        "timings": outcome.timings,
        "usage": outcome.usage,
        "images": [s.as_json() for s in outcome.saved],
        "errors": [str(e) for e in outcome.failures],
    }
    extra = {k: v for i in outcome.infos for k, v in i.extra.items()}
    if extra:
        report["extra"] = extra
    out(json.dumps(report, indent=2, ensure_ascii=False))


def _raise_failures(req: Any, outcome: Any) -> None:
    if not outcome.failures:
        return
    first = outcome.failures[0]
    more = f" (and {len(outcome.failures) - 1} more)" if len(outcome.failures) > 1 else ""
    if outcome.saved:
        # Name every failure (up to a few): which images are missing, and why.
        shown = "; ".join(str(e) for e in outcome.failures[:3])
        rest = len(outcome.failures) - 3
        raise PartialError(f"{len(outcome.saved)} of {req.n} images written; failed: "
                           f"{shown}" + (f" (and {rest} more)" if rest > 0 else ""))
    if more and isinstance(first, ImagegenError):
        first.message += more
    raise first


def _cannot_inpaint(name: str, cfg: Any, env: Any) -> str:
    """Which providers can inpaint, preferring the ones with a key set."""
    from imagegen_cli.providers.base import create

    able = []
    for p in cfg.providers.values():
        try:
            prov = create(p, env)
        except ImagegenError:
            continue
        model = prov.inpaint_model()
        if model:
            ready = not prov.needs_key or bool(p.key(env))
            able.append((not ready, f"{p.name} ({model})"))
    able.sort()
    names = ", ".join(text for _, text in able) or "none configured"
    return f"Provider {name} cannot inpaint; providers that can: {names} (pass -p NAME)"


@image_command([])
def generate(**opts: Any) -> None:
    """Generate images from a prompt.

    PROMPT is the text itself, - to read stdin, or @FILE to read a file. Prints the
    path of each image written (or one JSON object with --json).
    """
    run_images(opts)


@image_command(INPAINT)
def inpaint(**opts: Any) -> None:
    """Repaint part of an image: white (or transparent) mask pixels mark the area.

    PROMPT is the text itself, - to read stdin, or @FILE to read a file. Without
    --mask, the image's own transparent pixels mark the area.
    """
    run_images(opts, inpaint=True)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
    app.command("inpaint")(inpaint)
