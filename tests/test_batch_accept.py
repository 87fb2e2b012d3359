"""`imagegen batch` as a user meets it: what the acceptance pass over issue 12
found short, each against the strict OpenAI fake on 127.0.0.1."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.fakes.openai_fake import OpenAIFake


def pngs(folder: str) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if p.suffix == ".png")


def generations(fake: OpenAIFake) -> list[dict[str, object]]:
    return [c.json() for c in fake.server.calls("/images/generations")]


def test_kill_9_inside_a_many_image_job_resumes_without_duplicates(slow: OpenAIFake) -> None:
    # dall-e-3 makes one image per call: a job of 4 images is 4 calls, and a kill
    # lands between them. The re-run asks only for the images the job still lacks.
    recs = [{"prompt": f"scene {i}", "n": 4, "model": "dall-e-3"} for i in range(4)]
    Path("r.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "imagegen_cli", "batch", "r.jsonl", "-o",
                             "o/", "-j", "3", "-q"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if Path("o").exists() and len(pngs("o")) >= 5:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    made = len(pngs("o"))
    assert 0 < made < 16, "the kill must land mid-batch"
    assert made % 4, "the kill must land inside a job"
    sent = -1
    while sent != len(slow.server.requests):  # let the killed process's calls land
        sent = len(slow.server.requests)
        time.sleep(0.3)
    r = run_cli(["batch", "r.jsonl", "-o", "o/", "-j", "3", "--json"])
    assert r.code == 0, r.err
    # exactly one file per expected image: no -1 duplicates, none missing
    assert pngs("o") == sorted(f"{j}-scene-{j - 1}-{i}.png" for j in range(1, 5)
                               for i in range(1, 5))
    assert len(slow.server.requests) - sent == 16 - made
    recs_out = [json.loads(line) for line in r.lines()]
    assert len(recs_out) == 16 and sum(bool(x["skipped"]) for x in recs_out) == made


def test_a_deleted_image_of_a_finished_job_is_the_only_one_made_again(
        fake: OpenAIFake) -> None:
    Path("r.jsonl").write_text('{"id": "fox", "prompt": "a fox", "n": 3}\n')
    assert run_cli(["batch", "r.jsonl", "-o", "o/"]).code == 0
    assert [b["n"] for b in generations(fake)] == [3]
    Path("o/fox-a-fox-2.png").unlink()
    r = run_cli(["batch", "r.jsonl", "-o", "o/", "--json"])
    assert r.code == 0, r.err
    assert [b["n"] for b in generations(fake)] == [3, 1]  # only the missing image
    assert pngs("o") == ["fox-a-fox-1.png", "fox-a-fox-2.png", "fox-a-fox-3.png"]
    got = {x["index"]: x["skipped"] for x in map(json.loads, r.lines())}
    assert got == {1: True, 2: False, 3: True}
    assert "1 job: 1 done" in r.err


@pytest.mark.parametrize("data, fmt", [
    ('\ufeffprompt,id\na fox,fox\n', "csv"),
    ('\ufeff{"prompt": "a fox", "id": "fox"}\n', None),
])
def test_stdin_with_a_bom_reads_as_from_a_file(fake: OpenAIFake, data: str,
                                               fmt: str | None) -> None:
    # Excel and PowerShell write a UTF-8 BOM; `cat file | imagegen batch -` must not
    # treat it as text (a JSONL record sent as its own prompt, a CSV header unknown).
    r = run_cli(["batch", "-", "-o", "o/"] + (["--input-format", fmt] if fmt else []),
                stdin=data)
    assert r.code == 0, r.err
    assert [b["prompt"] for b in generations(fake)] == ["a fox"]
    assert r.lines() == ["o/fox-a-fox-1.png"]


def test_stdin_not_utf8_is_a_usage_error(fake: OpenAIFake,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from imagegen_cli.cli.app import main

    old = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(b"caf\xe9 au lait\n"), encoding="utf-8")
    try:
        code = main(["batch", "-", "-o", "o/"])
    finally:
        sys.stdin = old
    assert code == 2
    assert "stdin is not UTF-8 text" in capsys.readouterr().err
    assert not fake.server.requests


def test_a_mask_without_an_image_is_refused(fake: OpenAIFake) -> None:
    from PIL import Image

    Image.new("L", (64, 64), 255).save("m.png")
    Path("r.jsonl").write_text('{"prompt": "ok"}\n{"prompt": "a door", "mask": "m.png"}\n')
    r = run_cli(["batch", "r.jsonl", "-o", "o/"])
    assert r.code == 2
    assert "r.jsonl, line 2: field 'mask' needs an image" in r.err
    assert not fake.server.requests
    Path("p.txt").write_text("a door\n")
    r = run_cli(["batch", "p.txt", "-o", "o/", "--mask", "m.png"])
    assert r.code == 2 and "--mask needs an image" in r.err
    assert not fake.server.requests


def test_summary_counts_usage_per_provider_even_without_token_counts(
        fake: OpenAIFake) -> None:
    # dall-e-3 reports no token usage: the summary still says what each provider did.
    Path("r.jsonl").write_text('{"prompt": "a", "model": "dall-e-3"}\n'
                               '{"prompt": "b", "n": 2}\n'
                               '{"prompt": "moderation_blocked c"}\n')
    r = run_cli(["batch", "r.jsonl", "-o", "o/", "--summary", "s.json", "-q"])
    assert r.code == 8, r.err
    usage = json.loads(Path("s.json").read_text())["usage"]
    assert set(usage) == {"openai"}
    mine = usage["openai"]
    assert (mine["jobs"], mine["images"]) == (3, 3)
    assert mine["total_tokens"] == 200  # the gpt-image call's reported tokens, kept
    assert mine["cost_usd"] > 0
    assert run_cli(["batch", "r.jsonl", "-o", "o/", "--summary", "s.json", "-q"]).code == 8
    again = json.loads(Path("s.json").read_text())
    assert again["skipped"] == 2 and again["usage"]["openai"]["images"] == 0


def test_shards_writing_into_folders_of_their_own_still_partition(fake: OpenAIFake) -> None:
    # A CI matrix often gives each shard its own folder (an artifact per shard): the
    # shard a job falls in must not depend on where its files go.
    Path("p.txt").write_text("\n".join(f"prompt {i}" for i in range(30)) + "\n")
    for i in (1, 2, 3):
        r = run_cli(["batch", "p.txt", "-o", f"out-{i}/", "--shard", f"{i}/3", "-q"])
        assert r.code == 0, r.err
    sent = sorted(str(b["prompt"]) for b in generations(fake))
    assert sent == sorted(f"prompt {i}" for i in range(30))  # each once, none left out
    assert sum(len(pngs(f"out-{i}")) for i in (1, 2, 3)) == 30


def test_o_a_new_name_without_extension_is_a_folder(fake: OpenAIFake) -> None:
    Path("p.txt").write_text("a fox\nan owl\n")
    r = run_cli(["batch", "p.txt", "-o", "renders"])
    assert r.code == 0, r.err
    assert sorted(r.lines()) == ["renders/1-a-fox-1.png", "renders/2-an-owl-1.png"]
    assert Path("renders/.imagegen-batch.jsonl").is_file()
    r = run_cli(["batch", "p.txt", "-o", "renders"])  # and the re-run finds its journal
    assert r.code == 0 and len(fake.server.requests) == 2


def test_skip_invalid_says_what_it_left_out_in_the_summary(fake: OpenAIFake) -> None:
    Path("r.jsonl").write_text('{"prompt": "a"}\n{"prompt": "b", "colour": 1}\n'
                               'not json\n{"prompt": "c"}\n')
    r = run_cli(["batch", "r.jsonl", "-o", "o/", "--skip-invalid", "--summary", "s.json"])
    assert r.code == 0, r.err
    assert len(fake.server.calls("/images/generations")) == 2
    assert "2 jobs: 2 done, 0 skipped, 0 failed, 2 invalid records left out" in r.err
    invalid = json.loads(Path("s.json").read_text())["invalid"]
    assert [x.split(":")[0] for x in invalid] == ["r.jsonl, line 2", "r.jsonl, line 3"]
    assert "unknown field 'colour'" in invalid[0]


def test_csv_record_spanning_lines_is_named_by_its_first_line(fake: OpenAIFake) -> None:
    # Multi-line cells are asked for (issue 22: else refused, naming the line).
    Path("r.csv").write_text('prompt,n\n"a fox\nin the snow",2\n\nan owl,\n"a cat\nasleep",x\n')
    ml = ["--input-format", "csv-multiline"]
    r = run_cli(["batch", "r.csv", "-o", "o/", *ml])
    assert r.code == 2 and "r.csv, line 6: field 'n' must be an integer" in r.err
    r = run_cli(["batch", "r.csv", "-o", "o/", "--skip-invalid", "--json", *ml])
    assert r.code == 0, r.err
    assert sorted({(x["id"], x["line"]) for x in map(json.loads, r.lines())}) == [
        ("1", 2), ("4", 5)]
    assert [b["prompt"] for b in generations(fake) if b["n"] == 2] == ["a fox\nin the snow"]


def test_merge_keeps_the_redone_image_not_the_first_reported(fake: OpenAIFake) -> None:
    # One manifest appended run after run: a file deleted and redone has a new
    # record; the merged manifest must point at the image that exists.
    Path("p.txt").write_text("a fox\nan owl\n")
    runs = []
    first = run_cli(["batch", "p.txt", "-o", "o/", "--json"])
    runs.append(first.stdout)
    fox = next(json.loads(x) for x in first.lines() if json.loads(x)["id"] == "1")
    Path(fox["path"]).write_bytes(b"edited by hand")  # no longer what the journal says
    runs.append(run_cli(["batch", "p.txt", "-o", "o/", "--json"]).stdout)
    runs.append(run_cli(["batch", "p.txt", "-o", "o/", "--json"]).stdout)  # all skipped
    Path("manifest.ndjson").write_text("".join(runs))
    r = run_cli(["batch", "--merge", "manifest.ndjson"])
    assert r.code == 0, r.err
    merged = [json.loads(x) for x in r.lines()]
    assert [x["id"] for x in merged] == ["1", "2"]
    import hashlib

    for rec in merged:
        assert hashlib.sha256(Path(rec["path"]).read_bytes()).hexdigest() == rec["sha256"]
    assert merged[0]["path"] != fox["path"] and merged[0]["skipped"] is False


def test_dry_run_of_one_job_says_one_job(fake: OpenAIFake) -> None:
    Path("p.txt").write_text("a fox\n")
    r = run_cli(["batch", "p.txt", "--dry-run"])
    assert r.code == 0 and "estimated cost of 1 job: $" in r.err
    assert not fake.server.requests


def test_every_generate_output_flag_works_on_batch(fake: OpenAIFake) -> None:
    # "Every generate flag is accepted": --jsonl (NDJSON, as generate --jsonl) and
    # --preview (each image in the terminal, stdout a terminal only).
    from tests.test_terminal import on_terminal

    Path("p.txt").write_text("a fox\nan owl\n")
    r = run_cli(["batch", "p.txt", "-o", "o/", "--jsonl"])
    assert r.code == 0, r.err
    assert sorted(json.loads(x)["id"] for x in r.lines()) == ["1", "2"]
    code, out, err = on_terminal(["batch", "p.txt", "-o", "t/", "--preview"],
                                 TERM_PROGRAM="iTerm.app")
    assert code == 0, err
    assert out.count(b"\x1b]1337;File=") == 2 and b"t/1-a-fox-1.png" in out
    r = run_cli(["batch", "p.txt", "-o", "n/", "--preview"])  # stdout no terminal
    assert r.code == 0 and sorted(r.lines()) == ["n/1-a-fox-1.png", "n/2-an-owl-1.png"]


def test_input_format_is_case_blind(fake: OpenAIFake) -> None:
    r = run_cli(["batch", "-", "--input-format", "CSV", "-o", "o/"], stdin="prompt,id\nx,y\n")
    assert r.code == 0, r.err
    assert r.lines() == ["o/y-x-1.png"]


def test_a_journal_that_cannot_be_written_fails_before_anything_is_sent(
        fake: OpenAIFake) -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc (a folder no file can be created in)")
    Path("p.txt").write_text("a fox\n")
    r = run_cli(["batch", "p.txt", "-o", "o/", "--state", "/proc/imagegen-journal.jsonl"])
    assert r.code == 7
    assert "Cannot write journal /proc/imagegen-journal.jsonl" in r.err and "--state" in r.err
    assert not fake.server.requests  # nothing paid for


def test_a_cancelled_batch_still_writes_its_summary(slow: OpenAIFake) -> None:
    # CI cancels with SIGTERM; --summary is the artifact a pipeline looks at then.
    Path("p.txt").write_text("\n".join(f"scene {i}" for i in range(20)) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "imagegen_cli", "batch", "p.txt", "-o",
                             "o/", "-j", "2", "--summary", "s.json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (Path("o").exists() and len(pngs("o")) >= 2):
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    summary = json.loads(Path("s.json").read_text())
    assert summary["interrupted"] is True and summary["jobs"] == 20
    assert 2 <= summary["done"] < 20 and 2 <= summary["images"] <= len(pngs("o"))


def test_diffusion_fields_per_record_on_nebula(nebula: Any) -> None:
    recs = [{"prompt": "a fox", "seed": 11, "steps": 6, "guidance": 3.5, "size": "768x512"},
            {"prompt": "an owl", "model": "stabilityai/stable-diffusion-xl-base-1.0",
             "negative_prompt": "blur", "steps": 30}]
    Path("r.jsonl").write_text("\n".join(json.dumps(x) for x in recs) + "\n")
    r = run_cli(["batch", "r.jsonl", "-p", "nebula", "--steps", "8", "-o", "o/", "--json"])
    assert r.code == 0, r.err
    bodies = {c.json()["prompt"]: c.json() for c in nebula.server.calls("/images/generation")}
    assert (bodies["a fox"]["seed"], bodies["a fox"]["num_steps"],
            bodies["a fox"]["guidance_scale"], bodies["a fox"]["width"]) == (11, 6, 3.5, 768)
    assert (bodies["an owl"]["negative_prompt"], bodies["an owl"]["num_steps"]) == ("blur", 30)
    got = {x["id"]: x for x in map(json.loads, r.lines())}
    assert got["1"]["seed"] == 11 and got["1"]["provider"] == "nebula"
    sent = len(nebula.server.requests)
    again = run_cli(["batch", "r.jsonl", "-p", "nebula", "--steps", "8", "-o", "o/", "--json"])
    assert again.code == 0 and len(nebula.server.requests) == sent
    assert all(json.loads(x)["skipped"] for x in again.lines())


def test_async_jobs_in_a_batch_on_distribute(distribute: Any) -> None:
    # seed/steps/guidance take Distribute's async jobs: created, polled, fetched.
    Path("r.jsonl").write_text('{"prompt": "a boat", "seed": 7, "steps": 20}\n'
                               '{"prompt": "a car"}\n')
    r = run_cli(["batch", "r.jsonl", "-p", "distribute", "-o", "o/", "--json"])
    assert r.code == 0, r.err
    (create,) = distribute.server.calls("/async/images/create")
    assert create.json()["seed"] == 7 and create.json()["num_inference_steps"] == 20
    assert len(distribute.server.calls("/v1/images/generations")) == 1
    got = {x["id"]: x for x in map(json.loads, r.lines())}
    assert got["1"]["seed"] == 7 and Path(got["2"]["path"]).is_file()


@pytest.mark.parametrize("name, text, needle", [
    ("r.jsonl", '{"prompt": "x", "negative-prompt": "blur"}\n',
     "r.jsonl, line 1: unknown field 'negative-prompt' (write 'negative_prompt')"),
    ("r.jsonl", '{"prompt": "x", "Model": "dall-e-3"}\n', "(write 'model')"),
    ("r.jsonl", '{"prompt": "x", "qualty": "high"}\n', "(did you mean 'quality'?)"),
    ("r.csv", "prompt,output-compression\nx,50\n",
     "r.csv, line 1: unknown column 'output-compression' (write 'output_compression')"),
])
def test_unknown_field_names_the_spelling_to_use(fake: OpenAIFake, name: str, text: str,
                                                 needle: str) -> None:
    Path(name).write_text(text)
    r = run_cli(["batch", name, "-o", "o/"])
    assert r.code == 2 and needle in r.err, r.err
    assert not fake.server.requests


def test_a_summary_that_cannot_be_written_fails_before_anything_is_sent(
        fake: OpenAIFake) -> None:
    Path("p.txt").write_text("a fox\n")
    Path("taken").mkdir()
    r = run_cli(["batch", "p.txt", "-o", "o/", "--summary", "taken"])
    assert r.code == 7 and "Cannot write --summary taken" in r.err, r.err
    assert not fake.server.requests
    r = run_cli(["batch", "p.txt", "-o", "o/", "--summary", "reports/ci/s.json", "-q"])
    assert r.code == 0 and json.loads(Path("reports/ci/s.json").read_text())["done"] == 1


@pytest.mark.parametrize("record, needle", [
    ('{"prompt": "x", "model": "gpt-image-2", "seed": 5}', "r.jsonl, line 2, field 'seed': "),
    ('{"prompt": "x", "n": 0}', "r.jsonl, line 2, field 'n': "),
    ('{"prompt": "x", "size": "huge"}', "r.jsonl, line 2, field 'size': "),
    ('{"prompt": "x", "negative_prompt": "blur", "model": "gpt-image-2"}',
     "r.jsonl, line 2, field 'negative_prompt': "),
])
def test_a_value_the_provider_refuses_names_the_records_field(
        fake: OpenAIFake, record: str, needle: str) -> None:
    Path("r.jsonl").write_text('{"prompt": "ok"}\n' + record + "\n")
    r = run_cli(["batch", "r.jsonl", "-o", "o/"])
    assert r.code == 2 and needle in r.err, r.err
    assert not fake.server.requests


@pytest.mark.parametrize("name, text", [("e.txt", ""), ("c.txt", "# one\n\n# two\n"),
                                        ("e.jsonl", "\n\n"), ("h.csv", "prompt,id\n")])
def test_an_input_without_records_does_nothing_and_says_so(fake: OpenAIFake, name: str,
                                                           text: str) -> None:
    Path(name).write_text(text)
    r = run_cli(["batch", name, "-o", "o/", "--json"])
    assert r.code == 0 and r.stdout == ""
    assert f"{name} holds no records" in r.err
    assert not fake.server.requests and not Path("o").exists()
    assert "holds no records" not in run_cli(["batch", name, "-o", "o/", "-q"]).err


def test_a_polite_stop_writes_the_answers_already_paid_for(slow: OpenAIFake) -> None:
    """SIGTERM (a CI cancel) mid-batch: no new call starts, and the calls already sent
    (paid for) are waited for a moment and written, not thrown away."""
    n = 40  # 0.2 s a call, four at a time: about 2 s in all
    Path("p.txt").write_text("\n".join(f"scene {i}" for i in range(n)) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "imagegen_cli", "batch", "p.txt", "-o",
                             "o/", "-j", "4"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ))
    assert proc.stdout is not None
    proc.stdout.readline()  # the first image is written; three more calls are out
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    sent = len(slow.server.calls("/images/generations"))
    assert 1 < sent < n
    assert len(pngs("o")) == sent, (sent, pngs("o"), err)  # every answer paid for is on disk
    r = run_cli(["batch", "p.txt", "-o", "o/", "-j", "4"])
    assert r.code == 0 and len(slow.server.calls("/images/generations")) == n
