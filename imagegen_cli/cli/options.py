"""The image commands' Typer parameters, built from the option table.

Typer reads a command's parameters from its signature; `image_command` builds
that signature from the rows of settings/options.py that name the command, so
`generate`, `inpaint`, `edit` and `batch` cannot drift from each other, nor from
the config keys and batch record fields built from the same rows.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from imagegen_cli.cli.completion import complete_model, complete_path, complete_provider, values
from imagegen_cli.settings import options as table

P = inspect.Parameter
Opt = typer.Option

# Built at run time from the table's rows, so typed as the Any they are to mypy.
_annotated: Any = Annotated
_list: Any = list

COMPLETERS: dict[str, Callable[..., Any]] = {
    "path": complete_path, "provider": complete_provider, "model": complete_model,
}


def option_param(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    return P(name, P.KEYWORD_ONLY, default=default, annotation=annotation)


def param(row: table.Option, command: str) -> inspect.Parameter:
    """ROW as COMMAND's Typer parameter."""
    use = row.commands[command]
    value = use.value or row.value
    extra: dict[str, Any] = {}
    if row.metavar:
        extra["metavar"] = row.metavar
    if row.complete:
        extra["autocompletion"] = COMPLETERS[row.complete]
    elif row.values:
        extra["autocompletion"] = values(row.name)
    opt = Opt(*row.flags, help=row.help_for(command), rich_help_panel=row.panel, **extra)
    if value is bool:
        return option_param(row.name, _annotated[bool, opt], False)
    if row.many:
        many = _list[value]
        if use.required:
            return option_param(row.name, _annotated[many, opt], P.empty)
        return option_param(row.name, _annotated[many | None, opt])
    return option_param(row.name, _annotated[value | None, opt])


def params_for(command: str) -> list[inspect.Parameter]:
    """COMMAND's options, in the table's order."""
    return [param(row, command) for row in table.for_command(command)]


PROMPT = P("prompt", P.POSITIONAL_OR_KEYWORD, default=None, annotation=Annotated[
    str | None, typer.Argument(help="The prompt text; - reads stdin; @FILE reads a file.",
                               show_default=False)])


def image_command(command: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give FUNC(**kwargs) the signature PROMPT + COMMAND's options for typer."""

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        params = [PROMPT, *params_for(command)]
        func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        func.__annotations__ = {p.name: p.annotation for p in params}
        return func

    return wrap
