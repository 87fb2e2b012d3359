"""`imagegen generate` over the OpenAI dialect, against the strict fake."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import KEY, SLEEPS, run_cli
from tests.fakes.openai_fake import OpenAIFake, error
from tests.fakes.server import Response, png


def test_one_image_path_on_stdout_only(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "a red fox", "-o", "out/fox.png", "-q"])
    assert r.code == 0, r.err
    assert r.lines() == ["out/fox.png"]
    assert r.err == ""
    with Image.open("out/fox.png") as im:
        assert im.format == "PNG"
    body = fake.server.calls("/images/generations")[0].json()
    assert body == {"model": "gpt-image-2.6-flare", "prompt": "a red fox", "n": 1,
                    "output_format": "png"}
    assert fake.server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_default_name_template(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "A Cat / ../../etc on a mat!", "-q"])
    assert r.code == 0, r.err
    (path,) = r.lines()
    assert "/" not in path and path.endswith("-a-cat-etc-on-a-mat-1.png")
    assert Path(path).exists()


def test_never_overwrite_then_overwrite(fake: OpenAIFake) -> None:
    Path("cat.png").write_bytes(b"precious")
    r = run_cli(["generate", "cat", "-o", "cat.png"])
    assert r.lines() == ["cat-1.png"]
    assert Path("cat.png").read_bytes() == b"precious"
    r = run_cli(["generate", "cat", "-o", "cat.png"])
    assert r.lines() == ["cat-2.png"]
    r = run_cli(["generate", "cat", "-o", "cat.png", "--overwrite"])
    assert r.lines() == ["cat.png"]
    assert Path("cat.png").read_bytes().startswith(b"\x89PNG")


def test_count_numbers_continuously_and_template(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "sky", "-n", "3", "-o", "imgs/{model}-{index}-of-{count}.{ext}"])
    assert r.code == 0, r.err
    assert r.lines() == [f"imgs/gpt-image-2.6-flare-{i}-of-3.png" for i in (1, 2, 3)]
    assert len(fake.server.calls("/images/generations")) == 1  # gpt-image: one call, n=3


def test_dalle3_splits_n_into_concurrent_requests(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "sky", "-m", "dall-e-3", "-n", "4", "-o", "d/{index}.{ext}",
                 "--json"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    assert [i["index"] for i in report["images"]] == [1, 2, 3, 4]
    assert [Path(i["path"]).name for i in report["images"]] == ["1.png", "2.png", "3.png",
                                                                "4.png"]
    calls = fake.server.calls("/images/generations")
    assert len(calls) == 4
    assert all(c.json()["n"] == 1 and c.json()["response_format"] == "b64_json" for c in calls)
    assert len(report["request_ids"]) == 4
    assert report["images"][0]["revised_prompt"] == "A revised sky"


def test_count_is_not_capped_and_fans_out_with_j(fake: OpenAIFake) -> None:
    """-n past 10 works: split by the model's per-request n, -j calls at once."""
    fake.server.script.extend(_slow(fake) for _ in range(12))
    import time

    t0 = time.perf_counter()
    r = run_cli(["generate", "sky", "-m", "dall-e-3", "-n", "12", "-j", "12", "-o", "c/"])
    took = time.perf_counter() - t0
    assert r.code == 0, r.err
    assert len(r.lines()) == 12 and len(list(Path("c").iterdir())) == 12
    assert len(fake.server.calls("/images/generations")) == 12
    assert took < 0.3 * 12 / 2  # concurrent: far below 12 calls one after another
    r = run_cli(["generate", "sky", "-m", "dall-e-2", "-n", "23", "-o", "e/"])
    assert r.code == 0, r.err
    assert sorted(c.json()["n"] for c in fake.server.calls("/images/generations")[12:]) == [
        3, 10, 10]
    assert len(list(Path("e").iterdir())) == 23


def _slow(fake: OpenAIFake) -> Any:
    def answer(req: Any) -> Response:
        resp = fake.handle(req)
        resp.delay = 0.3
        return resp
    return answer


def test_jsonl_gives_one_record_per_image(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "sky", "-n", "3", "-o", "l/", "--jsonl"])
    assert r.code == 0, r.err
    recs = [json.loads(line) for line in r.lines()]
    assert sorted(rec["index"] for rec in recs) == [1, 2, 3]
    for rec in recs:
        assert Path(rec["path"]).exists() and rec["skipped"] is False
        assert rec["provider"] == "openai" and rec["model"] == "gpt-image-2.6-flare"
        assert rec["request_id"].startswith("req_") and rec["width"] == 64


def test_json_report(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "sky", "-n", "2", "-o", "j/", "--json"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    assert report["provider"] == "openai" and report["model"] == "gpt-image-2.6-flare"
    assert report["request_id"].startswith("req_")
    assert report["usage"]["total_tokens"] == 200
    assert {"total_s", "first_image_s"} <= set(report["timings"])
    img = report["images"][0]
    data = Path(img["path"]).read_bytes()
    import hashlib

    assert img["sha256"] == hashlib.sha256(data).hexdigest()
    assert img["bytes"] == len(data)
    assert (img["width"], img["height"], img["format"]) == (64, 64, "png")


def test_stdout_image(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "sky", "-o", "-"])
    assert r.code == 0
    assert r.out.startswith(b"\x89PNG")
    assert list(Path(".").iterdir()) == []
    r = run_cli(["generate", "sky", "-o", "-", "-n", "2"])
    assert r.code == 2 and "one image" in r.err


def test_prompt_from_stdin_and_file(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "-", "-o", "a.png"], stdin="from stdin\n")
    assert r.code == 0, r.err
    Path("p.txt").write_text("from a file")
    r = run_cli(["generate", "@p.txt", "-o", "b.png"])
    assert r.code == 0, r.err
    prompts = [c.json()["prompt"] for c in fake.server.calls("/images/generations")]
    assert prompts == ["from stdin", "from a file"]
    r = run_cli(["generate", "@missing.txt"])
    assert r.code == 2 and "missing.txt" in r.err


def test_format_requested_from_gpt_image_and_written_as_is(fake: OpenAIFake) -> None:
    fake.image_size = None
    r = run_cli(["generate", "sky", "-f", "webp", "-o", "x", "--no-metadata"])
    assert r.code == 0, r.err
    (path,) = r.lines()
    assert path == "x.webp"  # -o without an extension gets the right one
    body = fake.server.calls("/images/generations")[0].json()
    assert body["output_format"] == "webp"
    with Image.open(path) as im:
        assert im.format == "WEBP" and im.size == (1024, 1024)


def test_format_converted_when_provider_cannot(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "sky", "-m", "dall-e-2", "-o", "out.jpg"])
    assert r.code == 0, r.err
    assert "output_format" not in fake.server.calls("/images/generations")[0].json()
    with Image.open("out.jpg") as im:
        assert im.format == "JPEG"
    r = run_cli(["generate", "sky", "-o", "out.jpg", "-f", "png"])
    assert r.code == 2 and "-f" in r.err


def test_metadata_and_sidecar(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "a lighthouse", "-o", "m.png", "--sidecar", "--param",
                 "user=abc"])
    assert r.code == 0, r.err
    with Image.open("m.png") as im:
        text = im.text  # type: ignore[attr-defined]
    assert "prompt" not in text  # ComfyUI reads a `prompt` chunk as its own graph
    assert text["provider"] == "openai" and text["model"] == "gpt-image-2.6-flare"
    assert text["parameters"].startswith("a lighthouse\n")
    assert "Model: gpt-image-2.6-flare" in text["parameters"]
    assert json.loads(text["imagegen"])["params"] == {"user": "abc"}
    side = json.loads(Path("m.json").read_text())
    assert side["prompt"] == "a lighthouse" and side["file"] == "m.png"
    r = run_cli(["generate", "a lighthouse", "-o", "n.png", "--no-metadata"])
    with Image.open("n.png") as im:
        assert "prompt" not in im.text  # type: ignore[attr-defined]


def test_param_reaches_body_as_json(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "sky", "--param", "user=u1", "--param", "style=x", "--dry-run"])
    body = json.loads(r.stdout)["requests"][0]["body"]
    assert body["user"] == "u1" and body["style"] == "x"
    r = run_cli(["generate", "sky", "--param", "novalue"])
    assert r.code == 2 and "KEY=VALUE" in r.err


def test_unknown_field_refused_by_fake_exits_5(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "sky", "--param", "bogus=1", "-o", "x.png"])
    assert r.code == 5
    assert "Unrecognized request argument supplied: bogus" in r.err
    assert "req_" in r.err
    assert not Path("x.png").exists()


def test_dry_run_redacts_and_sends_nothing(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "sky", "--dry-run", "-m", "dall-e-3", "-n", "2"])
    assert r.code == 0
    assert KEY not in r.stdout and KEY not in r.err
    plan = json.loads(r.stdout)
    assert len(plan["requests"]) == 2
    assert plan["requests"][0]["headers"]["authorization"] == "Bearer ***"
    assert plan["requests"][0]["url"] == f"{fake.url}/images/generations"
    assert fake.server.requests == []


def test_dry_run_works_without_a_key(fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    r = run_cli(["generate", "sky", "-p", "openai", "--dry-run"])
    assert r.code == 0, r.err


def test_streaming_partials(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "sky", "--stream", "--partial-images", "2", "-o", "s.png"])
    assert r.code == 0, r.err
    assert r.lines() == ["s.png"]
    assert not Path("s.partial-1.png").exists()
    body = fake.server.calls("/images/generations")[0].json()
    assert body["stream"] is True and body["partial_images"] == 2
    r = run_cli(["generate", "sky", "--stream", "--partial-images", "2", "-o", "k.png",
                 "--keep-partials"])
    assert r.lines() == ["k.partial-1.png", "k.partial-2.png", "k.png"]  # kept: listed
    assert Path("k.partial-1.png").exists() and Path("k.partial-2.png").exists()


def test_stream_error_event_exits_5(fake: OpenAIFake) -> None:
    frame = {"type": "error", "error": {"message": "blocked by safety", "code":
                                        "moderation_blocked"}}
    fake.server.script.append(Response(200, [f"event: error\ndata: {json.dumps(frame)}\n\n"
                                             .encode()], {"content-type": "text/event-stream"}))
    r = run_cli(["generate", "sky", "--stream", "-o", "e.png"])
    assert r.code == 5 and "blocked by safety" in r.err
    assert not Path("e.png").exists()


@pytest.mark.parametrize("argv, needle", [
    (["-m", "dall-e-3", "-n", "0"], "-n 0"),
    (["-j", "0"], "-j/--concurrency 0"),
    (["-m", "dall-e-3", "--size", "512x512"], "--size 512x512"),
    (["-m", "dall-e-2", "--style", "vivid"], "--style"),
    (["--seed", "3"], "--seed is not supported by provider openai"),
    (["--quality", "ultra"], "--quality ultra"),
    (["--size", "big"], "not WIDTHxHEIGHT"),
    (["--partial-images", "5"], "--partial-images 5"),
    (["-f", "bmp"], "png, jpeg, webp, gif, svg"),
    (["-o", "{nope}.png"], "Unknown field '{nope}'"),
    (["--keep-partials"], "--keep-partials needs --stream"),
    (["--timeout", "0"], "--timeout"),
])
def test_invalid_usage_exits_2_before_sending(fake: OpenAIFake, argv: list[str],
                                             needle: str) -> None:
    r = run_cli(["generate", "sky", *argv])
    assert r.code == 2, r.err
    assert needle in r.err
    assert r.stdout == ""
    assert "Traceback" not in r.err
    assert fake.server.requests == []


def test_prompt_length_checked_per_model(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "x" * 1001, "-m", "dall-e-2"])
    assert r.code == 2 and "1001 characters" in r.err
    assert fake.server.requests == []


def test_unknown_cli_option_exits_2(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "sky", "--frobnicate"])
    assert r.code == 2 and "--frobnicate" in r.err


def test_missing_key_exits_3_naming_variable(fake: OpenAIFake,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    r = run_cli(["generate", "sky", "-p", "openai"])
    assert r.code == 3
    assert "OPENAI_API_KEY" in r.err and "imagegen config set providers.openai.api_key" in r.err


def test_no_provider_anywhere_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("imagegen_cli.settings.config._local_available", lambda: False)
    r = run_cli(["generate", "sky"])
    assert r.code == 3
    assert "OPENAI_API_KEY" in r.err and "NEBULA_API_KEY" in r.err


def test_unknown_provider_exits_3(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "sky", "-p", "nope"])
    assert r.code == 3 and "Unknown provider 'nope'" in r.err


def test_bad_key_exits_4_and_never_prints_key(fake: OpenAIFake,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-secret-999")
    r = run_cli(["--debug", "generate", "sky", "-o", "x.png"])
    assert r.code == 4
    assert "Incorrect API key" in r.err
    assert "sk-wrong-secret-999" not in r.err + r.stdout
    assert "Bearer ***" in r.err  # the debug log shows the header, redacted


def test_content_policy_exits_5(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "moderation_blocked please", "-o", "x.png"])
    assert r.code == 5
    assert "safety system" in r.err and "moderation_blocked" in r.err


def test_insufficient_quota_is_not_retried(fake: OpenAIFake) -> None:
    fake.server.script.append(error(429, "You exceeded your current quota",
                                    "insufficient_quota", etype="insufficient_quota"))
    r = run_cli(["generate", "sky", "-o", "x.png"])
    assert r.code == 5 and "quota" in r.err
    assert len(fake.server.requests) == 1


def test_retries_honour_retry_after_then_succeed(fake: OpenAIFake) -> None:
    fake.server.script.append(Response(429, b"slow down", {"retry-after": "7"}))
    fake.server.script.append(Response(503, b"<html><title>503 Service Unavailable</title>"
                                       b"</html>", {"content-type": "text/html"}))
    r = run_cli(["generate", "sky", "-o", "x.png"])
    assert r.code == 0, r.err
    assert len(fake.server.requests) == 3
    assert SLEEPS[0] == pytest.approx(7.0, abs=0.1)
    assert 0 < SLEEPS[1] <= 1.0  # backoff for the second try


def test_retry_after_http_date(fake: OpenAIFake) -> None:
    import email.utils
    import time

    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    fake.server.script.append(Response(429, b"", {"retry-after": when}))
    r = run_cli(["generate", "sky", "-o", "x.png"])
    assert r.code == 0
    assert 25 <= SLEEPS[0] <= 31


def test_unavailable_after_retries_exits_6_with_readable_html(fake: OpenAIFake) -> None:
    for _ in range(3):
        fake.server.script.append(Response(502, b"<html><head><title>502 Bad Gateway</title>"
                                           b"</head><body>nginx</body></html>",
                                           {"content-type": "text/html",
                                            "x-request-id": "req_gw"}))
    r = run_cli(["generate", "sky", "-o", "x.png", "--retries", "2"])
    assert r.code == 6
    assert "502 Bad Gateway" in r.err and "req_gw" in r.err and "3 attempts" in r.err
    assert len(fake.server.requests) == 3
    assert not Path("x.png").exists()


def test_huge_retry_after_gives_up_at_once(fake: OpenAIFake) -> None:
    fake.server.script.append(Response(429, b"Too Many Requests", {"retry-after": "86400",
                                                                   "content-type":
                                                                   "text/plain"}))
    r = run_cli(["generate", "sky"])
    assert r.code == 6 and "86400" in r.err and "Too Many Requests" in r.err
    assert SLEEPS == []


def test_connection_refused_exits_6(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[providers.openai]\nbase_url = "http://127.0.0.1:{port}/v1"\n')
    monkeypatch.setenv("IMAGEGEN_CONFIG", str(cfg))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    r = run_cli(["generate", "sky", "--retries", "1"])
    assert r.code == 6 and "Cannot reach 127.0.0.1" in r.err


def test_timeout_exits_6(fake: OpenAIFake) -> None:
    fake.server.script.append(Response(200, b"{}", delay=1.5))
    r = run_cli(["generate", "sky", "--timeout", "0.3", "--retries", "0"])
    assert r.code == 6 and "did not answer within 0.3 s" in r.err


@pytest.mark.parametrize("payload", [
    b'{"created": 1, "data": [{"b64_json": "' + base64.b64encode(png(8, 8)[:-20]) + b'"}]}',
    b'{"created": 1, "data": [{"b64_json": "' + base64.b64encode(b"hello") + b'"}]}',
    b'{"created": 1, "data": [{"b64_json": "%%%notbase64"}]}',
    b'{"created": 1, "data": []}',
    b'<html>oops</html>',
])
def test_corrupt_answers_exit_6_and_leave_nothing(fake: OpenAIFake, payload: bytes) -> None:
    fake.server.script.append(Response(200, payload, {"content-type": "application/json"}))
    r = run_cli(["generate", "sky", "-o", "x.png"])
    assert r.code == 6, r.err
    assert list(Path(".").iterdir()) == []


def test_partial_success_exits_8_listing_written(fake: OpenAIFake) -> None:
    fake.server.script.append(fake.handle)
    fake.server.script.append(error(500, "boom", etype="server_error"))
    fake.server.script.append(error(500, "boom", etype="server_error"))
    fake.server.script.append(error(500, "boom", etype="server_error"))
    r = run_cli(["generate", "sky", "-m", "dall-e-3", "-n", "2", "-o", "p/{index}.png",
                 "--retries", "2"])
    assert r.code == 8, r.err
    assert len(r.lines()) == 1 and Path(r.lines()[0]).exists()
    assert "1 of 2 images written" in r.err


def test_output_not_writable_exits_7(fake: OpenAIFake) -> None:
    Path("afile").write_text("x")
    r = run_cli(["generate", "sky", "-o", "afile/sub/x.png"])
    assert r.code == 7
    assert "afile" in r.err


def test_url_answers_downloaded_without_auth(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "sky", "-m", "dall-e-2", "--param", "response_format=url",
                 "-o", "u.png"])
    assert r.code == 0, r.err
    downloads = fake.server.calls(".png")
    assert downloads and "authorization" not in downloads[0].headers
    assert Path("u.png").read_bytes().startswith(b"\x89PNG")


def test_url_with_bad_scheme_refused(fake: OpenAIFake) -> None:
    fake.server.script.append(Response.json({"created": 1, "data": [{"url": "file:///etc/passwd"}]}))
    r = run_cli(["generate", "sky", "-o", "x.png"])
    assert r.code == 6 and "scheme 'file'" in r.err


def test_url_over_size_cap(fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("imagegen_cli.transport.downloads.DOWNLOAD_CAP", 1000)
    fake.files["big.png"] = png(200, 200) + b"\0" * 5000
    fake.server.script.append(Response.json({"created": 1, "data": [
        {"url": f"{fake.server.url}/files/big.png"}]}))
    r = run_cli(["generate", "sky", "-o", "x.png"])
    assert r.code == 6 and "1000 byte limit" in r.err
    assert not Path("x.png").exists()


def test_undecodable_pixels_exit_6_when_converting(fake: OpenAIFake) -> None:
    import struct
    import zlib

    def chunk(t: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + t + body + struct.pack(
            ">I", zlib.crc32(t + body) & 0xFFFFFFFF)

    # Whole PNG structure (IHDR..IEND) whose IDAT is not zlib data.
    bad = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", b"not zlib at all") + chunk(b"IEND", b""))
    fake.server.script.append(Response.json(
        {"created": 1, "data": [{"b64_json": base64.b64encode(bad).decode()}]}))
    r = run_cli(["generate", "sky", "-m", "dall-e-2", "-o", "x.jpg"])
    assert r.code == 6 and "cannot be decoded" in r.err
    assert not Path("x.jpg").exists()


def test_stream_that_breaks_is_not_retried(fake: OpenAIFake) -> None:
    frame = {"type": "image_generation.partial_image", "partial_image_index": 0,
             "b64_json": base64.b64encode(png(8, 8)).decode()}

    def broken() -> object:
        yield f"event: image_generation.partial_image\ndata: {json.dumps(frame)}\n\n".encode()
        raise ConnectionResetError  # the server drops the connection mid-stream

    fake.server.script.append(Response(200, broken(), {"content-type": "text/event-stream"}))
    r = run_cli(["generate", "sky", "--stream", "--partial-images", "1", "-o", "s.png",
                 "--retries", "3"])
    assert r.code == 6, r.err
    assert len(fake.server.requests) == 1
    assert not Path("s.png").exists()


def test_no_progress_when_stderr_is_not_a_terminal(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "sky", "-n", "2", "-o", "q/"])
    assert r.code == 0
    assert r.err == ""
    assert len(r.lines()) == 2


@pytest.mark.parametrize(("param", "flag"), [
    ("n=8", "-n 8"), ("size=1536x1024", "--size 1536x1024"), ("quality=high", "--quality high"),
    ("model=gpt-image-2", "-m gpt-image-2"), ("partial_images=3", "--partial-images 3"),
])
def test_billed_param_refused_naming_the_flag(fake: OpenAIFake, param: str, flag: str) -> None:
    # Issue 19 item 1: --param n=8 was billed 8, wrote 1 and counted 1 against --max-cost.
    r = run_cli(["generate", "sky", "--param", param, "-o", "x.png", "--max-cost", "1"])
    assert r.code == 2, r.err
    assert "changes what is billed" in r.err and f"pass {flag} instead" in r.err
    assert "Traceback" not in r.err and not fake.server.requests and not Path("x.png").exists()


def test_billed_param_in_batch_record_refused(fake: OpenAIFake, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "sky", "params": {"n": 8}}) + "\n")
    r = run_cli(["batch", str(jobs), "-o", str(tmp_path / "out") + "/"])
    assert r.code == 2, r.err
    assert "--param n=8 changes what is billed" in r.err and '"n" field' in r.err
    assert not fake.server.requests


def test_user_accepted_by_every_model(fake: OpenAIFake) -> None:
    # Issue 19 W2: `user` is in the spec for every model; dall-e-2/3 refused it.
    for i, model in enumerate(("dall-e-2", "dall-e-3", "gpt-image-1")):
        r = run_cli(["generate", "sky", "-m", model, "--user", "u-7", "-q", "-o", f"u{i}.png"])
        assert r.code == 0, r.err
        assert fake.server.calls("/images/generations")[-1].json()["user"] == "u-7"
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save("clear.png")
    r = run_cli(["inpaint", "x", "-m", "dall-e-2", "-i", "clear.png", "--user", "u-7", "-q",
                 "-o", "i.png"])
    assert r.code == 0, r.err
    assert b'name="user"' in fake.server.calls("/images/edits")[-1].body
