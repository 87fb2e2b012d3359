"""The root Typer app, and `main`: the single place where errors become
messages and exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imagegen_cli import __version__
from imagegen_cli.cli import batch as batch_cmd
from imagegen_cli.cli import completion, providers_check, providers_edit
from imagegen_cli.cli import config as config_cmd
from imagegen_cli.cli import gallery as gallery_cmd
from imagegen_cli.cli import generate as generate_cmd
from imagegen_cli.cli import history as history_cmd
from imagegen_cli.cli import info as info_cmd
from imagegen_cli.cli import job as job_cmd
from imagegen_cli.cli import models as models_cmd
from imagegen_cli.cli import providers as providers_cmd
from imagegen_cli.cli import serve as serve_cmd
from imagegen_cli.cli.completion import init
from imagegen_cli.cli.console import err as _err
from imagegen_cli.cli.console import silence_stdout
from imagegen_cli.cli.lazy import command_for
from imagegen_cli.cli.state import COMPLETE_VAR, state
from imagegen_cli.errors import ExitCode, ImagegenError

if TYPE_CHECKING:
    from click.exceptions import UsageError as UsageErrorT

app = typer.Typer(
    name="imagegen",
    help="Generate images from the command line with OpenAI (and Azure, xAI, gateways that "
    "speak its API), Google Gemini, Black Forest Labs, Distribute, Nebula Block, or a local "
    "diffusers model.",
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)



def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"imagegen {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True,
                     help="Print the version and exit."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show HTTP traffic (keys redacted) and tracebacks.")
    ] = False,
) -> None:
    state["debug"] = debug or bool(os.environ.get("IMAGEGEN_DEBUG"))


# Every command is registered here, and only here.
generate_cmd.register(app)
batch_cmd.register(app)
info_cmd.register(app)
history_cmd.register(app)
gallery_cmd.register(app)
# `providers`: list and show, then models, check, add, remove (the order --help shows).
providers_check.register(providers_cmd.app)
providers_edit.register(providers_cmd.app)
app.add_typer(providers_cmd.app, name="providers")
app.add_typer(config_cmd.app, name="config")
app.add_typer(job_cmd.app, name="job")
app.add_typer(models_cmd.app, name="models")
completion.register(app)
serve_cmd.register(app)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code. Every error is converted here."""
    from imagegen_cli.cli import console

    console.reset_stdout()
    code = _cli(argv)
    try:
        sys.stdout.flush()
    except OSError:
        # A reader that went away or a full disk: whatever could not get out is
        # dropped here, so the interpreter's own last flush stays silent.
        console.silence_stdout()
    lost = console.stdout_error()
    if lost and code == 0:
        # The images are written; the list of them could not be printed.
        console.err(f"Cannot print the results to stdout: {lost}", prefix="error")
        code = int(ExitCode.OUTPUT)
    return code


def _cli(argv: Sequence[str] | None) -> int:
    click_usage, click_abort = _click_errors()

    def err(text: str, prefix: str = "") -> None:
        _err(text, prefix=prefix)

    args = list(sys.argv[1:] if argv is None else argv)
    state["debug"] = "--debug" in args or bool(os.environ.get("IMAGEGEN_DEBUG"))
    # --debug is global but accepted anywhere (`imagegen generate --debug ...`): it is
    # taken out before the command parses, except after a `--` separator.
    end = args.index("--") if "--" in args else len(args)
    if "--debug" in args[1:end]:
        args = [a for a in args[:end] if a != "--debug"] + args[end:]
        args.insert(0, "--debug")
    command = command_for(app, args)
    state["terminated"] = False
    previous = _on_sigterm()
    try:
        code = _main(command, args, err, click_usage, click_abort)
    finally:
        if previous is not None:
            import signal

            signal.signal(signal.SIGTERM, previous)
    if state["terminated"] and code == int(ExitCode.INTERRUPTED):
        return int(ExitCode.TERMINATED)
    return code


def _on_sigterm() -> Any:
    """SIGTERM (what CI sends on cancel) takes Ctrl-C's path: the same clean stop and
    the same message of what was written and what was left; then exit 143."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        state["terminated"] = True
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):
        return None


def _main(command: Any, args: list[str], err: Any, click_usage: Any, click_abort: Any) -> int:
    if os.environ.get(COMPLETE_VAR):
        # A completion script is asking (see completions/): answer with typer's protocol.

        init()
        command.main(args=args, prog_name="imagegen", complete_var=COMPLETE_VAR)
    try:
        rv = command.main(args=args, prog_name="imagegen", standalone_mode=False)
    except ImagegenError as exc:
        text = str(exc)
        if state["terminated"] and exc.exit_code == ExitCode.INTERRUPTED:
            text = text.replace("interrupted", "terminated (SIGTERM)", 1)
        err(text, prefix="error")
        return int(exc.exit_code)
    except click_usage as exc:
        # Typer/click usage errors (unknown option, bad value): exit 2, one message.
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            sys.stderr.write(ctx.get_help() + "\n")
            return int(ExitCode.USAGE)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        err(_once(exc.format_message()) + (_quote_hint(ctx, exc.format_message()) or hint),
            prefix="error")
        return int(ExitCode.USAGE)
    except (click_abort, KeyboardInterrupt):
        err("terminated (SIGTERM); nothing half-written" if state["terminated"]
            else "interrupted")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`| head`) while a command printed: not our error.

        silence_stdout()
        return 0
    except Exception as exc:  # noqa: BLE001 - the one catch-all, exit 1
        if state["debug"]:
            import traceback

            from imagegen_cli.secrets import redact

            sys.stderr.write(redact(traceback.format_exc()))
        err(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
            "traceback, and please report it)", prefix="error")
        return int(ExitCode.INTERNAL)
    if isinstance(rv, int):
        return rv
    return 0


def _quote_hint(ctx: Any, message: str) -> str | None:
    """`imagegen generate a cat`: the words after the first are extra arguments; say to
    quote the prompt, showing the command as it should have been typed."""
    import re
    import shlex

    match = re.match(r"Got unexpected extra arguments? \((.*)\)$", message.strip())
    if ctx is None or match is None or "prompt" not in ctx.params:
        return None
    words = [str(ctx.params.get("prompt") or ""), match.group(1)]
    prompt = " ".join(w for w in words if w)
    shown = (f'"{prompt}"' if not set(prompt) & set('"$`\\!') else shlex.quote(prompt))
    return f": quote the prompt: {ctx.command_path} {shown}"


def _once(message: str) -> str:
    """click and typer each add "Did you mean ...?": say it once."""
    import re

    out: list[str] = []
    for sentence in re.split(r"(?<=[.?]) +", message.strip()):
        if sentence not in out:
            out.append(sentence)
    return " ".join(out)


def _click_errors() -> tuple[type[UsageErrorT], type[BaseException]]:
    from click.exceptions import Abort, UsageError

    return UsageError, Abort


def run() -> None:
    raise SystemExit(main())
