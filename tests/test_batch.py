"""`imagegen batch`: input formats, overrides, journal/resume, shards, output forms,
exit codes — against the strict OpenAI fake on 127.0.0.1."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import KEY, run_cli
from tests.fakes.openai_fake import OpenAIFake


def prompts(fake: OpenAIFake) -> list[str]:
    return sorted(r.json()["prompt"] for r in fake.server.calls("/images/generations"))


def records(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.split("\n") if line]


def test_text_input_default_names_and_paths(fake: OpenAIFake) -> None:
    lines = ["# a comment", ""] + [f"prompt number {i}" for i in range(1, 11)]
    Path("p.txt").write_text("\n".join(lines) + "\n")
    r = run_cli(["batch", "p.txt", "-o", "out/"])
    assert r.code == 0, r.err
    assert prompts(fake) == sorted(f"prompt number {i}" for i in range(1, 11))
    # {id}: the line number, zero-padded to the width of the last one (line 12)
    assert sorted(r.lines()) == sorted(f"out/{i + 2:02d}-prompt-number-{i}-1.png"
                                       for i in range(1, 11))
    assert all(Path(p).exists() for p in r.lines())
    assert "10 jobs: 10 done" in r.err  # the summary line (stderr is not a terminal)


def test_jsonl_records_override_flags(fake: OpenAIFake) -> None:
    recs = [
        {"prompt": "a cat", "id": "cat"},
        {"prompt": "a dog", "model": "dall-e-3", "size": "1792x1024", "quality": "hd",
         "id": "dog"},
        {"prompt": "two birds", "n": 2, "params": {"user": "u1"}, "id": 7},
    ]
    Path("r.jsonl").write_text("\n".join(json.dumps(x) for x in recs) + "\n\n")
    r = run_cli(["batch", "r.jsonl", "-o", "o/", "-m", "dall-e-2", "--size", "256x256",
                 "--json"])
    assert r.code == 0, r.err
    bodies = {c.json()["prompt"]: c.json() for c in fake.server.calls("/images/generations")}
    assert bodies["a cat"]["model"] == "dall-e-2" and bodies["a cat"]["size"] == "256x256"
    assert bodies["a dog"]["model"] == "dall-e-3" and bodies["a dog"]["size"] == "1792x1024"
    assert bodies["a dog"]["quality"] == "hd"
    assert bodies["two birds"]["n"] == 2 and bodies["two birds"]["user"] == "u1"
    got = records(r.stdout)
    assert sorted((x["id"], x["index"]) for x in got) == [("7", 1), ("7", 2), ("cat", 1),
                                                          ("dog", 1)]
    assert {Path(str(x["path"])).name for x in got} >= {"cat-a-cat-1.png", "7-two-birds-2.png"}


def test_prompt_lines_end_at_newline_only(fake: OpenAIFake) -> None:
    # Issue 19, item 22: str.splitlines() also ends a line at U+2028, U+2029, NEL, form
    # feed and a lone CR: one prompt became four paid jobs, and a JSONL line holding a
    # raw U+2028 (legal JSON) was cut into two invalid halves.
    odd = "a cat\u2028in a hat\x85with\x0ca bow\rand\u2029more"
    Path("p.txt").write_bytes(f"{odd}\r\nsecond\n".encode())
    r = run_cli(["batch", "p.txt", "-o", "t/"])
    assert r.code == 0, r.err
    assert prompts(fake) == sorted([odd, "second"])
    Path("r.jsonl").write_bytes((json.dumps({"prompt": odd, "id": "odd"}, ensure_ascii=False)
                                 + "\r\n" + json.dumps({"prompt": "b", "id": "b"}) + "\n"
                                 ).encode())
    r = run_cli(["batch", "r.jsonl", "-o", "j/", "--json"])
    assert r.code == 0, r.err
    assert prompts(fake).count(odd) == 2
    Path("m.ndjson").write_text(r.stdout, encoding="utf-8")  # a raw U+2028 in a record
    r = run_cli(["batch", "--merge", "m.ndjson"])
    assert r.code == 0, r.err
    assert sorted(x["id"] for x in records(r.stdout)) == ["b", "odd"]


def test_csv_records_with_quotes_and_empty_cells(fake: OpenAIFake) -> None:
    Path("r.csv").write_text('prompt,model,n,id\n"a fox, running",,2,fox\n'
                             'an owl,dall-e-3,,owl\n')
    r = run_cli(["batch", "r.csv", "-o", "c/"])
    assert r.code == 0, r.err
    bodies = {c.json()["prompt"]: c.json() for c in fake.server.calls("/images/generations")}
    assert bodies["a fox, running"]["n"] == 2
    from imagegen_cli.settings import config

    assert bodies["a fox, running"]["model"] == config.load().providers["openai"].model
    assert bodies["an owl"]["model"] == "dall-e-3"
    assert len(r.lines()) == 3


@pytest.mark.parametrize("name, text, needle", [
    ("r.jsonl", '{"prompt": "ok"}\n{"prompt": "x", "colour": "red"}\n',
     "r.jsonl, line 2: unknown field 'colour'"),
    ("r.jsonl", '{"prompt": "ok"}\n{"prompt": "x", "n": "two"}\n',
     "r.jsonl, line 2: field 'n' must be an integer"),
    ("r.jsonl", '{"prompt": "ok"}\n\n{"model": "dall-e-2"}\n', "r.jsonl, line 3: no prompt"),
    ("r.jsonl", '{"prompt": "ok"}\n{"prompt": \n', "r.jsonl, line 2: not valid JSON"),
    ("r.jsonl", '["a list"]\n', "r.jsonl, line 1: a JSON list, not an object"),
    ("r.csv", "prompt,colour\nx,red\n", "r.csv, line 1: unknown column 'colour'"),
    ("r.csv", "model\ndall-e-2\n", "r.csv, line 1: no 'prompt' column"),
    ("r.csv", "prompt,seed\nx,1\ny,abc\n", "r.csv, line 3: field 'seed' must be an integer"),
    ("r.jsonl", '{"prompt": "a", "id": "x"}\n{"prompt": "b", "id": "x"}\n',
     "r.jsonl, line 2: id 'x' is already used on line 1"),
    ("r.jsonl", '{"prompt": "ok"}\n{"prompt": "x", "size": "100x100"}\n',
     "r.jsonl, line 2, field 'size': --size 100x100 is not accepted"),
])
def test_bad_record_fails_whole_batch_before_sending(fake: OpenAIFake, name: str, text: str,
                                                    needle: str) -> None:
    Path(name).write_text(text)
    r = run_cli(["batch", name, "-o", "o/"])
    assert r.code == 2, r.err
    assert needle in r.err and "Traceback" not in r.err
    assert r.stdout == "" and fake.server.requests == []


def test_skip_invalid_reports_and_runs_the_rest(fake: OpenAIFake) -> None:
    Path("r.jsonl").write_text('{"prompt": "good one"}\n{"prompt": 5}\n{"prompt": "also"}\n')
    r = run_cli(["batch", "r.jsonl", "-o", "o/", "--skip-invalid"])
    assert r.code == 0, r.err
    assert "r.jsonl, line 2: field 'prompt' must be a string" in r.err
    assert prompts(fake) == ["also", "good one"]
    Path("bad.jsonl").write_text('{"prompt": 5}\n{"promt": "x"}\n')
    r = run_cli(["batch", "bad.jsonl", "-o", "o/", "--skip-invalid"])
    assert r.code == 2 and "no valid record (2 skipped)" in r.err


def test_missing_file_and_stdin(fake: OpenAIFake) -> None:
    r = run_cli(["batch", "nope.txt"])
    assert r.code == 2 and "nope.txt does not exist" in r.err
    r = run_cli(["batch", "-", "-o", "s/", "--json"], stdin='{"prompt": "from stdin"}\n')
    assert r.code == 0, r.err
    assert prompts(fake) == ["from stdin"]
    assert records(r.stdout)[0]["line"] == 1


def test_rerun_sends_nothing_and_prints_skipped_records(fake: OpenAIFake) -> None:
    Path("p.txt").write_text("one\ntwo\nthree\n")
    r1 = run_cli(["batch", "p.txt", "-o", "o/", "--json", "-n", "2"])
    assert r1.code == 0, r1.err
    first = records(r1.stdout)
    assert len(first) == 6 and not any(x["skipped"] for x in first)
    sent = len(fake.server.requests)
    r2 = run_cli(["batch", "p.txt", "-o", "o/", "--json", "-n", "2"])
    assert r2.code == 0, r2.err
    assert len(fake.server.requests) == sent  # zero requests
    again = records(r2.stdout)
    assert all(x["skipped"] for x in again)
    strip = [{k: v for k, v in x.items() if k != "skipped"} for x in first]
    assert sorted(strip, key=lambda x: str(x["path"])) == sorted(
        ({k: v for k, v in x.items() if k != "skipped"} for x in again),
        key=lambda x: str(x["path"]))
    # a changed record is a new job; a missing file is redone; --force redoes all
    Path("p.txt").write_text("one\ntwo, changed\nthree\n")
    Path(str(next(x for x in first if x["id"] == "3")["path"])).unlink()
    r3 = run_cli(["batch", "p.txt", "-o", "o/", "--json", "-n", "2"])
    assert r3.code == 0, r3.err
    new = [c.json()["prompt"] for c in fake.server.calls("/images/generations")[sent:]]
    assert sorted(new) == ["three", "two, changed"]
    # only the deleted image of "three" is made again: its other one is kept
    assert {c.json()["prompt"]: c.json()["n"] for c in
            fake.server.calls("/images/generations")[sent:]} == {"three": 1, "two, changed": 2}
    assert sorted(bool(x["skipped"]) for x in records(r3.stdout)) == [False] * 3 + [True] * 3
    sent = len(fake.server.requests)
    r4 = run_cli(["batch", "p.txt", "-o", "o/", "--force", "-q"])
    assert r4.code == 0 and len(fake.server.requests) == sent + 3


def test_tampered_file_is_redone(fake: OpenAIFake) -> None:
    Path("p.txt").write_text("one\n")
    r = run_cli(["batch", "p.txt", "-o", "o/"])
    path = Path(r.lines()[0])
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    r2 = run_cli(["batch", "p.txt", "-o", "o/"])
    assert r2.code == 0 and len(fake.server.requests) == 2
    assert r2.lines() != r.lines()  # never overwritten: the new image takes a new name


def test_ndjson_failures_and_exit_8(fake: OpenAIFake) -> None:
    Path("p.txt").write_text("fine\nmoderation_blocked here\nalso fine\n")
    r = run_cli(["batch", "p.txt", "-o", "o/", "--json", "--summary", "sum.json"])
    assert r.code == 8, r.err
    recs = records(r.stdout)
    fails = [x for x in recs if "error" in x]
    assert len(fails) == 1 and fails[0]["line"] == 2 and fails[0]["exit_code"] == 5
    images = [x for x in recs if "path" in x]
    assert len(images) == 2
    # Every image record times its call, whatever the provider reports itself.
    assert all(0 < x["timings"]["request_s"] < 30 for x in images), images
    summary = json.loads(Path("sum.json").read_text())
    assert summary["done"] == 2 and summary["failed"] == 1 and summary["jobs"] == 3
    assert summary["failures"][0]["exit_code"] == 5
    assert "1 of 3 jobs failed" in r.err


def test_all_failing_gives_the_failure_code_and_fail_fast_stops(fake: OpenAIFake) -> None:
    Path("p.txt").write_text("\n".join(f"moderation_blocked {i}" for i in range(6)) + "\n")
    r = run_cli(["batch", "p.txt", "-o", "o/", "-j", "1"])
    assert r.code == 5 and len(fake.server.requests) == 6
    r = run_cli(["batch", "p.txt", "-o", "o/", "-j", "1", "--fail-fast"])
    assert r.code == 5 and len(fake.server.requests) == 7
    assert "5 not run" in r.err
    r = run_cli(["batch", "p.txt", "-o", "o/", "-j", "1", "--max-failures", "2"])
    assert r.code == 5 and len(fake.server.requests) == 9


def test_wrong_key_ends_the_batch_at_once(fake: OpenAIFake,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-000")
    Path("p.txt").write_text("\n".join(f"p {i}" for i in range(8)) + "\n")
    r = run_cli(["batch", "p.txt", "-o", "o/", "-j", "1"])
    assert r.code == 4 and len(fake.server.requests) == 1
    assert "sk-wrong-key-000" not in r.err


def test_dry_run_json_lines_and_no_requests(fake: OpenAIFake) -> None:
    Path("p.txt").write_text("one\ntwo\n")
    r = run_cli(["batch", "p.txt", "--dry-run", "-m", "dall-e-3", "-n", "2"])
    assert r.code == 0, r.err
    recs = records(r.stdout)
    assert [x["line"] for x in recs] == [1, 2]
    assert all(len(x["requests"]) == 2 for x in recs)  # type: ignore[arg-type]
    assert KEY not in r.stdout and "Bearer ***" in r.stdout
    assert fake.server.requests == []


def test_shards_partition_the_jobs_exactly(fake: OpenAIFake,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    Path("p.txt").write_text("\n".join(f"prompt {i}" for i in range(40)) + "\n")

    def keys(*args: str) -> list[str]:
        r = run_cli(["batch", "p.txt", "--dry-run", *args])
        assert r.code == 0, r.err
        return [str(x["key"]) for x in records(r.stdout)]

    every = keys()
    parts = [keys("--shard", f"{i}/3") for i in (1, 2, 3)]
    assert sorted(k for p in parts for k in p) == sorted(every)
    assert all(parts) and len(set(every)) == 40
    assert keys("--shard", "2/3") == parts[1]  # stable across runs
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    monkeypatch.setenv("IMAGEGEN_SHARD_COUNT", "3")
    r = run_cli(["batch", "p.txt", "--dry-run"])
    assert [x["key"] for x in records(r.stdout)] == parts[1]
    assert "shard 2/3 (from JOB_COMPLETION_INDEX" in r.err
    monkeypatch.delenv("IMAGEGEN_SHARD_COUNT")
    r = run_cli(["batch", "p.txt", "--dry-run"])
    assert r.code == 2 and "--shard-count" in r.err
    monkeypatch.delenv("JOB_COMPLETION_INDEX")
    for env in ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "3",
                 "SLURM_ARRAY_TASK_MIN": "5"}, {"CI_NODE_INDEX": "3", "CI_NODE_TOTAL": "3"}):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        r = run_cli(["batch", "p.txt", "--dry-run"])
        assert [x["key"] for x in records(r.stdout)] == parts[2], r.err
        for k in env:
            monkeypatch.delenv(k)
    r = run_cli(["batch", "p.txt", "--shard", "4/3"])
    assert r.code == 2 and "--shard '4/3'" in r.err


def test_merge_joins_shard_manifests(fake: OpenAIFake) -> None:
    Path("p.txt").write_text("a\nb\nmoderation_blocked c\nd\n")
    for i in (1, 2):
        r = run_cli(["batch", "p.txt", "-o", "o/", "--json", "--shard", f"{i}/2",
                     "--state", f"s{i}.jsonl"])
        Path(f"m{i}.ndjson").write_text(r.stdout)
    r = run_cli(["batch", "--merge", "m1.ndjson", "m2.ndjson"])
    assert r.code == 0, r.err
    merged = records(r.stdout)
    assert [x["line"] for x in merged] == [1, 2, 3, 4]
    assert "error" in merged[2]
    Path("bad.ndjson").write_text("not json\n")
    r = run_cli(["batch", "--merge", "bad.ndjson"])
    assert r.code == 2 and "bad.ndjson, line 1" in r.err


def test_merge_keeps_the_failure_of_a_half_failed_job() -> None:
    # Issue 19, item 23: a job that wrote image 1 of 2 and then failed looked whole.
    def image(rid: str, index: int, skipped: bool = False) -> str:
        return json.dumps({"id": rid, "line": 1 if rid == "a" else 2, "index": index,
                           "path": f"o/{rid}-{index}.png", "skipped": skipped})

    fail = json.dumps({"id": "a", "line": 1, "error": "refused", "exit_code": 5})
    Path("m1.ndjson").write_text("\n".join([image("a", 1), fail, image("b", 1)]) + "\n")
    r = run_cli(["batch", "--merge", "m1.ndjson"])
    assert r.code == 0, r.err
    got = records(r.stdout)
    assert [(x["id"], x.get("index"), "error" in x) for x in got] == [
        ("a", 1, False), ("a", None, True), ("b", 1, False)]
    # A later run that failed again still fails; one that made the rest is whole.
    Path("m2.ndjson").write_text("\n".join([image("a", 1, True), fail]) + "\n")
    Path("m3.ndjson").write_text("\n".join([image("a", 1, True), image("a", 2)]) + "\n")
    got = records(run_cli(["batch", "--merge", "m1.ndjson", "m2.ndjson"]).stdout)
    assert sum("error" in x for x in got) == 1
    got = records(run_cli(["batch", "--merge", "m1.ndjson", "m2.ndjson", "m3.ndjson"]).stdout)
    assert [(x["id"], x.get("index")) for x in got] == [("a", 1), ("a", 2), ("b", 1)]
    assert not any("error" in x for x in got)


def test_batch_inpaint_records(fake: OpenAIFake) -> None:
    from PIL import Image

    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save("hole.png")
    Path("r.jsonl").write_text(json.dumps({"prompt": "fill", "image": "hole.png"}) + "\n"
                               + json.dumps({"prompt": "plain"}) + "\n")
    r = run_cli(["batch", "r.jsonl", "-o", "o/"])
    assert r.code == 0, r.err
    assert len(fake.server.calls("/images/edits")) == 1
    assert len(fake.server.calls("/images/generations")) == 1


def test_stale_temp_files_of_dead_runs_are_removed(fake: OpenAIFake) -> None:
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from imagegen_cli.files.atomic import _HOST

    Path("o/gpt").mkdir(parents=True)
    stale = Path(f"o/gpt/.1-a-1.png.{dead.pid}@{_HOST}.abc123.part")
    alive = Path(f"o/gpt/.1-a-1.png.{os.getppid()}@{_HOST}.xyz789.part")  # a live run's
    stale.write_bytes(b"half")
    alive.write_bytes(b"half")
    Path("p.txt").write_text("a\n")
    r = run_cli(["batch", "p.txt", "-o", "o/gpt/{id}-{prompt}-{index}.{ext}"])
    assert r.code == 0, r.err
    assert not stale.exists() and alive.exists()


def test_temp_files_of_another_machine_on_a_shared_volume_are_left_alone(
        tmp_path: Path) -> None:
    # Shards on a shared volume (Kubernetes, Slurm on NFS): another machine's pid means
    # nothing here. Its temp file is mid-write unless it is an hour old.
    import subprocess
    import sys

    from imagegen_cli.files import atomic

    tmp_path = tmp_path / "shared"
    tmp_path.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = atomic._HOST
    mine_dead = tmp_path / f".a.png.{dead.pid}@{me}.r1.part"
    mine_alive = tmp_path / f".a.png.{os.getppid()}@{me}.r2.part"
    theirs = tmp_path / f".a.png.{dead.pid}@other-node-7.r3.part"
    theirs_old = tmp_path / f".a.png.{dead.pid}@other-node-7.r4.part"
    for p in (mine_dead, mine_alive, theirs, theirs_old):
        p.write_bytes(b"half")
    hour_ago = time.time() - 2 * atomic.FOREIGN_PART_AGE
    os.utime(theirs_old, (hour_ago, hour_ago))
    assert atomic.clean_stale_parts(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine_alive.name,
                                                                 theirs.name])
    # What write_atomic has mid-write carries this pid and host.
    seen: list[str] = []
    real_link = os.link

    def link(src: str, dst: str) -> None:
        seen.append(os.path.basename(src))
        real_link(src, dst)

    import pytest

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(atomic.os, "link", link)
        out = atomic.write_atomic(tmp_path / "b.png", b"x")
    assert out.read_bytes() == b"x"
    assert seen and seen[0].startswith(f".b.png.{os.getpid()}@{me}.")
    assert atomic._PART.match(seen[0])


def test_one_folder_spelled_any_way_is_one_output(fake: OpenAIFake) -> None:
    """`out/`, `./out/`, its absolute path, a symlinked parent: the same jobs, already
    paid for and written, never sent again and never written as -1 copies."""
    Path("p.txt").write_text("a fox\na cat\n")
    assert run_cli(["batch", "p.txt", "-o", "out/", "-q"]).code == 0
    os.symlink(Path.cwd(), "link")
    for spelling in ["./out/", f"{Path('out').resolve()}/", "link/out/", "out", "link/./out"]:
        r = run_cli(["batch", "p.txt", "-o", spelling, "--json"])
        assert r.code == 0, (spelling, r.err)
        assert all(json.loads(line)["skipped"] for line in r.lines()), spelling
    assert len(fake.server.calls("/images/generations")) == 2
    assert sorted(p.name for p in Path("out").iterdir() if p.suffix == ".png") == [
        "1-a-fox-1.png", "2-a-cat-1.png"]


def test_a_journal_keyed_by_an_older_imagegen_still_resumes(fake: OpenAIFake) -> None:
    """Keys changed with the folder's spelling (KEY_VERSION 2): a journal an older release
    wrote (version 1 keys) still names its jobs finished."""
    from imagegen_cli.engine import records, run
    from imagegen_cli.engine.options import ImageOptions
    from imagegen_cli.files.naming import BATCH_TEMPLATE

    Path("p.txt").write_text("a fox\na cat\n")
    assert run_cli(["batch", "p.txt", "-o", "out/", "-q"]).code == 0
    recs = records.parse("a fox\na cat\n", "p.txt", "text", ImageOptions(output="out/"))
    ctx = run.session(run.Frontend(), dict(os.environ), default_template=BATCH_TEMPLATE)
    plan = run.plan_batch(recs, ctx, source="p.txt", batch=run.Batch(output="out/"))
    old = {job.key: job.legacy_key for job in plan.jobs}
    assert all(k != v and v for k, v in old.items())
    journal = Path("out/.imagegen-batch.jsonl")
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    journal.write_text("".join(json.dumps({**rec, "key": old[rec["key"]]}) + "\n"
                               for rec in lines))
    r = run_cli(["batch", "p.txt", "-o", "out/", "--json"])
    assert r.code == 0, r.err
    assert all(json.loads(line)["skipped"] for line in r.lines())
    assert len(fake.server.calls("/images/generations")) == 2


def test_a_journal_line_written_in_part_is_no_claim(fake: OpenAIFake,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk that takes half a journal line: the image it names is not placed (the
    run says so, exit 7 or 8), and the next run makes it once, with no -1 copy."""
    real = os.write

    def half(fd: int, data: bytes) -> int:
        if data.startswith(b'{"key"'):  # a journal claim
            return real(fd, data[: len(data) // 2])
        return real(fd, data)

    Path("p.txt").write_text("a fox\n")
    monkeypatch.setattr(os, "write", half)
    r = run_cli(["batch", "p.txt", "-o", "out/"])
    monkeypatch.setattr(os, "write", real)
    assert r.code in (7, 8) and "journal" in r.err and "disk is full" in r.err, r.err
    assert not list(Path("out").glob("*.png"))
    r = run_cli(["batch", "p.txt", "-o", "out/"])
    assert r.code == 0, r.err
    assert [p.name for p in Path("out").glob("*.png")] == ["1-a-fox-1.png"]
