"""The Distribute dialect: sync, async jobs and their poll loop, pre-send checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import SLEEPS, run_cli, write_config
from tests.fakes.server import Response


def test_sync_request_shape_and_bare_array_answer(distribute: Any) -> None:
    r = run_cli(["generate", "a boat", "-p", "distribute", "--size", "512x256", "-o", "b.png"])
    assert r.code == 0, r.err
    (call,) = distribute.server.calls("/v1/images/generations")
    assert call.headers["authorization"] == f"Bearer {distribute.key}"
    assert call.json() == {"prompt": "a boat", "model": "Flux.1 [dev]", "n": 1,
                           "response_format": "b64_json", "size": "512x256"}
    with Image.open("b.png") as im:
        assert im.size == (512, 256)


def test_count_sends_concurrent_requests(distribute: Any) -> None:
    r = run_cli(["generate", "a boat", "-p", "distribute", "-n", "3", "-o", "d/{index}.png"])
    assert r.code == 0, r.err
    assert r.lines() == ["d/1.png", "d/2.png", "d/3.png"]
    assert len(distribute.server.calls("/v1/images/generations")) == 3


def test_async_when_seed_steps_guidance(distribute: Any) -> None:
    r = run_cli(["generate", "a boat", "-p", "distribute", "--seed", "7", "--steps", "20",
                 "--guidance", "6", "-o", "a.png", "--json"])
    assert r.code == 0, r.err
    (create,) = distribute.server.calls("/async/images/create")
    assert create.headers["authorization"] == distribute.key  # raw key, no Bearer
    body = create.json()
    assert (body["seed"], body["num_inference_steps"], body["guidance_scale"]) == (7, 20, 6)
    polls = distribute.server.calls("/async/images/result")
    assert len(polls) == 4  # CREATED, QUEUED, PROCESSING, COMPLETED
    assert SLEEPS[:3] == [1.0, 1.5, 2.25]  # backoff from ~1 s
    report = json.loads(r.stdout)
    assert report["images"][0]["seed"] == 7
    assert report["extra"]["job_s"] == 12.5  # ISO created, epoch-ms finished
    assert not r.err or "Traceback" not in r.err


def test_backoff_capped_at_5s(distribute: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    r = run_cli(["generate", "forever", "-p", "distribute", "--seed", "1", "--timeout", "30"])
    assert r.code == 6
    assert max(SLEEPS) == 5.0
    assert "still QUEUED" in r.err and "--timeout" in r.err
    job_id = distribute.server.calls("/async/images/create")[0]
    assert list(distribute.jobs)[0] in r.err
    assert job_id


def test_job_error_exits_5(distribute: Any) -> None:
    r = run_cli(["generate", "please fail", "-p", "distribute", "--seed", "1", "-o", "x.png"])
    assert r.code == 5 and "GPU worker crashed" in r.err
    assert not Path("x.png").exists()


def test_unknown_job_exits_6(distribute: Any) -> None:
    distribute.server.script.append(Response.json({"id": "11111111-2222-4333-8444-555555555555"}))
    r = run_cli(["generate", "x", "-p", "distribute", "--seed", "1"])
    assert r.code == 6 and "does not know job 11111111" in r.err


def test_ctrl_c_while_polling_names_the_job(distribute: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("imagegen_cli.transport.client._sleep", interrupt)
    r = run_cli(["generate", "forever", "-p", "distribute", "--seed", "1", "-o", "x.png"])
    assert r.code == 130
    (job_id,) = distribute.jobs
    assert job_id in r.err and "Traceback" not in r.err
    assert not Path("x.png").exists()


def test_mode_async_from_config(distribute: Any, monkeypatch: pytest.MonkeyPatch,
                                tmp_path: Path) -> None:
    write_config(f'[providers.distribute]\nbase_url = "{distribute.url}"\nmode = "async"\n',
                 monkeypatch, tmp_path)
    r = run_cli(["generate", "x", "-p", "distribute", "-o", "x.png"])
    assert r.code == 0, r.err
    assert distribute.server.calls("/async/images/create")


def test_mode_sync_refuses_async_options(distribute: Any, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    write_config(f'[providers.distribute]\nbase_url = "{distribute.url}"\nmode = "sync"\n',
                 monkeypatch, tmp_path)
    r = run_cli(["generate", "x", "-p", "distribute", "--seed", "3"])
    assert r.code == 2 and "--seed needs Distribute's async API" in r.err
    assert distribute.server.requests == []


@pytest.mark.parametrize("argv, needle", [
    (["--size", "1025x512"], "sides 1..1024"),
    (["--size", "0x512"], "not WIDTHxHEIGHT"),
    (["--steps", "51"], "--steps 51 is out of range"),
    (["--guidance", "11"], "--guidance 11.0 is out of range"),
    (["--guidance", "2.5"], "a whole number 1..10"),
    (["--quality", "hd"], "--quality is not supported by provider distribute"),
])
def test_checks_before_sending(distribute: Any, argv: list[str], needle: str) -> None:
    r = run_cli(["generate", "x", "-p", "distribute", *argv])
    assert r.code == 2, r.err
    assert needle in r.err
    assert distribute.server.requests == []


def test_long_prompt_refused_before_sending(distribute: Any) -> None:
    r = run_cli(["generate", "y" * 1001, "-p", "distribute"])
    assert r.code == 2 and "at most 1000" in r.err
    assert distribute.server.requests == []


def test_aspect_picks_within_1024(distribute: Any) -> None:
    r = run_cli(["generate", "x", "-p", "distribute", "--aspect", "16:9", "-o", "w.png"])
    assert r.code == 0, r.err
    assert "using size 1024x576" in r.err
    assert distribute.server.calls("/v1/images/generations")[0].json()["size"] == "1024x576"


def test_bad_key_exits_4(distribute: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTRIBUTE_API_KEY", "nope-nope")
    r = run_cli(["generate", "x", "-p", "distribute", "--seed", "1"])
    assert r.code == 4 and "nope-nope" not in r.err
