"""The option table (settings/options.py) is the one declaration of the image
commands' options: the Typer parameters, the config keys and their checks, the
batch record fields, the flags messages name and the completions are all read from
it, and a row added to it shows up in every one of them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import typer

from imagegen_cli.cli import batch as batch_cmd
from imagegen_cli.cli import completion, imageargs
from imagegen_cli.cli.app import app
from imagegen_cli.cli.options import image_command
from imagegen_cli.engine import options as engine_options
from imagegen_cli.engine import records
from imagegen_cli.engine.options import ImageOptions
from imagegen_cli.engine.settle import flag_of
from imagegen_cli.files.metadata.read import FROM_KEYS
from imagegen_cli.registry import create
from imagegen_cli.settings import config, schema
from imagegen_cli.settings import options as table
from imagegen_cli.types import ImageRequest
from tests.conftest import run_cli

COMMANDS = ("generate", "inpaint", "edit", "batch")
SAMPLE = {str: "x", int: 3, float: 1.5, bool: True}
WRONG = {str: " ", int: "1.5", float: '"x"', bool: "maybe"}  # as `config set` reads them


def _params(command: str) -> dict[str, click.Parameter]:
    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    return {p.name: p for p in group.commands[command].params if p.name}


def _options_of(func: Any, command: str) -> dict[str, click.Parameter]:
    """FUNC registered alone as COMMAND: the click parameters Typer made of it."""
    one = typer.Typer()
    if command == "batch":
        # register() gives the batch command its signature: the real one is put back.
        saved = batch_cmd.batch.__signature__, batch_cmd.batch.__annotations__  # type: ignore[attr-defined]
        batch_cmd.register(one)
    else:
        one.command(command)(image_command(command)(func))
    one.command("other")(lambda: None)  # two commands: a group, so commands by name
    group = typer.main.get_command(one)
    if command == "batch":
        batch_cmd.batch.__signature__, batch_cmd.batch.__annotations__ = saved  # type: ignore[attr-defined]
    assert isinstance(group, click.Group)
    return {p.name: p for p in group.commands[command].params if p.name}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_row_is_an_option_of_exactly_its_commands(command: str) -> None:
    params = _params(command)
    for row in table.OPTIONS:
        if command not in row.commands:
            assert row.name not in params, row.name
            continue
        p = params[row.name]
        assert isinstance(p, click.Option)
        assert tuple(p.opts) == row.flags
        assert p.help == row.help_for(command)
        assert p.metavar == row.metavar
        assert getattr(p, "rich_help_panel", None) == row.panel
        assert p.is_flag == (row.value is bool)
        assert p.multiple == row.many
        assert p.required == row.commands[command].required
    image_names = {r.name for r in table.for_command(command)}
    own = {"prompt", "files"} | {p.name for p in batch_cmd.BATCH}
    assert set(params) - own == image_names


def test_help_lists_each_row_in_table_order() -> None:
    for command in COMMANDS:
        r = run_cli([command, "--help"])
        assert r.code == 0
        lines = [ln.strip() + " " for ln in r.lines()]
        at = [next(i for i, ln in enumerate(lines) if ln.startswith(", ".join(row.flags) + " "))
              for row in table.for_command(command)]
        assert at == sorted(at), command


def test_config_keys_are_the_rows_with_one() -> None:
    rows = [r for r in table.OPTIONS if r.config]
    assert schema.default_keys() == {r.config: r.config_type for r in rows} | schema.RUN_KEYS
    assert set(schema.default_keys(per_provider=True)) == {r.config for r in rows
                                                            if r.per_provider}
    assert {"provider", "max_cost"} <= set(schema.default_keys()) - set(
        schema.default_keys(per_provider=True))


@pytest.mark.parametrize("row", [r for r in table.OPTIONS if r.config], ids=lambda r: r.name)
def test_config_set_takes_its_type_and_refuses_others(row: table.Option,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("IMAGEGEN_CONFIG", str(tmp_path / "config.toml"))
    kind = row.config_type if isinstance(row.config_type, type) else float
    good = {"provider": "openai", "size": "1024x1024", "aspect": "16:9", "format": "png",
            "output": "out/{index}.png", "quality": "high", "style": "vivid",
            "background": "opaque", "moderation": "low", "user": "u1"}.get(
        row.config or "", row.values[0] if row.values else str(SAMPLE[kind]).lower())
    r = run_cli(["config", "set", f"defaults.{row.config}", good])
    assert r.code == 0, r.err
    bad = "-" if row.check == table.OUTPUT else WRONG[kind]  # " " names a file
    r = run_cli(["config", "set", f"defaults.{row.config}", bad])
    if kind is str:  # any text is a string: refused only by the option's rule
        assert r.code == (0 if row.check is None else 2), r.err
    else:
        assert r.code == 2 and f"defaults.{row.config} takes" in r.err


def test_record_fields_are_the_rows_with_one() -> None:
    rows = [r for r in table.OPTIONS if r.record]
    assert records.known() == {n for r in rows for n in (r.name, *r.aliases)} | {
        "prompt", "id", "fallback"}
    for row in rows:
        assert table.by_record(row.name) is row
        assert all(table.by_record(a) is row for a in row.aliases)


def test_a_record_sets_each_field_typed_as_the_options_hold_it() -> None:
    import json

    samples: dict[str, Any] = {}
    for row in table.OPTIONS:
        if not row.record:
            continue
        if row.pairs:
            samples[row.name] = {"k": 1}
        elif row.many:
            samples[row.name] = ["a.png"]
        else:
            samples[row.name] = SAMPLE.get(row.value, "m.png")
    text = json.dumps({"prompt": "p", **samples})
    (rec,) = records.parse(text, "in.jsonl", "jsonl", ImageOptions())
    opts = rec.options
    assert opts.image == (Path("a.png"),) and opts.mask == Path("m.png")
    assert opts.params == {"k": 1}
    for name, value in samples.items():
        if name not in ("image", "mask", "params"):
            want = tuple(value) if isinstance(value, list) else value  # many: a tuple
            assert getattr(opts, name) == want, name


def test_the_options_carry_every_row_they_name() -> None:
    """ImageOptions holds the prompt, a record's fallback chain and table rows; every
    row a record may set is one of its fields."""
    fields = {f.name for f in dataclasses.fields(ImageOptions)}
    names = {r.name for r in table.OPTIONS}
    assert fields - names == {"prompt", "fallback", "recorded"}
    assert {r.name for r in table.OPTIONS if r.record} <= fields


def test_request_fields_and_the_flags_messages_name() -> None:
    request = {f.name for f in dataclasses.fields(ImageRequest)}
    for row in table.OPTIONS:
        if row.request:
            assert row.request in request
            assert flag_of(row.request) == row.flag
    assert flag_of("n") == "-n" and flag_of("model") == "-m" and flag_of("size") == "--size"


def test_capabilities_are_declared_by_the_rows_long_flags() -> None:
    """What providers declare, and what validation asks them about
    (`ImageRequest.options_set`), names only capability rows, by their long flag."""
    capable = {r.long for r in table.OPTIONS if r.capability}
    for row in table.OPTIONS:
        if row.capability:
            assert row.request is not None
            value = SAMPLE.get(row.value, "x")
            req = ImageRequest(prompt="p", **{row.request: value})
            assert req.options_set() == {row.long: value}
    cfg = config.load({"XDG_CONFIG_HOME": "/nonexistent", "IMAGEGEN_CONFIG": ""})
    declared: set[str] = set()
    for pcfg in cfg.providers.values():
        provider = create(pcfg, {})
        for model in [None, *provider.known_models()]:
            caps = provider.capabilities(model)
            declared |= caps.options | set(caps.values) | set(caps.ranges)
    assert declared <= capable, declared - capable


def test_from_fills_the_rows_marked_so() -> None:
    assert {r.name for r in table.OPTIONS if r.from_file} == set(FROM_KEYS) - {"prompt"} | {
        "params"}


def test_completion_words_come_from_the_rows() -> None:
    for row in table.OPTIONS:
        if row.values:
            assert completion.values(row.name)("") == list(row.values)
            if row.config:
                assert completion.words_of(row.config) == row.values


def test_building_the_table_imports_nothing_heavy() -> None:
    code = ("import sys\n"
            "import imagegen_cli.settings.options\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('httpx', 'PIL', 'typer', 'click', 'rich') or m.startswith("
            "('imagegen_cli.engine', 'imagegen_cli.providers', 'imagegen_cli.transport'))))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# ---------------------------------------------------------------- one more row

HUE = table.Option(
    "hue", ("--hue",), "warm|cool: the colour cast.", table.IMAGE_HELP,
    table.on(*table.ALL, edit=table.Use(help="warm|cool: the cast of the edit.")),
    metavar="H", values=("warm", "cool"), check=table.ONE_OF, config="hue", record=True,
    aliases=("tint",), request="hue", builtin="warm")


@pytest.fixture
def hue(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> type[ImageOptions]:
    """The table with HUE added, and options that carry it."""
    monkeypatch.setattr(table, "OPTIONS", (*table.OPTIONS, HUE))
    monkeypatch.setenv("IMAGEGEN_CONFIG", str(tmp_path / "config.toml"))
    with_hue = dataclasses.make_dataclass("WithHue", [("hue", "str | None", None)],
                                          bases=(ImageOptions,), frozen=True)
    monkeypatch.setattr(engine_options, "ImageOptions", with_hue)  # what options_from builds
    return with_hue


@pytest.mark.parametrize("command", COMMANDS)
def test_an_added_row_is_an_option_of_each_command(hue: type[ImageOptions],
                                                   command: str) -> None:
    def run(**opts: Any) -> None:
        pass

    p = _options_of(run, command)["hue"]
    assert isinstance(p, click.Option) and p.opts == ["--hue"] and p.metavar == "H"
    assert p.help == ("warm|cool: the cast of the edit." if command == "edit"
                      else "warm|cool: the colour cast.")
    assert [i.value for i in p.shell_complete(click.Context(click.Command("x")), "w")] \
        == ["warm"]


def test_an_added_row_is_a_config_key_checked_by_its_rule(hue: type[ImageOptions]) -> None:
    assert schema.default_keys()["hue"] is str
    assert "defaults.hue" in completion.complete_config_key("defaults.h")
    assert run_cli(["config", "set", "defaults.hue", "cool"]).code == 0
    assert "providers.openai.defaults.hue" in completion.complete_config_key("providers.op")
    assert run_cli(["config", "set", "providers.openai.defaults.hue", "warm"]).code == 0
    r = run_cli(["config", "set", "defaults.hue", "hot"])
    assert r.code == 2 and "--hue hot is not one of warm, cool" in r.err
    r = run_cli(["config", "get", "defaults.hue"])
    assert r.stdout.strip() == "cool"
    ctx = click.Context(click.Command("set"))
    ctx.params["key"] = "defaults.hue"
    assert completion.complete_config_value(ctx, "") == ["warm", "cool"]


def test_an_added_row_reads_its_builtin_default(hue: type[ImageOptions]) -> None:
    r = run_cli(["config", "get", "defaults.hue", "--effective"])
    assert r.code == 0 and r.stdout.strip() == "warm\tbuilt-in default"


def test_an_added_row_is_a_record_field_and_a_flag_of_the_options(
        hue: type[ImageOptions]) -> None:
    recs = records.parse('{"prompt": "p", "hue": "cool"}\n{"prompt": "q", "tint": "warm"}\n',
                         "in.jsonl", "jsonl", hue())
    assert [dataclasses.asdict(r.options)["hue"] for r in recs] == ["cool", "warm"]
    assert recs[0].field_in("--hue cool is not accepted") == "hue"
    with pytest.raises(Exception, match="field 'hue' must be a string"):
        records.parse('{"prompt": "p", "hue": 3}', "in.jsonl", "jsonl", hue())
    with pytest.raises(Exception, match=r"unknown field 'hu'.*did you mean 'hue'"):
        records.parse('{"prompt": "p", "hu": "warm"}', "in.jsonl", "jsonl", hue())
    opts = imageargs.options_from({"prompt": "p", "hue": "warm", "params": None})
    assert dataclasses.asdict(opts)["hue"] == "warm"
    assert flag_of("hue") == "--hue"
