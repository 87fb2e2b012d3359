"""Issue 19, items 20 and 21: hostile numbers and shapes in every input end in one
clear line and the documented exit code (2 usage or input, 3 config), never exit 1
"internal error", and nothing is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_config
from tests.fakes.openai_fake import OpenAIFake

DEEP = "[" * 100_000 + "]" * 100_000
DIGITS = "9" * 5000


def one_clear_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    assert "internal error" not in err and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("args, needle", [
    (["--timeout", "nan"], "--timeout nan: pass a finite number"),
    (["--timeout", "inf"], "--timeout inf: pass a finite number"),
    (["--guidance", "nan"], "--guidance nan: pass a finite number"),
    (["--guidance", "inf"], "--guidance inf: pass a finite number"),
    (["--seed", "9" * 4000], "--seed 9999"),
])
def test_hostile_flags_exit_2(fake: OpenAIFake, args: list[str], needle: str) -> None:
    r = run_cli(["generate", "x", "--dry-run", *args])
    assert r.code == 2, r.err
    assert needle in one_clear_line(r.err)


@pytest.mark.parametrize("field, text, needle", [
    ("timeout", "NaN", "NaN is no JSON number"),
    ("guidance", "Infinity", "Infinity is no JSON number"),
    ("guidance", "1e400", "the number 1e400 is out of range"),
    ("params", DEEP, "nested more than"),
    ("seed", DIGITS, "more than 4300 digits"),
    ("seed", "9" * 4000, "field 'seed' must be an integer of at most 20 digits"),
    ("prompt", '["a", "b"]', "field 'prompt' must be a string"),
])
def test_hostile_jsonl_records_exit_2(fake: OpenAIFake, field: str, text: str,
                                      needle: str) -> None:
    Path("r.jsonl").write_text(f'{{"prompt": "ok"}}\n{{"prompt": "a", "{field}": {text}}}\n')
    r = run_cli(["batch", "r.jsonl", "-o", "o/"])
    assert r.code == 2, r.err
    line = one_clear_line(r.err)
    assert "r.jsonl, line 2" in line and needle in line, line
    assert fake.server.requests == []


def test_hostile_csv_numbers_exit_2(fake: OpenAIFake) -> None:
    Path("r.csv").write_text("prompt,timeout\na,nan\n")
    r = run_cli(["batch", "r.csv", "-o", "o/"])
    assert r.code == 2
    assert "r.csv, line 2: field 'timeout' must be a finite number" in one_clear_line(r.err)


@pytest.mark.parametrize("fields, needle", [
    ({"guidance": "NaN"}, "field 'guidance' must be a number (got 'NaN')"),
    ({"steps": "20"}, "field 'steps' must be an integer"),
    ({"prompt": ["a", "b"]}, "field 'prompt' must be a string"),
    ({"provider": ["openai"]}, "field 'provider' must be a string"),
    ({"seed": 10**30}, "field 'seed' must be an integer of at most 20 digits"),
])
def test_from_sidecar_values_are_type_checked(fake: OpenAIFake, fields: dict[str, object],
                                              needle: str) -> None:
    # Item 20: a sidecar's values go through the check flags and records go through.
    Path("s.json").write_text(json.dumps({"prompt": "a fox", **fields}))
    r = run_cli(["generate", "--from", "s.json", "-o", "x.png"])
    assert r.code == 2, r.err
    line = one_clear_line(r.err)
    assert "--from s.json" in line and needle in line, line
    assert fake.server.requests == []
    Path("s.json").write_text('{"prompt": "a fox", "guidance": Infinity}')
    r = run_cli(["generate", "--from", "s.json", "-o", "x.png"])
    assert r.code == 2 and "--from s.json: not valid JSON" in one_clear_line(r.err)


@pytest.mark.parametrize("index", ['"x"', "[1]", "1e400", "true", "-1", DIGITS])
def test_merge_refuses_a_bad_index(index: str) -> None:
    Path("m.ndjson").write_text('{"id": "a", "line": 1, "index": 1}\n'
                                f'{{"id": "a", "line": 1, "index": {index}}}\n')
    r = run_cli(["batch", "--merge", "m.ndjson"])
    assert r.code == 2, r.err
    assert "m.ndjson, line 2: not an imagegen NDJSON record" in one_clear_line(r.err)


def test_a_hostile_journal_line_is_redone_not_a_crash(fake: OpenAIFake) -> None:
    Path("p.txt").write_text("a\n")
    assert run_cli(["batch", "p.txt", "-o", "o/"]).code == 0
    journal = Path("o/.imagegen-batch.jsonl")
    rec = json.loads(journal.read_text().splitlines()[0])
    hostile = [json.dumps(rec).replace('"index": 1', f'"index": {v}')
               for v in ("Infinity", "NaN", '"x"', "[1]", "1e400", DIGITS)]
    journal.write_text("\n".join(hostile) + "\n" + f'{{"key": {DEEP}}}\n')
    r = run_cli(["batch", "p.txt", "-o", "o/"])
    assert r.code == 0, r.err
    assert len(fake.server.calls("/images/generations")) == 2  # redone: no entry holds


@pytest.mark.parametrize("entry, table", [
    ('"gpt-image-1" = 1e308', "prices"),
    ('"gpt-image-1" = { per_image = 1e308 }', "prices"),
    ('"gpt-image-1" = nan', "prices"),
    ("timeout = nan", "defaults"),
    ("guidance = inf", "defaults"),
    ("steps = 99999999999999999999999", "defaults"),
])
def test_hostile_config_numbers_exit_3(fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path, entry: str, table: str) -> None:
    write_config(f'[providers.openai]\nbase_url = "{fake.url}"\n'
                 f'[providers.openai.{table}]\n{entry}\n', monkeypatch, tmp_path)
    r = run_cli(["generate", "x", "-m", "gpt-image-1", "-n", "10", "--dry-run"])
    assert r.code == 3, r.err
    assert "Bad config file" in one_clear_line(r.err)


@pytest.mark.parametrize("flag", [["--rpm", "nan"], ["--rpm", "inf"]])
def test_hostile_batch_flags_exit_2(fake: OpenAIFake, flag: list[str]) -> None:
    Path("p.txt").write_text("a\n")
    r = run_cli(["batch", "p.txt", "--dry-run", *flag])
    assert r.code == 2 and "--rpm" in one_clear_line(r.err)


def test_info_on_an_endless_file_exit_2() -> None:
    r = run_cli(["info", "/dev/zero"])
    assert r.code == 2
    assert "over 64 MB" in one_clear_line(r.err)


def test_a_huge_n_is_planned_lazily(fake: OpenAIFake) -> None:
    # Item 18: -n 100000000000 listed ten billion requests (and their prices) before a
    # dry run printed anything, or a real run sent anything.
    import time

    from imagegen_cli.engine.jobs import Spans

    t0 = time.perf_counter()
    r = run_cli(["generate", "x", "-n", "100000000000", "-m", "gpt-image-1", "--dry-run"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    assert len(report["requests"]) == 100 and report["requests_total"] == 10**10
    assert report["estimated_cost"]["requests"] == 10**10
    assert len(report["estimated_cost"]["per_request"]) == 100
    assert "showing the first 100 of 10,000,000,000 requests" in r.err
    r = run_cli(["generate", "x", "-n", "100000000000", "-m", "gpt-image-1",
                 "--max-cost", "5"])
    assert r.code == 2 and "--max-cost" in r.err, r.err
    Path("p.txt").write_text("a\n")
    r = run_cli(["batch", "p.txt", "-n", "100000000000", "--dry-run"])
    assert r.code == 0 and "(job 1): showing the first 100" in r.err, r.err
    assert time.perf_counter() - t0 < 20
    assert fake.server.requests == []
    # A real run starts sending at once; stopped (--fail-fast), the ten billion calls
    # not taken yet are cancelled at once, not one by one.
    Path("p.txt").write_text("moderation_blocked x\n")
    r = run_cli(["batch", "p.txt", "-o", "o/", "-n", "100000000000", "-m", "gpt-image-1",
                 "--fail-fast", "-j", "2"])
    assert r.code == 5, r.err
    assert 1 <= len(fake.server.calls("/images/generations")) <= 2
    assert time.perf_counter() - t0 < 30
    spans = Spans(10**11, {1, 5}, 10)
    assert len(spans) == 1 + -(-(10**11 - 5) // 10)  # 2..4, then 6..10**11
    it = iter(spans)
    assert [next(it) for _ in range(3)] == [(1, 3), (5, 10), (15, 10)]
