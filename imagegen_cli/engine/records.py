"""Batch input: text, JSONL or CSV records -> typed options, one per job.

text : one prompt per line; blank lines and lines starting with # skipped.
jsonl: one object per line: `prompt`, an optional `id`, and any generate or
       inpaint option by its long name with _ for - (`n` or `count`, `params`
       as an object, `image` as a path or a list of paths).
csv  : a header row naming the same fields; an empty cell leaves it unset.
A record's field wins over the command's flag of the same name.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegen_cli.engine.options import ImageOptions
from imagegen_cli.errors import UsageError
from imagegen_cli.files import jsontext
from imagegen_cli.settings import options

FORMATS = ("text", "jsonl", "csv", "csv-multiline")
# The fields that are no option of the image commands (the rest: settings/options.py).
RECORD_ONLY = ("prompt", "id", "fallback")


def known() -> set[str]:
    """Every field a record may hold."""
    return options.record_fields() | set(RECORD_ONLY)


@dataclass
class Record:
    line: int
    id: str | None  # the record's own id, if it gave one
    options: ImageOptions
    given: frozenset[str] = frozenset()  # the fields the record itself set
    number: int = 0  # the default id: the line, less a CSV's header row

    @property
    def default_id(self) -> int:
        return self.number or self.line

    def field_in(self, message: str) -> str | None:
        """The record's own field that MESSAGE (about an option, by its flag) is about."""
        for key in sorted(self.given):
            row = options.by_record(key)
            if row is None:
                continue
            # Only -n of the short flags: the core names the count by it, while
            # "-m", "-o" or "-f" in a message are hints ("pass -m MODEL").
            flags = (f"{row.said} ", row.long) if row.said == "-n" else (row.long,)
            if any(f in message for f in flags):
                return key
        return None

    @property
    def inpaint(self) -> bool:
        return bool(self.options.image)


def detect_format(name: str, text: str, wanted: str | None) -> str:
    fmt = format_by_name(name, wanted)
    return fmt if fmt is not None else peek_format(iter(lines(text)))[0]


def format_by_name(name: str, wanted: str | None) -> str | None:
    """--input-format, else what NAME's extension says; None: look at the first line."""
    if wanted:
        wanted = wanted.strip().lower()  # --input-format CSV
        if wanted not in FORMATS:
            raise UsageError(f"--input-format '{wanted}' is not one of text, jsonl, csv, "
                             "csv-multiline")
        return wanted
    suffix = Path(name).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix in (".txt", ".text"):
        return "text"
    return None


def parse(text: str, name: str, fmt: str, base: ImageOptions,
          on_invalid: Callable[[UsageError], None] | None = None) -> list[Record]:
    """Every record of TEXT over BASE. A bad record raises UsageError naming NAME, the
    line and the field, or goes to ON_INVALID (--skip-invalid) and is left out."""
    return list(stream(iter(lines(text)), name, fmt, base, on_invalid))


def stream(numbered: Iterator[tuple[int, str]], name: str, fmt: str, base: ImageOptions,
           on_invalid: Callable[[UsageError], None] | None = None) -> Iterator[Record]:
    """The records of NUMBERED lines (see `read_lines`) over BASE, one at a time as the
    lines are read: a million-line file starts its first job at once, in flat memory."""
    rows = (_csv_rows(numbered, name, multiline=True) if fmt == "csv-multiline" else
            {"text": _text_rows, "jsonl": _jsonl_rows, "csv": _csv_rows}[fmt](numbered, name))
    ids: dict[str, int] = {}
    for line, fields in rows:
        try:
            if isinstance(fields, UsageError):
                raise fields
            rec = _record(line, fields, base, name, from_csv=fmt.startswith("csv"))
            if rec.id is not None:
                if rec.id in ids:
                    raise UsageError(f"{name}, line {line}: id '{rec.id}' is already used on "
                                     f"line {ids[rec.id]}: give each record its own id")
                ids[rec.id] = line
        except UsageError as exc:
            if on_invalid is None:
                raise
            on_invalid(exc)
            continue
        yield rec


def lines(text: str) -> list[tuple[int, str]]:
    """TEXT's lines, numbered from 1. A line ends at \\n or \\r\\n only: str.splitlines
    would also end one at U+2028, U+2029, NEL (U+0085), form feed, vertical tab or a lone
    \\r, splitting one prompt into several paid jobs and a JSON string that holds one
    raw (as JSON allows) into invalid halves."""
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()  # the final line break ends the last line; it starts none
    return [(i, ln.removesuffix("\r")) for i, ln in enumerate(parts, 1)]


def read_lines(raw: Iterable[bytes], what: str) -> Iterator[tuple[int, str]]:
    """The lines of a binary stream, numbered from 1 and decoded one by one (a line
    ends at \\n or \\r\\n only, as in `lines`); a byte that is not UTF-8 is exit 2
    naming WHAT, the line and the byte. A leading BOM (Excel's CSV) is no text."""
    offset = 0
    for i, chunk in enumerate(raw, 1):
        try:
            text = chunk.decode("utf-8-sig" if i == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"{what} is not UTF-8 text ({exc.reason} at byte "
                             f"{offset + exc.start}, line {i}): save it as UTF-8") from None
        offset += len(chunk)
        yield i, text.removesuffix("\n").removesuffix("\r")


def peek_format(numbered: Iterator[tuple[int, str]]
                ) -> tuple[str, Iterator[tuple[int, str]]]:
    """The format the first non-blank line suggests (jsonl or text), and the lines
    again from the start (those read to find it included)."""
    seen: list[tuple[int, str]] = []
    for item in numbered:
        seen.append(item)
        if item[1].strip():
            break
    first = next((ln.strip() for _, ln in seen if ln.strip()), "")
    return ("jsonl" if first.startswith("{") else "text"), itertools.chain(seen, numbered)


def _text_rows(numbered: Iterator[tuple[int, str]], name: str) -> Iterator[tuple[int, Any]]:
    for i, ln in numbered:
        if ln.strip() and not ln.lstrip().startswith("#"):
            yield i, {"prompt": ln.strip()}


def _jsonl_rows(numbered: Iterator[tuple[int, str]], name: str) -> Iterator[tuple[int, Any]]:
    for i, ln in numbered:
        if not ln.strip():
            continue
        try:
            obj = jsontext.loads(ln)
        except ValueError as exc:
            yield i, UsageError(f"{name}, line {i}: not valid JSON ({jsontext.why(exc)}): "
                                "each line must be one JSON object")
            continue
        if not isinstance(obj, dict):
            obj = UsageError(f"{name}, line {i}: a JSON {type(obj).__name__}, not an object: "
                             'write {"prompt": "..."}')
        yield i, obj


def _csv_rows(numbered: Iterator[tuple[int, str]], name: str,
              multiline: bool = False) -> Iterator[tuple[int, Any]]:
    """One record per line. A quoted cell spans lines only when asked for
    (`--input-format csv-multiline`): a quote left open (`"a cat,1`, a typo) would
    otherwise swallow every line after it into one paid prompt. Either way a quote still
    open at the end of the input is exit 2 naming the line it opened on."""
    chunks = _csv_chunks(numbered, name, multiline)
    first = next(chunks, None)
    if first is None:
        return
    if isinstance(first[1], UsageError):
        raise UsageError(f"{name}, line {first[0]}: bad CSV header "
                         f"({first[1].message.split(': ', 1)[1]})")
    header = [h.strip() for h in first[1]]
    fields = known()
    for h in header:
        if h not in fields:
            raise UsageError(f"{name}, line 1: unknown column '{h}'{_did_you_mean(h)}; "
                             "known: " + ", ".join(sorted(fields)))
    if "prompt" not in header:
        raise UsageError(f"{name}, line 1: no 'prompt' column in the header row")
    for line, cells in chunks:
        if isinstance(cells, UsageError):
            yield line, cells
            continue
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            yield line, UsageError(
                f"{name}, line {line}: {len(cells)} cells but the header names "
                f"{len(header)} columns (quote cells that hold commas)")
            continue
        yield line, {h: c for h, c in zip(header, cells, strict=False) if c.strip() != ""}


def _csv_chunks(numbered: Iterator[tuple[int, str]], name: str, multiline: bool
                ) -> Iterator[tuple[int, list[str] | UsageError]]:
    """The cells of each CSV record, numbered by the line it starts on."""
    import csv

    start, buf = 0, ""
    for line, text in numbered:
        if not buf:
            start = line
        buf += text + "\n"
        try:
            cells = next(csv.reader([buf], strict=True), [])
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):  # a quote still open
                if multiline:
                    continue
                buf = ""
                yield start, UsageError(
                    f"{name}, line {start}: a quoted cell opens on this line and is not "
                    "closed on it (a CSV record is one line: close the quote and write a "
                    'quote inside a cell as ""; for prompts of several lines use '
                    "--input-format csv-multiline, or JSONL with \\n)")
                continue
            try:  # any other irregularity reads as it always has (csv's lenient default)
                cells = next(csv.reader([buf]), [])
            except csv.Error as exc2:
                buf = ""
                yield start, UsageError(f"{name}, line {start}: bad CSV ({exc2})")
                continue
        buf = ""
        yield start, cells
    if buf:
        yield start, UsageError(
            f"{name}, line {start}: a quoted cell opens on this line and is never closed "
            "(it runs to the end of the file): close the quote")


def _record(line: int, fields: dict[str, Any], base: ImageOptions, name: str,
            from_csv: bool) -> Record:
    def bad(field: str, want: str) -> UsageError:
        got = repr(fields[field])
        return UsageError(f"{name}, line {line}: field '{field}' must be {want} "
                          f"(got {got if len(got) <= 60 else got[:57] + '...'})")

    changes: dict[str, Any] = {}
    rid: str | None = None
    for key, value in fields.items():
        row = options.by_record(key)
        if row is None and key not in RECORD_ONLY:
            return _raise(UsageError(f"{name}, line {line}: unknown field '{key}'"
                                     f"{_did_you_mean(key)}; known: "
                                     + ", ".join(sorted(known()))))
        if value is None:
            continue
        if key == "id":
            if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value):
                raise bad(key, "a string or an integer")
            rid = str(value)
        elif key == "prompt":
            if not isinstance(value, str):
                raise bad(key, "a string")
            changes[key] = value
        elif key == "fallback":  # ["b", "c"], or "b,c" (CSV)
            names = ([x.strip() for x in value.split(",") if x.strip()]
                     if isinstance(value, str) else value)
            if not isinstance(names, list) or not all(isinstance(x, str) and x for x in names):
                raise bad(key, "a list of provider names (or \"b,c\")")
            changes["fallback"] = tuple(names)
        elif row is not None:
            changes[row.name] = _value(row, key, value, base, from_csv, bad)
    prompt = changes.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise UsageError(f"{name}, line {line}: no prompt (every record needs a non-empty "
                         "'prompt')")
    opts = dataclasses.replace(base, **changes)
    if opts.mask is not None and not opts.image:
        where = "field 'mask'" if "mask" in changes else "--mask"
        raise UsageError(f"{name}, line {line}: {where} needs an image to repaint: add an "
                         "'image' field (or pass --image)")
    return Record(line, rid, opts, frozenset(k for k, v in fields.items() if v is not None),
                  number=line - 1 if from_csv else line)


def _value(row: options.Option, key: str, value: Any, base: ImageOptions, from_csv: bool,
           bad: Callable[[str, str], UsageError]) -> Any:
    """A record's VALUE for ROW's field KEY, typed as the options hold it."""
    if row.pairs:
        if from_csv:
            try:
                value = jsontext.loads(value)
            except ValueError:
                raise bad(key, "a JSON object") from None
        if not isinstance(value, dict):
            raise bad(key, "an object")
        return {**getattr(base, row.name), **value}  # over the --param items
    if row.many:
        paths = [value] if isinstance(value, str) else value
        if not isinstance(paths, list) or not paths or not all(
                isinstance(p, str) and p for p in paths):
            raise bad(key, "a path or a list of paths")
        return tuple(row.value(p) for p in paths)
    if from_csv and row.value is bool:
        low = value.strip().lower()
        value = {"true": True, "1": True, "yes": True, "false": False, "0": False,
                 "no": False}.get(low, value)
    elif from_csv and row.value in (int, float):
        value = _csv_number(value, row.value, bad(key, "an integer" if row.value is int
                                                   else "a number"))
    try:
        return options.typed(row, value)  # the check flags and --from files go through
    except options.Wrong as exc:
        raise bad(key, exc.want) from None


def _csv_number(text: str, kind: type, err: UsageError) -> Any:
    try:
        return kind(text.strip())  # "nan" and "inf" read as floats: typed() refuses them
    except ValueError:  # (an integer past 4300 digits too)
        raise err from None


def _raise(exc: UsageError) -> Record:
    raise exc


def _did_you_mean(field: str) -> str:
    """' (write 'negative_prompt')' for a flag's spelling or a near miss, else ''."""
    import difflib

    text = str(field)
    fields = known()
    guess = text.strip().lstrip("-").replace("-", "_").lower()
    if guess in fields:
        return f" (write '{guess}')"
    close = difflib.get_close_matches(guess, sorted(fields), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""
