"""History: every image written is remembered (SQLite, FTS5), searched, shown, made
again, and its cost added up. Each test's database lives under its own HOME
(conftest `isolated` pins XDG_STATE_HOME there)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imagegen_cli.engine import history
from imagegen_cli.files.history import Entry, Store, fts_query, location
from tests.conftest import KEY, TODAY, run_cli, write_config
from tests.fakes.openai_fake import OpenAIFake


def rows(*args: str) -> list[dict[str, Any]]:
    r = run_cli(["history", "--json", *args])
    assert r.code == 0, r.err
    return [json.loads(line) for line in r.lines()]


def entry(prompt: str, when: str, provider: str = "openai", model: str = "gpt-image-1",
          cost: float | None = 0.01) -> Entry:
    return Entry(time=when, prompt=prompt, negative_prompt=None, provider=provider,
                 model=model, options={"size": "64x64"}, seed=None, cost_usd=cost,
                 cost_source="table" if cost is not None else None, path=f"/x/{prompt}.png",
                 sha256="0" * 64, bytes=1, width=64, height=64, format="png")


def test_location_is_under_the_tests_home(isolated: Path) -> None:
    assert str(location(os.environ)).startswith(str(isolated.parent / "home"))
    assert location({"IMAGEGEN_HISTORY_DB": "/tmp/h.db"}) == Path("/tmp/h.db")


def test_every_image_recorded_never_a_key(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "a red fox", "-n", "2", "-m", "gpt-image-1", "-o", "fox.png"])
    assert r.code == 0, r.err
    got = rows()
    assert len(got) == 2
    paths = {Path(p) for p in r.lines()}
    for row in got:
        assert row["prompt"] == "a red fox" and row["provider"] == "openai"
        assert row["model"] == "gpt-image-1" and row["run_status"] == 0
        assert Path(row["path"]).is_absolute()
        assert Path(row["path"]).relative_to(Path.cwd()) in paths
        data = Path(row["path"]).read_bytes()
        assert row["sha256"] == hashlib.sha256(data).hexdigest() and row["bytes"] == len(data)
        assert row["cost_usd"] is not None and row["cost_source"]
        assert row["options"]["size"] == "64x64"
    db = location(os.environ)
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    assert run_cli(["generate", f"a fox {KEY}", "-o", "k.png"]).code == 0  # pasted key
    assert KEY not in json.dumps(rows()[0])
    raw = b"".join(p.read_bytes() for p in db.parent.glob("history.db*"))
    assert KEY.encode() not in raw


def test_text_search_provider_and_limit(fake: OpenAIFake) -> None:
    for prompt in ("a red fox", "a blue whale", "a red whale's tail"):
        assert run_cli(["generate", prompt, "-o", "x.png"]).code == 0
    assert [r["prompt"] for r in rows("whale")] == ["a red whale's tail", "a blue whale"]
    assert [r["prompt"] for r in rows("red", "whale")] == ["a red whale's tail"]
    assert [r["prompt"] for r in rows("wha*")] == ["a red whale's tail", "a blue whale"]
    assert rows("whale's") and rows('"OR') == [] and rows("NEAR(") == []  # plain text
    assert len(rows("-n", "1")) == 1
    assert rows("--provider", "nebula") == []
    human = run_cli(["history", "fox"]).stdout
    assert "a red fox" in human and "openai/" in human


def test_since_counts_from_the_pinned_today() -> None:
    store = Store(location(os.environ))
    store.add(entry("old", "2026-11-01T10:00:00"))
    store.add(entry("last week", "2026-11-18T10:00:00"))
    store.add(entry("yesterday", "2026-11-22T10:00:00"))
    store.close()
    assert TODAY == "2026-11-23"
    assert [r["prompt"] for r in rows("--since", "2d")] == ["yesterday"]
    assert [r["prompt"] for r in rows("--since", "7d")] == ["yesterday", "last week"]
    assert len(rows("--since", "2026-11-01")) == 3
    r = run_cli(["history", "--since", "lately"])
    assert r.code == 2 and "--since 'lately'" in r.err


def test_show_and_generate_from_id(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "a lighthouse at dusk", "-m", "dall-e-2", "--size", "256x256",
                 "-o", "l.png"])
    assert r.code == 0, r.err
    image_id = rows()[0]["id"]
    shown = run_cli(["history", "show", str(image_id)])
    assert shown.code == 0, shown.err
    assert "a lighthouse at dusk" in shown.stdout and f"--from {image_id}" in shown.stdout
    r = run_cli(["generate", "--from", str(image_id), "-o", "again.png"])
    assert r.code == 0, r.err
    body = json.loads(fake.server.calls("/images/generations")[-1].body)
    assert body["prompt"] == "a lighthouse at dusk" and body["model"] == "dall-e-2"
    assert body["size"] == "256x256"
    missing = run_cli(["generate", "--from", "999", "-o", "x.png"])
    assert missing.code == 2 and "no image 999 in the history" in missing.err
    assert run_cli(["history", "show", "999"]).code == 2


def test_spend_by_provider_model_day_unknown_apart() -> None:
    store = Store(location(os.environ))
    store.add(entry("a", "2026-11-22T10:00:00", cost=0.04))
    store.add(entry("b", "2026-11-22T11:00:00", model="dall-e-3", cost=0.08))
    store.add(entry("c", "2026-11-21T09:00:00", provider="nebula", model="flux", cost=None))
    store.add(entry("too old", "2026-09-01T09:00:00", cost=5.0))
    store.close()
    r = run_cli(["spend", "--json"])
    assert r.code == 0, r.err
    got = json.loads(r.stdout)
    assert got["total_usd"] == 0.12 and got["images"] == 3 and got["unknown_price_images"] == 1
    assert {row["provider"]: row["cost_usd"] for row in got["rows"]} == {
        "nebula": 0.0, "openai": 0.12}
    by_model = json.loads(run_cli(["spend", "--by", "model", "--json"]).stdout)["rows"]
    assert [row["model"] for row in by_model] == ["nebula/flux", "openai/dall-e-3",
                                                  "openai/gpt-image-1"]
    by_day = json.loads(run_cli(["spend", "--by", "day", "--since", "90d", "--json"]).stdout)
    assert [row["day"] for row in by_day["rows"]] == ["2026-09-01", "2026-11-21",
                                                      "2026-11-22"]
    human = run_cli(["spend"]).stdout
    assert "1 of unknown price, not counted" in human and "$0.1200" in human
    assert run_cli(["spend", "--by", "week"]).code == 2


def test_off_by_env_or_config(fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch,
                              tmp_path: Path) -> None:
    monkeypatch.setenv("IMAGEGEN_HISTORY", "0")
    assert run_cli(["generate", "x", "-o", "a.png"]).code == 0
    assert not location(os.environ).exists()
    monkeypatch.delenv("IMAGEGEN_HISTORY")
    write_config(f'[defaults]\nhistory = false\n[providers.openai]\nbase_url = "{fake.url}"\n',
                 monkeypatch, tmp_path)
    r = run_cli(["generate", "x", "-o", "b.png"])
    assert r.code == 0 and "unknown key" not in r.err
    assert not location(os.environ).exists()


def test_batch_rows_carry_job_ids_and_the_runs_exit_status(fake: OpenAIFake) -> None:
    Path("p.txt").write_text("fine\nmoderation_blocked here\nalso fine\n")
    r = run_cli(["batch", "p.txt", "-o", "out/"])
    assert r.code == 8
    got = rows()
    assert sorted(r["prompt"] for r in got) == ["also fine", "fine"]
    assert {r["run_status"] for r in got} == {8} and all(r["job"] for r in got)


def test_unwritable_history_warns_once_and_the_images_are_written(
        fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("IMAGEGEN_HISTORY_DB", str(tmp_path / "afile" / "h.db"))
    r = run_cli(["generate", "x", "-n", "2", "-o", "a.png"])
    assert r.code == 0, r.err
    assert r.err.count("history not recorded") == 1
    assert len(r.lines()) == 2


def test_many_processes_at_once(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    code = ("import sys\n"
            "from imagegen_cli.engine.history import record\n"
            "from tests.test_history import entry\n"
            "for i in range(40):\n"
            "    record(entry(f'p{sys.argv[1]} {i}', '2026-11-22T10:00:00'),"
            f" env={{'IMAGEGEN_HISTORY_DB': {str(db)!r}}})\n")
    root = Path(__file__).resolve().parent.parent
    procs = [subprocess.Popen([sys.executable, "-c", code, str(n)], cwd=root,
                              stderr=subprocess.PIPE) for n in range(6)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    store = Store(db)
    assert len(store.search(limit=1000)) == 240
    assert len(store.search("p3", limit=1000)) == 40
    store.close()


def test_provider_filter_is_exact() -> None:
    store = Store(location(os.environ))
    for provider in ("my", "my-gw", "gw"):
        store.add(entry(f"a cat by {provider}", "2026-11-22T10:00:00", provider=provider))
    store.close()
    assert [r["provider"] for r in rows("--provider", "my")] == ["my"]
    assert [r["provider"] for r in rows("cat", "--provider", "my-gw")] == ["my-gw"]
    assert [r["provider"] for r in rows("cat", "-p", "gw")] == ["gw"]


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('a "b" c*') == '"a" """b""" "c"*'
    assert fts_query("   ") == '""'


def test_record_for_other_front_doors() -> None:
    assert history.record(entry("from serve", "2026-11-22T10:00:00")) == 1
    assert rows()[0]["prompt"] == "from serve"
    assert history.record(entry("off", "2026-11-22T10:00:00"),
                          env={**os.environ, "IMAGEGEN_HISTORY": "0"}) is None


def test_stdout_images_are_recorded_too_and_an_empty_history_says_so(
        fake: OpenAIFake) -> None:
    r = run_cli(["history"])
    assert r.code == 0 and r.stdout == "" and "no image recorded yet" in r.err
    r = run_cli(["generate", "a cat on stdout", "-o", "-"])
    assert r.code == 0, r.err
    (row,) = rows()
    assert row["path"] == "-" and row["prompt"] == "a cat on stdout"
    assert row["sha256"] == hashlib.sha256(r.out).hexdigest()
