"""The Black Forest Labs dialect, driven through the CLI against the strict fake:
submit once, poll the polling_url it answers, fetch result.sample without the key."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import KEY, SLEEPS, run_cli, write_config
from tests.fakes.bfl_fake import BFLFake
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.server import Response, png


@pytest.fixture
def bfl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[BFLFake]:
    f = BFLFake().start()
    write_config(f'[providers.bfl]\nbase_url = "{f.url}"\n', monkeypatch, tmp_path)
    monkeypatch.setenv("BFL_API_KEY", f.key)
    yield f
    f.stop()


def submits(f: BFLFake) -> list[Any]:
    return [r for r in f.api.requests if r.method == "POST"]


def test_generate_polls_the_returned_url_and_fetches_the_sample_without_the_key(
        bfl: BFLFake) -> None:
    bfl.pending = 2
    r = run_cli(["generate", "a fox", "-p", "bfl", "-s", "256x192", "--seed", "5",
                 "-o", "fox.png"])
    assert r.code == 0, r.err
    (sub,) = submits(bfl)
    assert sub.path == "/v1/flux-2-pro"  # the preset's default model
    assert sub.headers["x-key"] == bfl.key and "authorization" not in sub.headers
    assert sub.json() == {"prompt": "a fox", "width": 256, "height": 192, "seed": 5,
                          "output_format": "png"}
    # Polled where the answer said (another server: a regional endpoint), never rebuilt
    # on the base URL; with the key, since it is the base URL's own host.
    polls = bfl.region.calls("/v1/get_result")
    assert len(polls) == 3 and all(p.headers["x-key"] == bfl.key for p in polls)
    assert not bfl.api.calls("/v1/get_result")
    assert SLEEPS[:2] == [1.0, 1.5]  # Pending twice: backoff from 1 s
    (sample,) = bfl.delivery.requests
    assert "x-key" not in sample.headers and "authorization" not in sample.headers
    assert bfl.leaks == 0
    with Image.open("fox.png") as im:
        assert im.size == (256, 192)


def test_n_2_is_two_submits_with_consecutive_seeds(bfl: BFLFake) -> None:
    r = run_cli(["generate", "a fox", "-p", "bfl", "-n", "2", "--seed", "10", "-s",
                 "128x128", "-o", "d/{index}.png"])
    assert r.code == 0, r.err
    assert sorted(r.lines()) == ["d/1.png", "d/2.png"]
    assert bfl.submits == 2
    assert sorted(s.json()["seed"] for s in submits(bfl)) == [10, 11]


@pytest.mark.parametrize("argv, needle", [
    (["-s", "250x192"], "multiples of 16"),
    (["-s", "48x64"], "sides 64..any"),
    (["-s", "4096x2048"], "at most 4,194,304 pixels"),
    (["--steps", "20"], "--steps is not supported by provider bfl (model flux-2-pro)"),
    (["-m", "flux-2-klein-4b", "--guidance", "3"], "--guidance is not supported"),
    (["-m", "flux-2-flex", "--steps", "51"], "--steps 51 is out of range"),
    (["-m", "flux-2-flex", "--guidance", "1"], "--guidance 1.0 is out of range"),
    (["-m", "flux-kontext-pro", "-s", "1024x1024"], "pass --aspect W:H"),
    (["--param", "width=2048"], "--param width changes what is billed"),
    (["--quality", "high"], "--quality is not supported"),
])
def test_refused_before_sending(bfl: BFLFake, argv: list[str], needle: str) -> None:
    r = run_cli(["generate", "x", "-p", "bfl", *argv])
    assert r.code == 2, r.err
    assert needle in r.err
    assert bfl.api.requests == []


def test_flex_takes_steps_and_guidance(bfl: BFLFake) -> None:
    r = run_cli(["generate", "a poster", "-p", "bfl", "-m", "flux-2-flex", "--steps", "30",
                 "--guidance", "5.5", "--param", "safety_tolerance=4", "-o", "p.jpg"])
    assert r.code == 0, r.err
    (sub,) = submits(bfl)
    assert sub.path == "/v1/flux-2-flex"
    assert sub.json() == {"prompt": "a poster", "steps": 30, "guidance": 5.5,
                          "output_format": "jpeg", "safety_tolerance": 4}
    with Image.open("p.jpg") as im:
        assert im.format == "JPEG"


def test_aspect_on_kontext_is_sent_as_aspect_ratio(bfl: BFLFake) -> None:
    r = run_cli(["generate", "a wide hall", "-p", "bfl", "-m", "flux-kontext-pro",
                 "--aspect", "7:4", "-o", "k.png"])
    assert r.code == 0, r.err
    assert "using the nearest ratio flux-kontext-pro takes, 16:9" in r.err
    body = submits(bfl)[0].json()
    assert body["aspect_ratio"] == "16:9" and "width" not in body


def test_aspect_on_flux2_picks_a_size(bfl: BFLFake) -> None:
    r = run_cli(["generate", "x", "-p", "bfl", "--aspect", "16:9", "-o", "w.png"])
    assert r.code == 0, r.err
    body = submits(bfl)[0].json()
    assert body["width"] % 16 == 0 and body["height"] % 16 == 0
    assert 1.7 < body["width"] / body["height"] < 1.8


def test_edit_sends_references_as_input_image_and_input_image_2(bfl: BFLFake) -> None:
    a, b = png(32, 32, (255, 0, 0)), png(48, 32, (0, 0, 255))
    Path("a.png").write_bytes(a)
    Path("b.png").write_bytes(b)
    r = run_cli(["edit", "the fox from image 1 in the room of image 2", "-p", "bfl",
                 "-i", "a.png", "-i", "b.png", "-o", "e.png"])
    assert r.code == 0, r.err
    body = submits(bfl)[0].json()
    assert set(body) >= {"input_image", "input_image_2"} and "input_image_3" not in body
    for field, size in (("input_image", (32, 32)), ("input_image_2", (48, 32))):
        import io

        with Image.open(io.BytesIO(base64.b64decode(body[field]))) as im:
            assert im.size == size


def test_edit_over_the_models_reference_count(bfl: BFLFake) -> None:
    for i in range(5):
        Path(f"{i}.png").write_bytes(png(16, 16))
    r = run_cli(["edit", "x", "-p", "bfl", "-m", "flux-2-klein-4b",
                 *[a for i in range(5) for a in ("-i", f"{i}.png")]])
    assert r.code == 2 and "takes at most 4" in r.err
    assert bfl.api.requests == []


@pytest.mark.parametrize("status", ["Request Moderated", "Content Moderated"])
def test_moderation_exits_5_naming_the_status(bfl: BFLFake, status: str) -> None:
    bfl.outcome = status
    bfl.details = {"Moderation Reasons": ["Derivative Works Filter"]}
    r = run_cli(["generate", "x", "-p", "bfl", "-o", "m.png"])
    assert r.code == 5, r.err
    assert status in r.err and "Derivative Works Filter" in r.err
    assert not Path("m.png").exists()


def test_error_exits_5_and_task_not_found_exits_6(bfl: BFLFake) -> None:
    bfl.outcome = "Error"
    r = run_cli(["generate", "x", "-p", "bfl"])
    assert r.code == 5 and "failed: Error" in r.err
    bfl.outcome = "Task not found"
    r = run_cli(["generate", "x", "-p", "bfl"])
    assert r.code == 6 and "Task not found" in r.err


def test_timeout_leaves_a_job_that_job_get_finishes(bfl: BFLFake) -> None:
    bfl.pending = 10**6
    r = run_cli(["generate", "a slow fox", "-p", "bfl", "-s", "64x64", "--timeout", "3",
                 "-o", "slow.png"])
    assert r.code == 6, r.err
    (job_id,) = bfl.tasks
    assert f"`imagegen job get bfl {job_id}`" in r.err and "still Pending" in r.err
    assert not Path("slow.png").exists()
    polled = len(bfl.region.requests)
    bfl.pending = 0
    r = run_cli(["job", "get", "bfl", job_id, "--json"])
    assert r.code == 0, r.err
    assert Path("slow.png").exists()  # named as the submitting command would have
    assert json.loads(r.stdout)["images"][0]["path"].endswith("slow.png")
    # Asked at the polling_url the submit answered with, noted with the job.
    assert len(bfl.region.requests) > polled and not bfl.api.calls("/v1/get_result")
    assert bfl.submits == 1 and bfl.leaks == 0


def test_job_get_of_a_bare_id_asks_get_result_on_the_base_url(bfl: BFLFake) -> None:
    r = run_cli(["generate", "x", "-p", "bfl", "-o", "first.png"])
    assert r.code == 0, r.err
    (job_id,) = bfl.tasks
    bfl.tasks[job_id]["ready_at"] = None  # its sample URL not handed out yet
    r = run_cli(["job", "get", "bfl", job_id, "-o", "again.png"])
    assert r.code == 0, r.err
    (ask,) = bfl.api.calls("/v1/get_result")
    assert ask.path == f"/v1/get_result?id={job_id}" and ask.headers["x-key"] == bfl.key
    r = run_cli(["job", "get", "bfl", "no-such-task"])
    assert r.code == 5 and "does not know job no-such-task" in r.err


def test_ctrl_c_while_polling_names_the_job(bfl: BFLFake,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    bfl.pending = 10**6
    monkeypatch.setattr("imagegen_cli.transport.client._sleep", interrupt)
    r = run_cli(["generate", "x", "-p", "bfl", "-o", "x.png"])
    assert r.code == 130
    (job_id,) = bfl.tasks
    assert f"`imagegen job get bfl {job_id}`" in r.err and "Traceback" not in r.err
    assert not Path("x.png").exists()
    monkeypatch.setattr("imagegen_cli.transport.client._sleep", SLEEPS.append)
    bfl.pending = 0
    r = run_cli(["job", "get", "bfl", job_id])
    assert r.code == 0, r.err
    assert r.lines() == ["x.png"] and Path("x.png").exists()
    assert bfl.submits == 1


def test_key_never_goes_to_a_polling_url_on_another_host(bfl: BFLFake) -> None:
    bfl.foreign_poll = True  # polling_url on `localhost`, the base URL is 127.0.0.1
    r = run_cli(["generate", "x", "-p", "bfl", "-o", "f.png"])
    assert r.code == 0, r.err
    (poll,) = bfl.region.requests
    assert poll.headers["host"].startswith("localhost") and "x-key" not in poll.headers
    assert bfl.leaks == 0


def test_expired_sample_exits_5(bfl: BFLFake) -> None:
    bfl.sample_ttl = -1.0
    r = run_cli(["generate", "x", "-p", "bfl", "-o", "gone.png"])
    assert r.code == 5 and "can no longer be downloaded" in r.err
    assert bfl.submits == 1 and bfl.leaks == 0


def test_a_failing_poll_is_asked_again_never_resubmitted(bfl: BFLFake) -> None:
    bfl.poll_failures = 7  # more than one poll's retries
    r = run_cli(["generate", "x", "-p", "bfl", "-o", "ok.png"])
    assert r.code == 0, r.err
    assert bfl.submits == 1 and len(submits(bfl)) == 1
    assert "asking again" in r.err


def test_polls_failing_in_a_row_give_up_naming_job_get(bfl: BFLFake) -> None:
    bfl.poll_failures = 10**6
    r = run_cli(["generate", "x", "-p", "bfl", "-o", "never.png"])
    assert r.code == 6
    (job_id,) = bfl.tasks
    assert f"`imagegen job get bfl {job_id}`" in r.err and "could not be asked" in r.err
    assert len(bfl.region.requests) == 5 * 3  # five polls, each tried three times
    assert bfl.submits == 1


def test_a_lost_submit_answer_is_not_resent(bfl: BFLFake) -> None:
    bfl.lose_answers = 1
    bfl.lose_delay = 2.0
    r = run_cli(["generate", "x", "-p", "bfl", "--timeout", "1", "-o", "l.png"])
    assert r.code == 6
    assert "not sent again" in r.err
    assert bfl.submits == 1 and len(submits(bfl)) == 1


def test_429_on_submit_is_retried(bfl: BFLFake) -> None:
    bfl.api.script.append(Response.json({"detail": "Too many active tasks"}, 429,
                                        **{"retry-after": "0"}))
    r = run_cli(["generate", "x", "-p", "bfl", "-o", "r.png"])
    assert r.code == 0, r.err
    assert len(submits(bfl)) == 2 and bfl.submits == 1  # the first was not accepted


def test_wrong_key_exits_4(bfl: BFLFake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BFL_API_KEY", "bfl-wrong-key-123")
    r = run_cli(["generate", "x", "-p", "bfl"])
    assert r.code == 4 and "bfl-wrong-key-123" not in r.err
    assert bfl.submits == 0


def test_dry_run_prints_the_exact_submit_with_the_key_redacted(bfl: BFLFake) -> None:
    r = run_cli(["generate", "a fox", "-p", "bfl", "-m", "flux-2-max", "-s", "1024x768",
                 "--seed", "3", "--dry-run"])
    assert r.code == 0, r.err
    assert bfl.key not in r.stdout and bfl.key not in r.err
    shown = json.loads(r.stdout)
    (req,) = shown["requests"]
    assert req["method"] == "POST" and req["url"] == f"{bfl.url}/v1/flux-2-max"
    assert req["headers"]["x-key"] == "***"
    assert req["body"] == {"prompt": "a fox", "width": 1024, "height": 768, "seed": 3}
    assert shown["estimated_cost"]["total_usd"] == {"min": 0.07, "max": 0.07}
    assert bfl.api.requests == []


def test_json_records_the_cost_the_submit_answered(bfl: BFLFake) -> None:
    r = run_cli(["generate", "x", "-p", "bfl", "-s", "1440x1440", "--json", "-o", "c.png"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    assert report["provider"] == "bfl" and report["model"] == "flux-2-pro"
    assert report["usage"]["cost_credits"] == 4.5  # 3 + 1.5 for the second megapixel
    assert report["cost_usd"] == 0.045 and report["cost_source"] == "usage"


def test_max_cost_by_the_megapixel(bfl: BFLFake) -> None:
    # 2048x2048 is 4 MP: 0.03 + 3 x 0.015 = $0.075 with flux-2-pro.
    r = run_cli(["generate", "x", "-p", "bfl", "-s", "2048x2048", "--max-cost", "0.05"])
    assert r.code == 2 and "$0.075" in r.err
    assert bfl.api.requests == []
    r = run_cli(["generate", "x", "-p", "bfl", "-s", "2048x2048", "--max-cost", "0.08",
                 "-o", "big.png"])
    assert r.code == 0, r.err


def test_batch_records(bfl: BFLFake) -> None:
    Path("jobs.jsonl").write_text(
        '{"id": "fox", "prompt": "a fox", "size": "128x128"}\n'
        '{"id": "owl", "prompt": "an owl", "model": "flux-2-klein-4b", "seed": 9}\n')
    r = run_cli(["batch", "jobs.jsonl", "-p", "bfl", "-o", "out/"])
    assert r.code == 0, r.err
    paths = {s.path: s.json() for s in submits(bfl)}
    assert paths["/v1/flux-2-pro"]["width"] == 128
    assert paths["/v1/flux-2-klein-4b"]["seed"] == 9
    # BFL answers JPEG unless asked otherwise: the files say so.
    assert sorted(r.lines()) == ["out/fox-a-fox-1.jpg", "out/owl-an-owl-1.jpg"]
    assert all(Path(p).exists() for p in r.lines())


def test_fallback_bfl_then_openai(bfl: BFLFake, monkeypatch: pytest.MonkeyPatch,
                                  tmp_path: Path) -> None:
    oa = OpenAIFake(image_size=(64, 64)).start()
    try:
        write_config(f'[providers.bfl]\nbase_url = "{bfl.url}"\n'
                     f'[providers.openai]\nbase_url = "{oa.url}"\n', monkeypatch, tmp_path)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        for _ in range(3):  # the submit and its two retries
            bfl.api.script.append(Response.json({"detail": "Service Unavailable"}, 503))
        r = run_cli(["generate", "x", "-p", "bfl,openai", "--json", "-o", "fb.png"])
        assert r.code == 0, r.err
        assert "bfl is unavailable" in r.err
        report = json.loads(r.stdout)
        assert report["provider"] == "openai" and report["fallbacks"][0]["from"] == "bfl"
        assert bfl.submits == 0
    finally:
        oa.stop()


def test_providers_check_models_and_show(bfl: BFLFake) -> None:
    r = run_cli(["providers", "check", "bfl"])
    assert r.code == 0, r.err
    assert "123.5 credits" in r.stdout + r.err
    (ask,) = bfl.api.calls("/v1/credits")
    assert ask.headers["x-key"] == bfl.key
    r = run_cli(["providers", "models", "bfl"])
    assert r.code == 0, r.err
    for model in ("flux-2-pro", "flux-2-max", "flux-2-flex", "flux-2-klein-4b",
                  "flux-kontext-pro", "flux-pro-1.1-ultra"):
        assert model in r.stdout
    r = run_cli(["providers", "show", "bfl"])
    assert r.code == 0, r.err
    assert "per megapixel: first 0.03, additional 0.015, input 0.015" in r.stdout
    assert "black-forest-labs/skills" in r.stdout and "read 2026-12-05" in r.stdout


def test_edit_estimate_counts_input_megapixels(bfl: BFLFake) -> None:
    Path("ref.png").write_bytes(png(1024, 1024))
    r = run_cli(["edit", "x", "-p", "bfl", "-i", "ref.png", "--dry-run"])
    assert r.code == 0, r.err
    # 0.03 for the first output megapixel + 0.015 for the 1 MP input image.
    assert json.loads(r.stdout)["estimated_cost"]["total_usd"] == {"min": 0.045,
                                                                   "max": 0.045}


def test_the_fake_refuses_what_bfl_refuses(bfl: BFLFake) -> None:
    def post(path: str, body: Any, **headers: str) -> httpx.Response:
        return httpx.post(bfl.url + path, json=body, headers=headers)

    assert post("/v1/flux-2-pro", {"prompt": "x"},
                authorization=f"Bearer {bfl.key}").status_code == 401
    assert post("/v1/flux-2-pro", {"prompt": "x", "n": 2}, **{"x-key": bfl.key}).status_code \
        == 422
    assert post("/v1/flux-2-pro", {"prompt": "x", "steps": 4},
                **{"x-key": bfl.key}).status_code == 422
    assert post("/v1/flux-2-klein-4b", {"prompt": "x", "input_image_5": "aGk="},
                **{"x-key": bfl.key}).status_code == 422
    assert post("/v1/flux-2-pro", {"prompt": "x", "width": 1000},
                **{"x-key": bfl.key}).status_code == 422
    assert bfl.submits == 0
