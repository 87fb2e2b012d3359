"""`imagegen batch` with --max-cost over the whole batch, cost in NDJSON records and the
summary, and per-record fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import KEY, run_cli, write_config
from tests.fakes.openai_fake import OpenAIFake, error


def records(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_batch_cap_starts_only_what_fits(fake: OpenAIFake) -> None:
    # dall-e-3 1024x1024 standard: $0.04 an image; a cap of $0.10 fits two of five.
    Path("p.txt").write_text("".join(f"scene {i}\n" for i in range(5)))
    r = run_cli(["batch", "p.txt", "-o", "o/", "-m", "dall-e-3", "-j", "1", "--json",
                 "--max-cost", "0.10", "--summary", "s.json"])
    assert r.code == 8, r.err
    recs = records(r.stdout)
    written = [x for x in recs if "path" in x]
    refused = [x for x in recs if "error" in x]
    assert len(written) == 2 and len(refused) == 3
    assert len(fake.server.calls("/images/generations")) == 2  # the rest never sent
    assert all(Path(str(x["path"])).exists() for x in written)  # written ones stay
    assert all(x["exit_code"] == 8 and "over --max-cost $0.10" in str(x["error"])
               for x in refused)
    assert all((x["cost_usd"], x["cost_source"], x["provider"]) == (0.04, "table", "openai")
               for x in written)
    summary = json.loads(Path("s.json").read_text())
    assert (summary["cost_usd"], summary["cost_source"]) == (0.08, "table")


def test_batch_cap_under_the_total_runs_everything(fake: OpenAIFake) -> None:
    Path("p.txt").write_text("a\nb\n")
    r = run_cli(["batch", "p.txt", "-o", "o/", "-m", "dall-e-2", "-s", "256x256",
                 "--max-cost", "0.05"])
    assert r.code == 0, r.err
    assert "2 images in" in r.err and "$0.032" in r.err  # the summary line


def test_batch_cap_no_job_fits_exits_2_before_sending(fake: OpenAIFake) -> None:
    Path("p.txt").write_text("a\nb\n")
    r = run_cli(["batch", "p.txt", "-o", "o/", "-m", "dall-e-3", "--max-cost", "0.01"])
    assert r.code == 2 and "nothing was sent" in r.err
    assert fake.server.requests == []


def test_batch_cap_with_an_unknown_price_exits_2(fake: OpenAIFake, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(f'[providers.openai]\nbase_url = "{fake.url}"\n'
                 f'[providers.gw]\ntype = "openai"\nbase_url = "{fake.url}"\n'
                 'api_key_env = "GW_API_KEY"\n', monkeypatch, tmp_path)
    monkeypatch.setenv("GW_API_KEY", KEY)
    Path("r.jsonl").write_text('{"prompt": "a"}\n{"prompt": "b", "provider": "gw"}\n')
    r = run_cli(["batch", "r.jsonl", "-o", "o/", "-m", "dall-e-2", "--max-cost", "1"])
    assert r.code == 2
    assert "line 2" in r.err and "price of gw model dall-e-2 is unknown" in r.err
    assert fake.server.requests == []


def test_batch_record_fallback(fake: OpenAIFake, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    backup = OpenAIFake(image_size=(40, 40)).start()
    try:
        write_config(f'[providers.openai]\nbase_url = "{fake.url}"\n'
                     f'[providers.backup]\ntype = "openai"\nbase_url = "{backup.url}"\n'
                     'api_key_env = "BACKUP_API_KEY"\n', monkeypatch, tmp_path)
        monkeypatch.setenv("BACKUP_API_KEY", KEY)
        fake.server.script.append(error(503, "overloaded", etype="server_error"))
        Path("r.jsonl").write_text('{"prompt": "a", "fallback": ["backup"]}\n')
        r = run_cli(["batch", "r.jsonl", "-o", "o/", "--json", "--retries", "0"])
        assert r.code == 0, r.err
        (rec,) = records(r.stdout)
        assert (rec["provider"], rec["fallback_from"]) == ("backup", "openai")
        assert len(backup.server.calls("/images/generations")) == 1
        assert "openai is unavailable" in r.err
        # a refusal from the first never reaches the fallback
        Path("s.jsonl").write_text(
            '{"prompt": "moderation_blocked", "fallback": "backup"}\n')
        r = run_cli(["batch", "s.jsonl", "-o", "s/", "--json"])
        assert r.code == 5
        assert len(backup.server.calls("/images/generations")) == 1
    finally:
        backup.stop()


def test_batch_dry_run_shows_each_estimate_and_the_total(fake: OpenAIFake) -> None:
    Path("p.txt").write_text("a\nb\nc\n")
    r = run_cli(["batch", "p.txt", "-m", "gpt-image-1", "-s", "1024x1024", "--quality",
                 "high", "--dry-run"])
    assert r.code == 0, r.err
    recs = records(r.stdout)
    assert [x["estimated_cost"]["total_usd"]["max"] for x in recs] == [0.167] * 3
    assert "estimated cost of 3 jobs: $0.501" in r.err
    assert fake.server.requests == []


def test_batch_cap_waits_for_running_jobs_to_settle(fake: OpenAIFake) -> None:
    # Issue 19 item 9: at the default -j 4, two running jobs reserved the top of their
    # estimates ($0.25 each: gpt-image-1 high 1024x1536) and the third was failed,
    # though each really cost under a cent (usage). It waits for them, then runs.
    def slow(req: object) -> object:
        resp = fake.handle(req)  # type: ignore[arg-type]
        resp.delay = 0.3
        return resp

    fake.server.script.extend([slow, slow, slow])
    Path("p.txt").write_text("a\nb\nc\n")
    r = run_cli(["batch", "p.txt", "-o", "o/", "-m", "gpt-image-1", "--quality", "high",
                 "-s", "1024x1536", "--json", "--max-cost", "0.50"])
    assert r.code == 0, r.err
    recs = records(r.stdout)
    assert len([x for x in recs if "path" in x]) == 3 and not [x for x in recs if "error" in x]
    assert len(fake.server.calls("/images/generations")) == 3


def test_the_cap_is_the_batch_s_across_runs(fake: OpenAIFake) -> None:
    """--max-cost covers the batch, not one run: re-running after the cap stopped it
    spends nothing more (the journal says what was spent); a finished batch re-run
    under the same cap refuses nothing."""
    Path("p.txt").write_text("".join(f"scene {i}\n" for i in range(5)))
    args = ["batch", "p.txt", "-o", "o/", "-m", "dall-e-3", "-j", "1", "--json",
            "--max-cost", "0.10"]
    r = run_cli(args)
    assert r.code == 8 and len(fake.server.calls("/images/generations")) == 2, r.err
    r = run_cli(args)  # the same cap again: $0.08 of it is spent, no $0.04 job fits
    assert r.code == 8, r.err
    assert "this batch spent $0.08 of --max-cost $0.10 in earlier runs" in r.err
    assert len(fake.server.calls("/images/generations")) == 2  # nothing more sent
    r = run_cli([*args[:-1], "0.20"])  # a raised cap: the rest, $0.12, fits
    assert r.code == 0, r.err
    assert len(fake.server.calls("/images/generations")) == 5
    r = run_cli([*args[:-1], "0.20"])
    assert r.code == 0 and len(fake.server.calls("/images/generations")) == 5, r.err
    assert all(x.get("skipped") for x in records(r.stdout))
