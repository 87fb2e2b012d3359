"""Fuzzing every text parser: the streaming JSON extractor, the SSE parser, config
loading, --size, --aspect, --param, the prompt and output templates.

Any exception other than the project's own error classes is a failure; where a
parser has a reference (json.loads, a whole-body parse), its answer must match.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import string
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomlkit
from hypothesis import assume, example, given
from hypothesis import strategies as st

from imagegen_cli.cli.imageargs import read_prompt
from imagegen_cli.engine.options import parse_params
from imagegen_cli.errors import ConfigError, ImagegenError, UnavailableError, UsageError
from imagegen_cli.files.naming import NAME_MAX, WINDOWS_RESERVED, OutputPlan
from imagegen_cli.providers.openai import OpenAIProvider
from imagegen_cli.settings import edit as configfile
from imagegen_cli.settings import schema
from imagegen_cli.settings.provider import ProviderConfig
from imagegen_cli.settings.rules import parse_aspect, parse_size
from imagegen_cli.transport import jsonstream
from imagegen_cli.transport.sse import parse_sse
from imagegen_cli.types import CallInfo, Reporter
from tests.fuzzing import fuzz


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


cuts = st.lists(st.integers(min_value=0, max_value=10**6), max_size=12)

# ---------------------------------------------------------------- jsonstream

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                    st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                     st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
image_items = st.lists(st.fixed_dictionaries(
    {"b64_json": st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode())},
    optional={"revised_prompt": st.text(max_size=20), "url": st.none()}), max_size=3)


def _resolve(value: Any) -> Any:
    if isinstance(value, jsonstream.Spool):
        return ("spool", value.read())
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    return value


def _expected(value: Any) -> Any:
    if isinstance(value, list):
        return [_expected(v) for v in value]
    if isinstance(value, dict):
        return {k: (("spool", base64.b64decode(v)) if k == "b64_json" and isinstance(v, str)
                    else _expected(v)) for k, v in value.items()}
    return value


@fuzz(300)
@given(extra=json_values, items=image_items, cuts=cuts, indent=st.sampled_from([None, 0, 2]),
       ascii_only=st.booleans(), escape_slash=st.booleans())
def test_jsonstream_matches_json_loads_at_every_split(extra: Any, items: list[dict[str, Any]],
                                                     cuts: list[int], indent: int | None,
                                                     ascii_only: bool,
                                                     escape_slash: bool) -> None:
    doc = {"extra": extra, "data": items}
    text = json.dumps(doc, indent=indent, ensure_ascii=ascii_only)
    if escape_slash:  # JSON may escape '/', which base64 holds
        text = text.replace("/", "\\/")
    got = jsonstream.load(splits(text.encode(), cuts))
    assert _resolve(got) == _expected(json.loads(text))


@fuzz(500)
@given(data=st.binary(max_size=400), cuts=cuts)
@example(data=b"[" * 100_000, cuts=[])
@example(data=b'{"b64_json": "QUJD', cuts=[3])
@example(data=b'{"b64_json": "QU\\u0041"}', cuts=[])
@example(data=b'"\xff\xfe"', cuts=[])
def test_jsonstream_raises_only_its_own_error(data: bytes, cuts: list[int]) -> None:
    with contextlib.suppress(jsonstream.Malformed):
        jsonstream.load(splits(data, cuts))


@fuzz(300)
@given(items=image_items, cut=st.integers(min_value=0, max_value=10**6),
       junk=st.binary(max_size=8))
def test_jsonstream_on_damaged_answers(items: list[dict[str, Any]], cut: int,
                                       junk: bytes) -> None:
    data = json.dumps({"data": items}).encode()
    cut %= len(data) + 1
    with contextlib.suppress(jsonstream.Malformed):
        jsonstream.load([data[:cut], junk, data[cut:]])


# ---------------------------------------------------------------- SSE

eols = st.sampled_from(["\n", "\r\n", "\r"])
field_text = st.text(alphabet=st.characters(blacklist_characters="\r\n",
                                            blacklist_categories=("Cs",)), max_size=30)
events = st.lists(st.tuples(st.sampled_from(["message", "image_generation.completed", "x"]),
                            st.lists(field_text, min_size=1, max_size=3),
                            st.booleans()), max_size=5)


@fuzz(500)
@given(evs=events, eol=eols, cuts=cuts, bom=st.booleans())
def test_sse_parses_any_stream_at_every_split(evs: list[tuple[str, list[str], bool]],
                                              eol: str, cuts: list[int], bom: bool) -> None:
    lines = []
    for name, datas, comment in evs:
        if comment:
            lines.append(": keep-alive")
        if name != "message":
            lines.append(f"event: {name}")
        lines += [f"data: {d}" for d in datas]
        lines.append("")
    body = ("\ufeff" if bom else "") + eol.join(lines) + (eol if lines else "")
    got = list(parse_sse(splits(body.encode(), cuts)))
    assert got == [(name, "\n".join(datas)) for name, datas, _ in evs]


@fuzz(500)
@given(body=st.binary(max_size=300), cuts=cuts)
@example(body=b"data: a\r", cuts=[8])
@example(body=b"data: a\r\ndata: b\r\n\r\n", cuts=[8, 17])
def test_sse_split_anywhere_is_the_same_stream(body: bytes, cuts: list[int]) -> None:
    whole = list(parse_sse([body]))
    assert list(parse_sse(splits(body, cuts))) == whole
    for k in range(0, len(body) + 1, max(1, len(body) // 8)):
        list(parse_sse([body[:k]]))  # cut anywhere: never raises


def test_sse_huge_line() -> None:
    big = "A" * 5_000_000
    assert list(parse_sse([b"data: " + big.encode(), b"\n\n"])) == [("message", big)]
    with pytest.raises(UnavailableError, match="over 1000 bytes"):
        from imagegen_cli.transport.sse import sse_lines

        list(sse_lines([b"x" * 600, b"y" * 600], cap=1000))


frames = st.one_of(
    json_values,
    st.fixed_dictionaries({"type": st.sampled_from(["image_generation.partial_image",
                                                    "image_generation.completed", "error",
                                                    7, None])},
                          optional={"b64_json": st.one_of(st.text(max_size=10),
                                                          st.just(base64.b64encode(b"x")
                                                                  .decode()), st.integers()),
                                    "partial_image_index": st.one_of(st.integers(),
                                                                     st.text(max_size=3)),
                                    "usage": json_values, "error": json_values}))


@fuzz(300)
@given(fr=st.lists(frames, max_size=4), raw=st.lists(st.text(max_size=20), max_size=2),
       cuts=cuts)
def test_openai_stream_events_raise_only_project_errors(fr: list[Any], raw: list[str],
                                                        cuts: list[int]) -> None:
    body = "".join(f"data: {json.dumps(f)}\n\n" for f in fr)
    body += "".join(f"data: {r}\n\n" for r in raw)
    resp = httpx.Response(200, headers={"content-type": "text/event-stream"},
                          content=iter(splits(body.encode(), cuts)))
    prov = OpenAIProvider(ProviderConfig("openai", "openai"), {})
    try:
        for img, _ in prov._events(resp, CallInfo(), Reporter()):
            assert img.data is not None
    except ImagegenError:
        pass


# ---------------------------------------------------------------- config

toml_values = st.one_of(
    st.text(max_size=20), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(), st.booleans(), st.datetimes(max_value=datetime(9999, 1, 1)),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.sampled_from(["a", "type"]),
                                                         st.text(max_size=5), max_size=2))
provider_tables = st.dictionaries(
    st.sampled_from([*schema.PROVIDER_KEYS, "bogus"]),
    st.one_of(toml_values, st.sampled_from(["openai", "distribute", "nebula", "local",
                                            "sync", "async", "http://127.0.0.1:1/v1"])),
    max_size=6)
documents = st.fixed_dictionaries({}, optional={
    "default_provider": st.one_of(toml_values, st.sampled_from(["openai", "mine"])),
    "defaults": st.one_of(toml_values, st.dictionaries(
        st.sampled_from([*schema.default_keys(), "bogus"]), toml_values, max_size=6)),
    "providers": st.one_of(toml_values, st.dictionaries(
        st.sampled_from(["openai", "mine", "nebula", "local"]),
        st.one_of(provider_tables, toml_values), max_size=3)),
    "junk": toml_values,
})


def _load_all(text: str) -> None:
    path = Path("config.toml")
    try:
        cfg = schema.parse(text, path, {})
    except ConfigError:
        return
    for p in cfg.providers.values():
        for key, expected in schema.PROVIDER_KEYS.items():
            value = getattr(p, key)
            assert value is None or isinstance(value, expected)
    try:
        configfile.validate_text(text, path, {})
        from imagegen_cli.registry import create

        for p in cfg.providers.values():
            prov = create(p, {})
            prov.capabilities(p.model)
    except ConfigError:
        pass


@fuzz(300)
@given(doc=documents)
def test_config_with_wrong_types_anywhere(doc: dict[str, Any]) -> None:
    try:
        text = tomlkit.dumps(doc)
        tomllib.loads(text)
    except Exception:  # noqa: BLE001 - a document TOML itself cannot hold: not our input
        assume(False)
    _load_all(text)


toml_alphabet = string.printable + "é\x00\x7f[]{}=\"'.#"


@fuzz(500)
@given(text=st.text(alphabet=toml_alphabet, max_size=200))
@example(text="[providers.x]\ntype = 1")
@example(text="defaults = 3")
@example(text="[[providers]]")
@example(text="providers.openai = 5")
def test_config_from_random_text(text: str) -> None:
    _load_all(text)


# ---------------------------------------------------------------- flags

@fuzz(500)
@given(st.text(max_size=30))
@example("1e309x5")
@example("١٠٢٤x١٠٢٤")  # unicode digits
@example("00000x1")
def test_size(text: str) -> None:
    try:
        size = parse_size(text)
    except UsageError:
        return
    if size != "auto":
        assert size is not None
        w, h = size.split("x")
        assert w.isascii() and h.isascii() and int(w) >= 1 and int(h) >= 1


@fuzz(500)
@given(st.text(max_size=30))
@example("nan:1")
@example("inf:1")
@example("1e-300:1")
@example("1:0")
def test_aspect(text: str) -> None:
    try:
        ratio = parse_aspect(text)
    except UsageError:
        return
    assert math.isfinite(ratio) and ratio > 0


@fuzz(500)
@given(st.lists(st.text(max_size=40), max_size=4))
@example(["a=NaN"])
@example(["a=1e999"])
@example(["a=" + "[" * 10000])
@example(["api_key=sk-secret-xyz"])
def test_param(items: list[str]) -> None:
    try:
        params = parse_params(items)
    except UsageError:
        return
    json.dumps(params, allow_nan=False)  # what is sent is always valid JSON


@fuzz(300)
@given(data=st.binary(max_size=200), how=st.sampled_from(["@", "-", "text"]))
@example(data=b"@\x00", how="text")
@example(data=b"@~\x00", how="text")
@example(data=b"@~\x01/x", how="text")
def test_prompt(data: bytes, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    try:
        if how == "@":
            Path("p.txt").write_bytes(data)
            read_prompt("@p.txt")
        elif how == "-":
            stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
            stdin.isatty = lambda: False  # type: ignore[method-assign]
            monkeypatch.setattr(sys, "stdin", stdin)
            read_prompt("-")
        else:
            read_prompt(data.decode("utf-8", "replace"))
    except UsageError:
        pass


# ---------------------------------------------------------------- output templates

any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
template_parts = st.lists(st.one_of(
    any_text, st.sampled_from(["{prompt}", "{index}", "{count}", "{seed}", "{model}",
                               "{provider}", "{date}", "{time}", "{ext}", "/", "../", "..",
                               ".", "CON", "nul.txt", "{", "}", "{bogus}", "\x00", "~/"])),
    min_size=1, max_size=8)


@fuzz(500)
@given(parts=template_parts, prompt=any_text, model=any_text, provider=any_text,
       seed=st.one_of(st.none(), st.integers()), index=st.integers(1, 10**6),
       count=st.integers(1, 10**6), long=st.sampled_from([0, 0, 300, 10_000]))
@example(parts=["{prompt}.png"], prompt="CON", model="m", provider="p", seed=None, index=1,
         count=1, long=0)
@example(parts=["../{model}/{prompt}"], prompt="../../etc/passwd", model="../..",
         provider="/", seed=None, index=1, count=1, long=0)
def test_every_path_stays_in_its_folder_and_is_a_legal_name(
        parts: list[str], prompt: str, model: str, provider: str, seed: int | None,
        index: int, count: int, long: int, tmp_path: Path) -> None:
    template = "".join(parts) + "x" * long
    try:
        plan = OutputPlan.from_option(template)
        if plan.stdout:  # "-": stdout, no path at all
            return
        path = plan.path_for(prompt=prompt, index=index, count=count, ext="png", seed=seed,
                             model=model, provider=provider, now=datetime(2026, 1, 2, 3, 4))
    except UsageError:
        return
    name = path.name
    assert name not in ("", ".", ".."), path
    assert "\x00" not in str(path) and "/" not in name
    assert len(name.encode()) <= NAME_MAX
    assert name.split(".")[0].lower() not in WINDOWS_RESERVED
    # The folder is the template's own: fields never add, remove or climb folders.
    literal = Path(os.path.expanduser(plan.template)).parent.parts
    got = path.parent.parts
    assert len(got) == len(literal), (plan.template, path)
    for mine, lit in zip(got, literal, strict=True):
        if "{" not in lit:
            assert mine == lit.replace("}}", "}")
        else:
            assert mine not in ("", ".", "..")
    # And this system takes the name as it is.
    target = tmp_path / name
    with open(target, "xb"):
        pass
    target.unlink()


# ---------------------------------------------------------------- error answers

@fuzz(500)
@given(value=st.one_of(st.text(max_size=40), st.floats().map(str),
                       st.integers().map(str)),
       ms=st.one_of(st.none(), st.text(max_size=10)))
@example(value="nan", ms=None)
@example(value="-5", ms=None)
@example(value="Mon, 01 Jan 99999 00:00:00 GMT", ms=None)
@example(value="x", ms="nan")
def test_retry_after_is_never_negative_or_nan(value: str, ms: str | None) -> None:
    from imagegen_cli.transport.classify import retry_after

    headers = {"retry-after": value.encode("utf-8", "replace").decode("latin-1")}
    if ms is not None:
        headers["retry-after-ms"] = ms.encode("utf-8", "replace").decode("latin-1")
    try:
        resp = httpx.Response(429, headers=headers)
    except (ValueError, TypeError):
        return  # not a header httpx would ever hand us
    wait = retry_after(resp)
    assert wait is None or (wait >= 0 and wait == wait)


@fuzz(500)
@given(body=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v)
                                                               .encode())),
       status=st.sampled_from([400, 401, 403, 404, 409, 429, 500, 502, 503]),
       ctype=st.sampled_from(["application/json", "text/html", "text/plain", ""]))
@example(body=b'{"error": {"message": null, "code": 5}}', status=400, ctype="")
@example(body=b'[{"msg": 3}]', status=422, ctype="")
def test_any_error_answer_becomes_one_provider_error(body: bytes, status: int,
                                                     ctype: str) -> None:
    from imagegen_cli.errors import ProviderError
    from imagegen_cli.transport.classify import classify

    resp = httpx.Response(status, content=body, headers={"content-type": ctype} if ctype
                          else {})
    err = classify(resp, "gw")
    assert isinstance(err, ProviderError)
    str(err)


# ---------------------------------------------------------------- hostile JSON (issue 19)

# JSON texts of every hostile shape: NaN and infinities (Python reads them), numbers that
# overflow a float, integers past 64 bits and past CPython's 4300-digit limit, nesting
# past the stack, wrong types.
hostile_json = st.one_of(
    st.sampled_from(["NaN", "-NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e308",
                     "9" * 5000, "9" * 4000, str(2**64), str(-(2**64)), "1" + "0" * 30,
                     "true", "null", '"x"', '"NaN"', '""', "[1]", "[]", "{}", '{"a": NaN}',
                     "[" * 100_000 + "]" * 100_000, "{\"a\":" * 70 + "1" + "}" * 70]),
    st.integers().map(str), st.floats().map(lambda f: json.dumps(f)),
    st.integers(1, 2000).map(lambda d: "[" * d + "]" * d),
    st.text(max_size=10).map(json.dumps))


def _plain(value: Any, depth: int = 0) -> None:
    """VALUE holds only finite numbers and nests within jsontext.MAX_DEPTH."""
    from imagegen_cli.files import jsontext

    assert depth <= jsontext.MAX_DEPTH
    if isinstance(value, float):
        assert math.isfinite(value)
    elif isinstance(value, dict):
        for v in value.values():
            _plain(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _plain(v, depth + 1)


@fuzz(300)
@given(text=st.one_of(hostile_json, st.lists(hostile_json, max_size=3).map(
    lambda xs: "[" + ", ".join(xs) + "]")))
def test_jsontext_refuses_what_json_lets_through(text: str) -> None:
    from imagegen_cli.files import jsontext

    try:
        value = jsontext.loads(text)
    except ValueError as exc:
        assert jsontext.why(exc)
        return
    _plain(value)


@fuzz(300)
@given(field=st.sampled_from(sorted({"prompt", "id", "fallback", "n", "count", "seed",
                                     "steps", "guidance", "timeout", "retries", "params",
                                     "strength", "size", "image", "mask", "stream",
                                     "output_compression", "partial_images"})),
       value=hostile_json, csv=st.booleans())
def test_records_with_hostile_values_are_typed_or_refused(field: str, value: str,
                                                          csv: bool) -> None:
    from imagegen_cli.engine import records
    from imagegen_cli.engine.options import ImageOptions
    from imagegen_cli.settings import options

    if csv:
        cell = value if len(value) < 10_000 else value[:10_000]
        text = f'prompt,{field}\n"a","{cell.replace(chr(34), chr(34) * 2)}"\n' \
            if field != "prompt" else f'prompt\n"{cell.replace(chr(34), chr(34) * 2)}"\n'
        fmt, name = "csv", "r.csv"
    else:
        text = f'{{"prompt": "a", "{field}": {value}}}\n' if field != "prompt" \
            else f'{{"prompt": {value}}}\n'
        fmt, name = "jsonl", "r.jsonl"
    try:
        recs = records.parse(text, name, fmt, ImageOptions())
    except UsageError as exc:
        assert f"{name}, line " in str(exc) and "\n" not in str(exc)
        return
    for rec in recs:
        assert isinstance(rec.options.prompt, str)
        for row in options.OPTIONS:
            got = getattr(rec.options, row.name, None)
            if got is None or row.many or row.pairs:
                continue
            options.typed(row, got)  # nothing a flag could not hold
        _plain(dict(rec.options.params))


@fuzz(300)
@given(rid=hostile_json, line=hostile_json, index=hostile_json,
       error=st.booleans())
def test_merge_takes_only_records(rid: str, line: str, index: str, error: bool,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from imagegen_cli.cli.merge import merge

    extra = ', "error": "x"' if error else ""
    Path("m.ndjson").write_text(f'{{"id": {rid}, "line": {line}, "index": {index}{extra}}}\n')
    try:
        merge(["m.ndjson"])
    except UsageError as exc:
        assert "m.ndjson, line 1" in str(exc)
        return
    for out in capsys.readouterr().out.splitlines():
        json.loads(out)


@fuzz(300)
@given(field=st.sampled_from(["prompt", "seed", "steps", "guidance", "model", "provider",
                              "size", "quality", "negative_prompt", "params"]),
       value=hostile_json)
def test_from_sidecar_values_are_typed_or_refused(field: str, value: str) -> None:
    from imagegen_cli.cli.imageargs import _check_from
    from imagegen_cli.files.metadata.read import settings_from
    from imagegen_cli.settings import options

    Path("s.json").write_text(f'{{"prompt": "a", "{field}": {value}}}'
                              if field != "prompt" else f'{{"prompt": {value}}}')
    try:
        found = settings_from("s.json")
        _check_from("s.json", found)
    except UsageError as exc:
        assert "--from s.json" in str(exc)
        return
    assert isinstance(found["prompt"], str)
    for key, got in found.items():
        row = options.by_name(key)
        if row is not None and not row.many:
            options.typed(row, got)
    _plain(found)


@fuzz(300)
@given(index=hostile_json, key=hostile_json)
def test_journal_skips_hostile_lines(index: str, key: str) -> None:
    from imagegen_cli.engine.journal import Journal

    Path("j.jsonl").write_text(f'{{"key": {key}, "index": {index}, "path": "x.png"}}\n')
    journal = Journal(Path("j.jsonl"))
    for (k, i), rec in journal.entries.items():
        assert isinstance(k, str) and isinstance(i, int)
        _plain(rec)
