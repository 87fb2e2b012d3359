"""`imagegen batch --batch-api` against the strict Files + Batch fake on 127.0.0.1:
the same files and records as a live batch, at half the price; never submitted twice."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import KEY, run_cli, write_config
from tests.fakes.openai_batch_fake import OpenAIBatchFake
from tests.fakes.openai_fake import OpenAIFake

FAST = ["--poll-interval", "0.01"]


@pytest.fixture
def bfake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[OpenAIBatchFake]:
    """The strict fake with Files + Batches, as the `openai` provider (batch_api on: a
    loopback URL is not api.openai.com)."""
    f = OpenAIBatchFake(image_size=(64, 64), keep_retired=True).start()
    write_config(f'[providers.openai]\nbase_url = "{f.url}"\nbatch_api = true\n',
                 monkeypatch, tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    yield f
    f.stop()


def records(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line]


def write_prompts(n: int = 5, name: str = "p.jsonl") -> Path:
    path = Path(name)
    path.write_text("".join(json.dumps({"id": f"r{i}", "prompt": f"a red fox number {i}",
                                        "model": "gpt-image-1.5", "quality": "low"}) + "\n"
                            for i in range(n)))
    return path


def lines_sent(fake: OpenAIBatchFake) -> list[dict[str, object]]:
    out = []
    for f in fake.uploaded.values():
        if f["purpose"] == "batch":
            out += [json.loads(x) for x in f["content"].splitlines()]
    return out


def test_happy_path_writes_what_a_live_batch_writes(bfake: OpenAIBatchFake) -> None:
    write_prompts(5)
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--json", *FAST])
    assert r.code == 0, r.err
    assert bfake.creates == 1 and bfake.uploads == 1
    assert bfake.server.calls("/images/generations") == []  # nothing went live
    got = {str(x["id"]): x for x in records(r.stdout)}
    assert sorted(got) == [f"r{i}" for i in range(5)]
    for rec in got.values():
        assert rec["via"] == "batch-api" and str(rec["batch_id"]).startswith("batch_")
        assert Path(str(rec["path"])).is_file() and rec["request_id"]
    # The uploaded lines: one per call, the live body exactly, custom_id = key-index.
    sent = lines_sent(bfake)
    assert len(sent) == 5 and {x["url"] for x in sent} == {"/v1/images/generations"}
    assert all(x["method"] == "POST" and str(x["custom_id"]).endswith("-0") for x in sent)
    (create_call,) = [c for c in bfake.server.calls("/batches") if c.method == "POST"]
    create = create_call.json()
    assert create["completion_window"] == "24h" and create["metadata"]["generator"] == "imagegen"
    assert set(create) == {"input_file_id", "endpoint", "completion_window", "metadata"}
    assert create["endpoint"] == "/v1/images/generations"
    # names imagegen and the batch (a part token, the journal's hash), never a local path
    assert set(create["metadata"]) == {"generator", "imagegen_part", "imagegen_journal"}
    assert not any("/" in v for v in create["metadata"].values())

    # The same batch live, into another folder: the same names, metadata and records
    # (less timings, ids and the batch fields).
    r2 = run_cli(["batch", "p.jsonl", "-o", "live/", "--json"])
    assert r2.code == 0, r2.err
    live = {str(x["id"]): x for x in records(r2.stdout)}
    live_bodies = sorted(json.dumps(c.json(), sort_keys=True)
                         for c in bfake.server.calls("/images/generations"))
    assert live_bodies == sorted(json.dumps(x["body"], sort_keys=True) for x in sent)
    for k, rec in got.items():
        assert Path(str(rec["path"])).name == Path(str(live[k]["path"])).name
        for f in ("index", "width", "height", "format", "provider", "model", "line",
                  "cost_source", "revised_prompt"):
            assert rec[f] == live[k][f], f
        # what the provider chose; `created` is the answer's own clock (the runs differ)
        def chosen(x: object) -> dict[str, object]:
            return {k: v for k, v in dict(x or {}).items()  # type: ignore[call-overload]
                    if k != "created"}
        assert chosen(rec["resolved"]) == chosen(live[k]["resolved"])
        # half the live price
        assert rec["cost_usd"] == pytest.approx(float(live[k]["cost_usd"]) / 2)  # type: ignore[arg-type]
    from imagegen_cli.files.metadata.read import settings_from

    a = settings_from(Path(str(got["r1"]["path"])))
    b = settings_from(Path(str(live["r1"]["path"])))
    assert a.get("prompt") == "a red fox number 1"
    for f in ("prompt", "model", "provider", "quality", "generator"):
        assert a.get(f) == b.get(f), f
    assert "the same images live" in r.err
    # progress on stderr: status, counts, elapsed
    assert re.search(r"batch batch_\d+: in_progress, 0/5 done, 0 failed, 0m0\ds elapsed", r.err)
    assert re.search(r"batch batch_\d+: completed, 5/5 done, 0 failed", r.err)


def test_dry_run_prints_lines_and_estimate_sends_nothing(bfake: OpenAIBatchFake) -> None:
    write_prompts(3)
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--dry-run"])
    assert r.code == 0, r.err
    lines = records(r.stdout)
    assert len(lines) == 3 and all(set(x) == {"custom_id", "method", "url", "body"}
                                   for x in lines)
    assert lines[0]["body"] == {"model": "gpt-image-1.5", "prompt": "a red fox number 0",
                                "n": 1, "quality": "low"}
    # gpt-image-1.5 low 1024x1024 is $0.009 live: three at the batch price, $0.0135
    assert "$0.0135" in r.err and "live: $0.027" in r.err
    assert bfake.server.requests == []


def test_no_wait_then_rerun_fetches_without_resubmitting(bfake: OpenAIBatchFake) -> None:
    write_prompts(4)
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--no-wait", "--json"])
    assert r.code == 0, r.err
    (rec,) = records(r.stdout)
    assert str(rec["batch_id"]).startswith("batch_") and rec["requests"] == 4
    assert not list(Path("out").glob("*.png"))
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", *FAST])
    assert r.code == 0, r.err
    assert bfake.creates == 1 and bfake.uploads == 1
    assert len(list(Path("out").glob("*.png"))) == 4
    # and again: every image is in the journal, nothing is sent or written anew
    before = len(bfake.server.requests)
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--json", *FAST])
    assert r.code == 0, r.err
    assert all(x["skipped"] for x in records(r.stdout))
    assert bfake.creates == 1
    assert all("/batches" not in q.path and "/files" not in q.path
               for q in bfake.server.requests[before:])


def test_provider_without_batch_api_is_exit_2(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    f = OpenAIFake(image_size=(64, 64)).start()
    try:
        write_config(f'[providers.openai]\nbase_url = "{f.url}"\n\n[providers.gw]\n'
                     f'type = "openai"\nbase_url = "{f.url}"\nbatch_api = true\n',
                     monkeypatch, tmp_path)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        write_prompts(2)
        r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api"])
        assert r.code == 2, r.err
        assert "provider openai does not offer OpenAI's Batch API" in r.err
        assert "providers that do: gw" in r.err
        assert f.server.requests == []
    finally:
        f.stop()


def test_error_lines_fail_their_jobs_exit_8(bfake: OpenAIBatchFake) -> None:
    Path("p.jsonl").write_text(
        json.dumps({"id": "ok", "prompt": "fine", "model": "gpt-image-1.5"}) + "\n"
        + json.dumps({"id": "bad", "prompt": "moderation_blocked here",
                      "model": "gpt-image-1.5"}) + "\n")
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--json", *FAST])
    assert r.code == 8, r.err
    recs = {str(x["id"]): x for x in records(r.stdout)}
    assert Path(str(recs["ok"]["path"])).is_file()
    assert recs["bad"]["exit_code"] == 5 and "safety system" in str(recs["bad"]["error"])


def test_failed_batch_names_its_error_lines(bfake: OpenAIBatchFake,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine writes valid lines: break one (method GET) to see the batch fail.
    from imagegen_cli.engine import batchapi

    real = batchapi.line_of

    def bad_line(job, i, off, n, inputs):  # type: ignore[no-untyped-def]
        return real(job, i, off, n, inputs).replace(b'"POST"', b'"GET"')

    monkeypatch.setattr(batchapi, "line_of", bad_line)
    write_prompts(2)
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", *FAST])
    assert r.code == 5, r.err
    assert "failed validation: line 1: method must be POST" in r.err


@pytest.mark.parametrize("end", ["expired", "cancelled"])
def test_expired_or_cancelled_batch_writes_its_finished_lines(bfake: OpenAIBatchFake,
                                                              end: str) -> None:
    write_prompts(4)
    bfake.answer_first = 2
    if end == "expired":
        bfake.end_as = "expired"
    else:
        r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--no-wait"])
        assert r.code == 0, r.err
        r = run_cli(["job", "cancel", "openai", r.stdout.strip()])
        assert r.code == 0, r.err
        assert r.stdout.split()[1] == "cancelling"
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--json", *FAST])
    assert r.code == 8, r.err
    recs = records(r.stdout)
    assert len([x for x in recs if "path" in x]) == 2
    assert len(list(Path("out").glob("*.png"))) == 2
    assert sum("batch_" in str(x.get("error")) for x in recs) == 2
    # a re-run submits only the two that did not come back
    bfake.end_as, bfake.answer_first = "completed", None
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", *FAST])
    assert r.code == 0, r.err
    assert bfake.creates == 2
    assert len(list(Path("out").glob("*.png"))) == 4
    resent = [x for f in list(bfake.uploaded.values())[1:] if f["purpose"] == "batch"
              for x in f["content"].splitlines()]
    assert len({json.loads(x)["custom_id"] for x in resent}) == 2


def test_job_get_fetches_a_batch_by_id(bfake: OpenAIBatchFake) -> None:
    write_prompts(2)
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--no-wait"])
    bid = r.stdout.strip()
    r = run_cli(["job", "get", "openai", bid, "-o", "got/", "--json"])
    assert r.code == 0, r.err
    recs = records(r.stdout)
    assert len(recs) == 2 and all(Path(str(x["path"])).is_file() for x in recs)
    names = sorted(Path(str(x["path"])).name for x in recs)
    assert names[0].endswith("a-red-fox-number-0-1.png"), names
    assert names[1].endswith("a-red-fox-number-1-1.png"), names
    assert all(x["via"] == "batch-api" and x["batch_id"] == bid for x in recs)


def test_max_cost_at_the_batch_price(bfake: OpenAIBatchFake) -> None:
    write_prompts(4)  # $0.009 live each, $0.0045 in a batch
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--max-cost", "0.0135",
                 "--size", "1024x1024", "--json", *FAST])
    assert r.code == 8, r.err
    recs = records(r.stdout)
    assert len([x for x in recs if "path" in x]) == 3  # live, only one would fit
    assert len(lines_sent(bfake)) == 3
    assert any("over --max-cost" in str(x.get("error")) for x in recs)


def _cli_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env


@pytest.mark.parametrize("where", ["upload", "create", "poll", "content"])
def test_kill_9_then_rerun_submits_nothing_twice(bfake: OpenAIBatchFake, where: str,
                                                 tmp_path: Path) -> None:
    write_prompts(3)
    args = [sys.executable, "-m", "imagegen_cli", "batch", "p.jsonl", "-o", "out/",
            "--batch-api", *FAST]
    proc = subprocess.Popen(args, env=_cli_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    bfake.after[where] = lambda: os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    bfake.after.clear()
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--json", *FAST])
    assert r.code == 0, r.err
    assert bfake.creates == 1 and bfake.uploads == 1
    assert len(list(Path("out").glob("*.png"))) == 3
    assert len({x["path"] for x in records(r.stdout)}) == 3


def test_parts_split_at_the_line_limit_and_by_model(bfake: OpenAIBatchFake,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from imagegen_cli.engine import batchapi

    monkeypatch.setattr(batchapi, "MAX_LINES", 2)  # 50,000 in real life
    write_prompts(5)
    with Path("p.jsonl").open("a") as fh:
        fh.write(json.dumps({"id": "other", "prompt": "x", "model": "gpt-image-2"}) + "\n")
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--json", *FAST])
    assert r.code == 0, r.err
    assert bfake.creates == 4  # 2 + 2 + 1 lines of gpt-image-1.5, 1 of gpt-image-2
    sizes = sorted(len(f["content"].splitlines()) for f in bfake.uploaded.values()
                   if f["purpose"] == "batch")
    assert sizes == [1, 1, 2, 2]
    assert len({x["batch_id"] for x in records(r.stdout)}) == 4
    assert len(list(Path("out").glob("*.png"))) == 6


def test_n_over_the_models_max_is_several_lines(bfake: OpenAIBatchFake) -> None:
    Path("p.jsonl").write_text(json.dumps({"id": "d3", "prompt": "an owl", "n": 3,
                                           "model": "dall-e-3"}) + "\n")
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--json", *FAST])
    assert r.code == 0, r.err
    sent = lines_sent(bfake)
    assert sorted(str(x["custom_id"])[-2:] for x in sent) == ["-0", "-1", "-2"]
    assert all(x["body"]["n"] == 1 for x in sent)  # type: ignore[index]
    assert sorted(int(x["index"]) for x in records(r.stdout)) == [1, 2, 3]  # type: ignore[call-overload]


def test_long_input_read_again_for_the_fetch(bfake: OpenAIBatchFake,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from imagegen_cli.engine import stream

    monkeypatch.setattr(stream, "WINDOW", 2)  # the input is read as a stream past it
    write_prompts(5)
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--json", *FAST])
    assert r.code == 0, r.err
    assert sorted(str(x["id"]) for x in records(r.stdout)) == [f"r{i}" for i in range(5)]
    assert bfake.creates == 1


def test_edits_go_as_json_edit_bodies_inputs_uploaded_once(bfake: OpenAIBatchFake) -> None:
    from tests.fakes.server import png

    Path("house.png").write_bytes(png(64, 64, (10, 20, 30)))
    Path("mask.png").write_bytes(png(64, 64, (255, 255, 255)))  # white: repaint
    Path("p.jsonl").write_text("".join(json.dumps(x) + "\n" for x in [
        {"id": "a", "prompt": "a red door", "image": "house.png", "mask": "mask.png",
         "model": "gpt-image-1.5"},
        {"id": "b", "prompt": "a blue door", "image": "house.png", "mask": "mask.png",
         "model": "gpt-image-1.5"},
        {"id": "g", "prompt": "a plain fox", "model": "gpt-image-1.5"}]))
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--json", *FAST])
    assert r.code == 0, r.err
    assert len([x for x in records(r.stdout) if "path" in x]) == 3
    images = [f for f in bfake.uploaded.values() if f["purpose"] == "vision"]
    assert len(images) == 2  # house.png once, the mask once (for two records)
    edits = [b for b in bfake.batches.values() if b["endpoint"] == "/v1/images/edits"]
    assert len(edits) == 1 and bfake.creates == 2  # one batch per endpoint
    sent = {str(x["body"]["prompt"]): x for x in lines_sent(bfake)}  # type: ignore[index]
    door = sent["a red door"]
    assert door["url"] == "/v1/images/edits"
    body = door["body"]
    assert isinstance(body, dict) and set(body["images"][0]) == {"file_id"}
    assert set(body["mask"]) == {"file_id"}
    assert len(bfake.image_refs) == 4  # every reference resolved to an uploaded image
    # a re-run uploads nothing again
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", *FAST])
    assert r.code == 0, r.err
    assert len([f for f in bfake.uploaded.values() if f["purpose"] == "vision"]) == 2


def test_dalle2_edit_is_exit_2(bfake: OpenAIBatchFake) -> None:
    from tests.fakes.server import png

    Path("sq.png").write_bytes(png(64, 64))
    Path("m.png").write_bytes(png(64, 64, (255, 255, 255)))
    Path("p.jsonl").write_text(json.dumps({"prompt": "x", "image": "sq.png", "mask": "m.png",
                                           "model": "dall-e-2"}) + "\n")
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api"])
    assert r.code == 2, r.err
    assert "goes as multipart only" in r.err and bfake.server.requests == []


def test_kill_9_while_writing_then_rerun_writes_each_image_once(bfake: OpenAIBatchFake,
                                                                tmp_path: Path) -> None:
    import time

    write_prompts(150)
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--no-wait"])
    assert r.code == 0, r.err
    args = [sys.executable, "-m", "imagegen_cli", "batch", "p.jsonl", "-o", "out/",
            "--batch-api", "-j", "1", *FAST]
    proc = subprocess.Popen(args, env=_cli_env(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(Path("out").glob("*.png"))) < 5 and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(list(Path("out").glob("*.png")))
    assert 5 <= written < 150  # killed mid-fetch
    r = run_cli(["batch", "p.jsonl", "-o", "out/", "--batch-api", "--json", *FAST])
    assert r.code == 0, r.err
    recs = records(r.stdout)
    assert sum(bool(x["skipped"]) for x in recs) >= written
    assert len({x["path"] for x in recs}) == 150
    assert len(list(Path("out").glob("*.png"))) == 150  # each once: no "-2" copies
    assert not [p for p in Path("out").iterdir() if p.name.startswith(".") and
                p.suffix not in (".jsonl", ".batches") and not p.is_dir()]
    assert bfake.creates == 1
    journal = [json.loads(x) for x in Path("out/.imagegen-batch.jsonl").read_text()
               .splitlines() if '"key"' in x]
    # (a claim whose file never appeared, the kill landing between the two, is redone
    # and claimed again: as in a live batch, the last claim of each image stands)
    last = {(x["key"], x["index"]): x["path"] for x in journal}
    assert len(last) == 150 and all(Path(p).is_file() for p in last.values())
