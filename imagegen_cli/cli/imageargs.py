"""The image commands' flags made into the core's typed options.

Owns what `generate`, `inpaint`, `edit` (and `batch`, for its shared flags) read
from Typer's keyword arguments: the prompt (text, - for stdin, @FILE), the
settings recorded in a --from image, --param items, --max-cost and its
precedence, and -j/--concurrency. The result is an `ImageOptions`; nothing here
runs a job or prints.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen_cli.errors import UsageError
from imagegen_cli.settings import options as table

if TYPE_CHECKING:
    from imagegen_cli.engine.options import ImageOptions


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
        path = Path(value[1:])
        try:
            path = Path(os.path.expanduser(path))  # ("~nouser" stays as typed)
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"Prompt file {path} does not exist (a prompt starting with @ "
                             "names a file)") from None
        except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or a NUL in the name
            why = (exc.strerror if isinstance(exc, OSError) else None) or exc
            raise UsageError(f"Cannot read prompt file {str(path)!r}: {why}") from None
    else:
        text = value
    text = text.strip()
    if not text:
        raise UsageError("Prompt is empty: pass the text, '-' for stdin or @FILE")
    return text


def options_from(opts: dict[str, Any]) -> ImageOptions:
    """Typer's keyword arguments -> the core's typed options (the only place this
    dict is read for image options): each option of the table the options carry,
    typed as they hold it."""
    from imagegen_cli.engine.options import ImageOptions, parse_params

    fields = {f.name for f in dataclasses.fields(ImageOptions)}
    given: dict[str, Any] = {}
    for row in table.OPTIONS:
        if row.name not in fields or row.name not in opts:
            continue
        value = opts[row.name]
        if row.pairs:
            value = parse_params(value)
        elif row.many:
            value = tuple(value or ())
        elif value is not None:
            try:
                table.typed(row, value)  # --timeout nan, --guidance inf
            except table.Wrong as exc:
                raise UsageError(f"{row.flag} {str(value)[:40]}: pass {exc.want}") from None
        given[row.name] = value
    given["prompt"] = read_prompt(opts["prompt"]) if opts.get("prompt") is not None else None
    given["recorded"] = frozenset(opts.get("recorded") or ())
    return ImageOptions(**given)


def with_settings_from(opts: dict[str, Any], cfg: Any, env: Any,
                       note: Any = None) -> tuple[dict[str, Any], str | None]:
    """OPTS filled from the --from file wherever no flag was given (flags win), and
    the recorded prompt when no PROMPT was given. The fields it filled are listed
    under "recorded": a value the provider in use cannot take is then dropped with a
    note naming the file (settle), never refused as if typed. The recorded model goes
    only to the provider that made the image; NOTE says when it is left out."""
    from imagegen_cli.engine import history
    from imagegen_cli.files.metadata.read import settings_from
    from imagegen_cli.settings import config as cfgmod

    path = opts["from_file"]
    if str(path).isdigit() and not Path(path).exists():  # an `imagegen history` ID
        found = history.settings_from_id(int(str(path)), env)
    else:
        found = settings_from(path)
    _check_from(path, found)
    opts = dict(opts)
    if opts.get("no_seed"):
        if opts.get("seed") is not None:
            raise UsageError("--seed and --no-seed both decide the seed: pass one")
        found.pop("seed", None)
    made_by = found.get("provider")
    if made_by not in cfg.providers:
        found.pop("provider", None)  # made by a provider this config does not know
    provider = opts["provider"] or found.get("provider")
    model = found.get("model")
    if model and opts["model"] is None:
        pcfg, _ = cfgmod.resolve_provider(cfg, provider.split(",")[0] if provider else None,
                                          env)
        if made_by != pcfg.name:
            # A model id means something to the provider that made the image only
            # (an AUTOMATIC1111 checkpoint is no Nebula model).
            found.pop("model")
            if note is not None:
                by = f"made by {made_by}" if made_by else "made elsewhere"
                note(f"--from {path}: its model {model} ({by}) is not sent to "
                     f"{pcfg.name}; using {pcfg.name}'s own model (pass -m to choose)")
        elif pcfg.type == "local" and "/" not in model:
            # The local provider records a model folder by its name only: keep the
            # configured folder rather than look for a folder of that name here.
            found.pop("model")
    params = found.pop("params", None)
    if params and not opts["params"]:
        import json

        opts["params"] = [f"{k}={json.dumps(v)}" for k, v in params.items()]
    prompt = found.pop("prompt")
    recorded = set()
    for key, value in found.items():
        row = table.by_name(key)
        if row is not None and row.from_file and key in opts and opts[key] is None:
            opts[key] = value
            recorded.add(key)
    if opts["aspect"] is not None and "size" in found and opts["size"] == found["size"]:
        opts["size"] = None  # --aspect given beside --from replaces the recorded size
        recorded.discard("size")
    opts["recorded"] = frozenset(recorded)
    return opts, (prompt if opts["prompt"] is None else None)


def _check_from(path: object, found: dict[str, Any]) -> None:
    """The values of a --from file through the check flags and batch records go through
    (a sidecar is text anyone may edit): exit 2 naming the file and the field."""
    def bad(key: str, want: str) -> UsageError:
        got = repr(found[key])
        return UsageError(f"--from {path}: field '{key}' must be {want} (got "
                          f"{got if len(got) <= 60 else got[:57] + '...'}): fix or remove it "
                          "there")

    if not isinstance(found.get("prompt"), str):
        raise bad("prompt", "a string")
    for key, value in found.items():
        row = table.by_name(key)
        if row is None or row.many:
            continue  # the prompt; params (an object, as settings_from keeps it)
        try:
            table.typed(row, value)
        except table.Wrong as exc:
            raise bad(key, exc.want) from None


def max_cost_of(opts: dict[str, Any], cfg: Any, env: Any) -> tuple[float, str] | None:
    """--max-cost > IMAGEGEN_MAX_COST > [defaults] max_cost, and which one it was."""
    from imagegen_cli.pricing.costs import parse_max_cost
    from imagegen_cli.settings import config as cfgmod

    for value, where in ((opts.get("max_cost"), "--max-cost"),
                         (env.get(cfgmod.ENV_MAX_COST), cfgmod.ENV_MAX_COST),
                         (cfg.defaults.get("max_cost"), "[defaults] max_cost")):
        amount = parse_max_cost(value, where)
        if amount is not None:
            return amount, where
    return None


def concurrency_of(value: int | None) -> int:
    if value is None:
        return 4
    if value < 1:
        raise UsageError(f"-j/--concurrency {value}: pass 1 or more")
    return value
