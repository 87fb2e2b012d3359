"""The root click group, with each command made from its Typer declaration only when
it is run, completed or its help shown.

Typer turns every command's signature into click parameters before parsing
anything: 20 commands and some 200 options (the four image commands carry 45 each)
on every run, about as long as importing typer itself. `imagegen --help` needs
only their names and first help lines, `imagegen generate ...` only `generate`.
`typer.main.get_command(app)` stays the full, eager build (tests, completion
scripts); this is what `main` runs.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import click
import typer
from typer.core import TyperGroup
from typer.main import get_command, get_command_from_info, get_command_name, get_group


def _help_as_typer_writes_it() -> None:
    """Help text wraps at spaces only, never inside `gpt-image` or `re-running` (click's
    wrapper, a textwrap.TextWrapper, splits words as with break_on_hyphens off). And
    each argument keeps its help: click 8.5's Argument sets `help` after typer has (so
    typer's `Arguments:` listed bare names) and adds a second section of its own."""
    import textwrap

    from click import _textwrap
    from typer.core import TyperArgument, TyperCommand

    _textwrap.TextWrapper.wordsep_re = textwrap.TextWrapper.wordsep_simple_re
    if getattr(TyperArgument, "_help_kept", False):
        return
    init = TyperArgument.__init__

    def keep_help(self: TyperArgument, *args: Any, help: str | None = None,
                  **kwargs: Any) -> None:
        init(self, *args, help=help, **kwargs)
        self.help = help

    setattr(TyperArgument, "__init__", keep_help)  # noqa: B010
    setattr(TyperArgument, "_help_kept", True)  # noqa: B010
    setattr(TyperCommand, "format_arguments", lambda self, ctx, formatter: None)  # noqa: B010


_help_as_typer_writes_it()


class LazyGroup(TyperGroup):
    """A TyperGroup whose commands are built on first use, in registration order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.makers: dict[str, Callable[[], click.Command]] = {}
        self.short: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.makers) or super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.makers:
            self.commands[cmd_name] = self.makers[cmd_name]()
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError:
            # Typer's "Did you mean ..." reads the commands built so far: on this error
            # path, build them all and ask again (it raises again, with the suggestion).
            for name in self.makers:
                self.get_command(ctx, name)
            return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if not self.makers:
            return super().format_commands(ctx, formatter)
        # As click writes the list, from the help text alone (nothing is built).
        limit = formatter.width - 6 - max(len(name) for name in self.makers)
        rows = [(name, click.Command(name, help=text).get_short_help_str(limit))
                for name, text in self.short.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def command_for(app: typer.Typer, args: Sequence[str]) -> click.Command:
    """APP's root group for a run with ARGS: its own options built now, each command
    when first asked for."""
    shell = copy.copy(app)
    shell.registered_commands = []
    shell.registered_groups = []
    shell.info = copy.copy(app.info)
    shell.info.cls = LazyGroup
    group = get_command(shell)
    assert isinstance(group, LazyGroup)
    for info in app.registered_commands:
        assert info.callback is not None
        name = info.name or get_command_name(info.callback.__name__)
        group.makers[name] = _maker(app, info)
        group.short[name] = "" if info.hidden else (
            inspect.cleandoc(info.help) if info.help else inspect.getdoc(info.callback) or "")
    for sub in app.registered_groups:
        assert sub.name and sub.typer_instance is not None
        group.makers[sub.name] = _group_maker(sub.typer_instance, sub.name)
        helps = (sub.help, sub.typer_instance.info.help)  # unset ones are typer placeholders
        group.short[sub.name] = next((h for h in helps if isinstance(h, str)), "")
    return group


def _maker(app: typer.Typer, info: Any) -> Callable[[], click.Command]:
    return lambda: get_command_from_info(
        info, pretty_exceptions_short=app.pretty_exceptions_short,
        rich_markup_mode=app.rich_markup_mode)


def _group_maker(sub: typer.Typer, name: str) -> Callable[[], click.Command]:
    def make() -> click.Command:
        # Always a group (get_command would collapse a one-command app into its command,
        # and add --install-completion), as typer makes a sub-app of add_typer.
        command = get_group(sub)
        command.name = name
        return command

    return make
