"""A batch's input is read as a stream: jobs past the first WINDOW records are read,
settled and keyed as the run goes (a million-line file starts at once, in flat
memory), with the same keys, ids and names as when the file was read whole."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from imagegen_cli.engine import records, stream
from imagegen_cli.engine.jobs import Seen, assign_keys
from tests.conftest import run_cli
from tests.fakes.openai_fake import OpenAIFake


def prompts(fake: OpenAIFake) -> list[str]:
    return [r.json()["prompt"] for r in fake.server.calls("/images/generations")]


def journal_keys() -> set[str]:
    return {json.loads(ln)["key"] for ln in
            Path("out/.imagegen-batch.jsonl").read_text().splitlines()}


@pytest.fixture
def small_window(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(stream, "WINDOW", 4)
    return 4


def test_a_batch_longer_than_the_window_runs_whole_with_the_same_keys_and_names(
        fake: OpenAIFake, small_window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Duplicates on both sides of the window: identical records stay distinct jobs.
    lines = [f"a fox {i % 7}" for i in range(23)]
    Path("p.txt").write_text("\n".join(lines) + "\n")
    r = run_cli(["batch", "p.txt", "-o", "out/", "-j", "3"])
    assert r.code == 0, r.err
    assert sorted(prompts(fake)) == sorted(lines)
    names = sorted(p.name for p in Path("out").glob("*.png"))
    # Ids zero-filled to the line count, as when the file was read whole.
    assert names[0].startswith("01-") and names[-1].startswith("23-")
    streamed = journal_keys()
    assert len(streamed) == 23
    # Read whole (a window past the end), the keys are the same: a re-run with either
    # resumes the other's journal and sends nothing.
    monkeypatch.setattr(stream, "WINDOW", 10_000)
    r = run_cli(["batch", "p.txt", "-o", "out/"])
    assert r.code == 0, r.err
    assert len(prompts(fake)) == 23
    monkeypatch.setattr(stream, "WINDOW", 4)
    r = run_cli(["batch", "p.txt", "-o", "out/"])
    assert r.code == 0 and len(prompts(fake)) == 23, r.err


def test_a_bad_record_past_the_window_stops_the_batch_there(fake: OpenAIFake,
                                                            small_window: int) -> None:
    rows = [{"prompt": f"p{i}"} for i in range(1, 13)]
    rows[8] = {"prompt": "p9", "size": "100x100"}  # line 9: past the window of 4
    Path("r.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    r = run_cli(["batch", "r.jsonl", "-o", "out/", "-j", "2"])
    assert r.code == 2, r.err
    assert "r.jsonl, line 9, field 'size'" in r.err and "Traceback" not in r.err
    sent = prompts(fake)
    assert sent and set(sent) <= {f"p{i}" for i in range(1, 9)}  # nothing from 9 on
    assert len(journal_keys()) == len(sent)  # every answer paid for was written
    rows[8] = {"prompt": "p9"}
    Path("r.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    r = run_cli(["batch", "r.jsonl", "-o", "out/", "-j", "2"])
    assert r.code == 0, r.err
    assert sorted(prompts(fake)) == sorted(x["prompt"] for x in rows)  # none twice


def test_a_bad_record_within_the_window_sends_nothing(fake: OpenAIFake,
                                                      small_window: int) -> None:
    Path("r.jsonl").write_text('{"prompt": "a"}\n{"prompt": "b", "size": "1x1"}\n'
                               + "".join(f'{{"prompt": "c{i}"}}\n' for i in range(9)))
    r = run_cli(["batch", "r.jsonl", "-o", "out/"])
    assert r.code == 2 and "line 2, field 'size'" in r.err
    assert prompts(fake) == []


def test_skip_invalid_past_the_window_leaves_them_out_and_counts_them(
        fake: OpenAIFake, small_window: int) -> None:
    rows = [json.dumps({"prompt": f"p{i}"}) for i in range(10)]
    rows[7] = '{"prompt": 7}'
    Path("r.jsonl").write_text("\n".join(rows) + "\n")
    r = run_cli(["batch", "r.jsonl", "-o", "out/", "--skip-invalid",
                 "--summary", "s.json"])
    assert r.code == 0, r.err
    assert len(prompts(fake)) == 9
    summary = json.loads(Path("s.json").read_text())
    assert len(summary["invalid"]) == 1 and "line 8" in summary["invalid"][0]


def test_dry_run_of_a_long_batch_prints_every_job(fake: OpenAIFake,
                                                  small_window: int) -> None:
    Path("p.txt").write_text("".join(f"cat {i}\n" for i in range(11)))
    r = run_cli(["batch", "p.txt", "-o", "out/", "--dry-run"])
    assert r.code == 0, r.err
    assert [json.loads(x)["id"] for x in r.lines()] == [f"{i:02d}" for i in range(1, 12)]
    assert prompts(fake) == []


def test_stdin_is_read_as_a_stream(fake: OpenAIFake, small_window: int) -> None:
    r = run_cli(["batch", "-", "-o", "out/"], stdin="".join(f"dog {i}\n" for i in range(9)))
    assert r.code == 0, r.err
    assert len(prompts(fake)) == 9


def test_a_byte_that_is_not_utf8_names_its_line(fake: OpenAIFake) -> None:
    Path("p.txt").write_bytes(b"a cat\nb\xffad\n")
    r = run_cli(["batch", "p.txt", "-o", "out/"])
    assert r.code == 2 and "not UTF-8" in r.err and "line 2" in r.err
    assert prompts(fake) == []


# ---------------------------------------------------------------- keys, compactly

def old_keys(fps: list[str], explicit: set[int], ids: list[str]) -> list[str]:
    """The occurrence-numbered keys as imagegen made them with a dict of every base."""
    seen: dict[str, int] = {}
    out = []
    for pos, base in enumerate(fps):
        if pos in explicit:
            base = hashlib.sha256(f"{base}/id={ids[pos]}".encode()).hexdigest()
        k = seen.get(base, 0)
        seen[base] = k + 1
        out.append(base[:32] if k == 0 else hashlib.sha256(f"{base}#{k}".encode())
                   .hexdigest()[:32])
    return out


@pytest.mark.parametrize("seed", range(5))
def test_seen_counts_like_a_dict_across_merges(seed: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Seen, "MERGE", 8)
    rnd = random.Random(seed)
    seen, ref = Seen(), {}
    for _ in range(2000):
        x = rnd.randrange(0, 300) * 0x9E3779B97F4A7C15 % 2**64
        assert seen.count(x) == ref.get(x, 0)
        ref[x] = ref.get(x, 0) + 1


def test_keys_are_those_of_the_whole_list(fake: OpenAIFake,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """assign_keys (one KeyMaker over the list) keys as the old dict-of-bases did."""
    from imagegen_cli.engine import run
    from imagegen_cli.engine.options import ImageOptions

    text = "".join(json.dumps({"prompt": f"x{i % 5}", **({"id": f"r{i}"} if i % 4 == 0
                                                         else {})}) + "\n"
                   for i in range(40))
    recs = records.parse(text, "r.jsonl", "jsonl", ImageOptions(output="out/"))
    ctx = run.session(run.Frontend(), dict(__import__("os").environ))
    plan = run.plan_batch(recs, ctx, source="r.jsonl", batch=run.Batch(output="out/"))
    jobs = plan.jobs
    fps = [j.fingerprint() for j in jobs]
    explicit = {i for i, rec in enumerate(recs) if rec.id is not None}
    assert [j.key for j in jobs] == old_keys(fps, explicit, [j.id for j in jobs])
    again = [j for j in jobs]
    for j in again:
        j.key = ""
    assign_keys(again, explicit)
    assert [j.key for j in again] == old_keys(fps, explicit, [j.id for j in jobs])
