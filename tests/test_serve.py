"""`imagegen serve`: OpenAI's Images API in front of the configured providers, driven by
real clients (the official openai SDK, httpx, curl) against the strict fakes; every
answer checked against OpenAI's response schema (tests/openai_schema.py)."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import KEY, write_config
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.server import Request, Response, png
from tests.openai_schema import check_error, check_images_response, check_stream_event
from tests.serve_helpers import TOKEN, Running, free_port, serving

pytest.importorskip("openai")
pytest.importorskip("starlette")


@pytest.fixture
def srv(fake: OpenAIFake, tmp_path: Path) -> Iterator[Running]:
    with serving(tmp_path / "out") as running:
        yield running


def _png_of(b64: str) -> bytes:
    data = base64.b64decode(b64)
    assert data.startswith(b"\x89PNG")
    return data


# ------------------------------------------------------------------ generations

def test_sdk_generate_b64_matches_schema(srv: Running, fake: OpenAIFake) -> None:
    client = srv.client()
    raw = client.images.with_raw_response.generate(model="openai/gpt-image-1",
                                                   prompt="a red fox", size="1024x1024")
    body = json.loads(raw.text)
    check_images_response(body)
    assert raw.headers["x-request-id"].startswith("req_")
    res = raw.parse()
    assert len(res.data or []) == 1 and _png_of(res.data[0].b64_json or "")
    assert res.usage is not None and res.usage.total_tokens == 100
    sent = fake.server.calls("/v1/images/generations")[-1].json()
    assert sent["model"] == "gpt-image-1" and sent["prompt"] == "a red fox"
    assert len(list(srv.output.iterdir())) == 1  # written as generate writes


def test_routing_by_model(srv: Running, fake: OpenAIFake) -> None:
    client = srv.client()
    client.images.generate(model="openai", prompt="x")  # the provider: its default model
    client.images.generate(model="gpt-image-1.5", prompt="x")  # a model of the default
    models = [c.json()["model"] for c in fake.server.calls("/v1/images/generations")]
    assert models[1] == "gpt-image-1.5"
    assert models[0]  # the provider's default model, whatever it is today


def test_url_response_is_served_for_a_while(srv: Running) -> None:
    res = srv.client().images.generate(model="openai/gpt-image-1", prompt="x",
                                       response_format="url")
    url = (res.data or [])[0].url
    assert url and url.startswith(srv.base + "/files/")
    got = httpx.get(url)
    assert got.status_code == 200 and got.content.startswith(b"\x89PNG")
    assert httpx.get(srv.base + "/files/nope.png").status_code == 404


def test_n_images_in_order(srv: Running) -> None:
    res = srv.client().images.generate(model="openai/gpt-image-1", prompt="x", n=3)
    assert len(res.data or []) == 3


def test_extra_body_seed_and_steps_reach_a_provider_that_takes_them(
        fake: OpenAIFake, nebula: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(f'[providers.openai]\nbase_url = "{fake.url}"\n'
                 f'[providers.nebula]\nbase_url = "{nebula.url}"\n', monkeypatch, tmp_path)
    with serving(tmp_path / "out") as running:
        res = running.client().images.generate(
            model="nebula/black-forest-labs/FLUX.1-schnell", prompt="a fox", size="512x512",
            extra_body={"seed": 42, "steps": 3})
        assert len(res.data or []) == 1
        sent = nebula.server.calls("/images/generation")[-1].json()
        assert sent["seed"] == 42 and sent["num_steps"] == 3


def test_unsupported_extra_field_is_400_in_openai_shape(srv: Running) -> None:
    import openai

    client = srv.client(max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="openai/gpt-image-1", prompt="x", extra_body={"seed": 1})
    err = check_error(e.value.response.json())
    assert err["param"] == "seed" and "--" not in err["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="openai/gpt-image-1", prompt="x",
                               extra_body={"sampler": "euler"})
    assert check_error(e.value.response.json())["param"] == "sampler"
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="openai/gpt-image-1", prompt="x",
                               extra_body={"steps": "many"})
    assert check_error(e.value.response.json())["code"] == "invalid_type"


def test_token_required(srv: Running) -> None:
    import openai

    for key in ("wrong-token-xyz", ""):
        with pytest.raises(openai.AuthenticationError) as e:
            srv.client(max_retries=0, api_key=key or "x").images.generate(prompt="x")
        check_error(e.value.response.json())
    assert httpx.get(srv.base + "/models").status_code == 401
    assert httpx.get(srv.url + "/health").json()["status"] == "ok"


def test_models_lists_what_is_routable(srv: Running) -> None:
    ids = [m.id for m in srv.client().models.list()]
    assert "openai" in ids and "openai/gpt-image-2" in ids
    assert "nebula" not in ids  # no key set


def test_stream_events_match_schema(srv: Running) -> None:
    client = srv.client()
    events = list(client.images.generate(model="openai/gpt-image-1", prompt="x", stream=True,
                                         partial_images=2))
    kinds = [e.type for e in events]
    assert kinds == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    with httpx.stream("POST", srv.base + "/images/generations", headers=srv.headers(),
                      json={"model": "openai/gpt-image-1", "prompt": "x", "stream": True,
                            "partial_images": 1}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        datas = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")]
    for ev in datas:
        check_stream_event(ev)
    assert datas[-1]["usage"]["total_tokens"] == 100


def test_stream_from_a_provider_without_frames_sends_the_completed_image(
        nebula: Any, tmp_path: Path) -> None:
    with serving(tmp_path / "out") as running:
        events = list(running.client().images.generate(
            model="nebula/black-forest-labs/FLUX.1-schnell", prompt="x", size="512x512",
            stream=True, partial_images=1))
    assert [e.type for e in events] == ["image_generation.completed"]


# ------------------------------------------------------------------ edits

def test_sdk_edit_multipart(srv: Running, fake: OpenAIFake) -> None:
    image = png(64, 64)
    raw = srv.client().images.with_raw_response.edit(
        model="openai/gpt-image-1", image=("in.png", io.BytesIO(image), "image/png"),
        prompt="make it blue")
    check_images_response(json.loads(raw.text))
    call = fake.server.calls("/v1/images/edits")[-1]
    assert call.headers["content-type"].startswith("multipart/form-data")
    assert b"make it blue" in call.body


def test_sdk_edit_stream(srv: Running) -> None:
    events = list(srv.client().images.edit(
        model="openai/gpt-image-1", image=("in.png", io.BytesIO(png(64, 64)), "image/png"),
        prompt="blue", stream=True, partial_images=1))
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    for ev in events:
        check_stream_event(ev.model_dump(exclude_none=True), kind="image_edit")


def test_edit_json_body_with_a_data_url(srv: Running, fake: OpenAIFake) -> None:
    data = "data:image/png;base64," + base64.b64encode(png(64, 64)).decode()
    r = httpx.post(srv.base + "/images/edits", headers=srv.headers(), timeout=30,
                   json={"model": "openai/gpt-image-1", "prompt": "blue",
                         "images": [{"image_url": data}]})
    assert r.status_code == 200, r.text
    check_images_response(r.json())
    r = httpx.post(srv.base + "/images/edits", headers=srv.headers(),
                   json={"prompt": "blue", "images": [{"file_id": "file_1"}]})
    assert r.status_code == 400 and check_error(r.json())["param"] == "images"


def test_input_image_and_body_caps(fake: OpenAIFake, tmp_path: Path) -> None:
    with serving(tmp_path / "out", max_image=1000, max_body=20000) as running:
        big = png(64, 64) + b"\0" * 2000
        r = httpx.post(running.base + "/images/edits", headers=running.headers(),
                       files={"image": ("a.png", big, "image/png")}, data={"prompt": "x"})
        assert r.status_code == 413 and check_error(r.json())["param"] == "image"
        r = httpx.post(running.base + "/images/generations", headers=running.headers(),
                       json={"prompt": "x" * 30000})
        assert r.status_code == 413
        check_error(r.json())


# ------------------------------------------------------------------ errors and caps

def test_max_cost_per_request_is_402(fake: OpenAIFake, tmp_path: Path) -> None:
    import openai

    with serving(tmp_path / "out", max_cost=0.001) as running, \
            pytest.raises(openai.APIStatusError) as e:
        running.client(max_retries=0).images.generate(model="openai/gpt-image-1",
                                                      prompt="x", quality="high")
    assert e.value.status_code == 402
    assert check_error(e.value.response.json())["code"] == "max_cost_exceeded"
    assert not fake.server.calls("/v1/images/generations")  # nothing sent


def test_max_cost_per_day_is_402_once_spent(fake: OpenAIFake, tmp_path: Path) -> None:
    import openai

    with serving(tmp_path / "out", per_day=0.1) as running:
        client = running.client(max_retries=0)
        client.images.generate(model="openai/gpt-image-1", prompt="x", quality="low")
        spent = running.door.ledger.spent
        assert spent > 0
        with pytest.raises(openai.APIStatusError) as e:
            for _ in range(int(0.1 / spent) + 2):
                client.images.generate(model="openai/gpt-image-1", prompt="x", quality="low")
    assert e.value.status_code == 402


def test_upstream_429_is_429_with_retry_after(srv: Running, fake: OpenAIFake) -> None:
    import openai

    # A short 429 is waited out under the provider's gate (every request queues behind
    # the pause); one that asks for longer than the engine waits reaches the client.
    fake.server.script.append(Response.json(
        {"error": {"message": "Rate limit reached", "type": "requests",
                   "code": "rate_limit_exceeded", "param": None}}, 429,
        **{"retry-after": "7"}))
    assert srv.client().images.generate(model="openai/gpt-image-1", prompt="x").data
    fake.server.script.append(Response.json(
        {"error": {"message": "Rate limit reached", "type": "requests",
                   "code": "rate_limit_exceeded", "param": None}}, 429,
        **{"retry-after": "500"}))
    with pytest.raises(openai.RateLimitError) as e:
        srv.client(max_retries=0).images.generate(model="openai/gpt-image-1", prompt="x")
    assert int(e.value.response.headers["retry-after"]) == 500
    check_error(e.value.response.json())


def test_upstream_down_is_502_and_keys_never_reach_the_client(
        srv: Running, fake: OpenAIFake) -> None:
    import openai

    for _ in range(3):
        fake.server.script.append(Response.json(
            {"error": {"message": f"internal error for key {KEY}", "type": "server_error",
                       "param": None, "code": None}}, 500))
    with pytest.raises(openai.InternalServerError) as e:
        srv.client(max_retries=0).images.generate(model="openai/gpt-image-1", prompt="x")
    assert e.value.status_code == 502
    assert KEY not in e.value.response.text
    fake.keys = ("another-key",)  # the upstream refuses the server's key
    with pytest.raises(openai.APIStatusError) as e:
        srv.client(max_retries=0).images.generate(model="openai/gpt-image-1", prompt="x")
    assert e.value.status_code == 502 and KEY not in e.value.response.text


def test_upstream_unreachable_is_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import openai

    write_config(f'[providers.openai]\nbase_url = "http://127.0.0.1:{free_port()}/v1"\n',
                 monkeypatch, tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with serving(tmp_path / "out") as running, pytest.raises(openai.APIStatusError) as e:
        running.client(max_retries=0).images.generate(model="openai/gpt-image-1",
                                                      prompt="x")
    assert e.value.status_code == 503


def test_requests_queue_through_the_provider_gate(slow: OpenAIFake, tmp_path: Path) -> None:
    """Twelve clients at once, -j 3: the provider never sees more than three."""
    inflight, peak = 0, 0
    lock = threading.Lock()
    real = slow.server.app

    def counting(req: Request) -> Response:
        nonlocal inflight, peak
        with lock:
            inflight += 1
            peak = max(peak, inflight)
        try:
            resp = real(req)
            time.sleep(0.2)
            return resp
        finally:
            with lock:
                inflight -= 1

    slow.server.app = counting
    with serving(tmp_path / "out", concurrency=3) as running:
        def one() -> None:
            running.client().images.generate(model="openai/gpt-image-1", prompt="x")

        threads = [threading.Thread(target=one) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(slow.server.calls("/v1/images/generations")) == 12
    assert peak <= 3


# ------------------------------------------------------------------ the command

def _imagegen(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    import os

    return subprocess.Popen([sys.executable, "-m", "imagegen_cli", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})


def _wait_up(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("serve did not start")


def test_non_loopback_without_token_is_refused(cli: Any) -> None:
    r = cli(["serve", "--host", "0.0.0.0"])
    assert r.code == 2 and "--token" in r.err


def test_generated_token_printed_once_and_sigterm_finishes_in_flight(
        slow: OpenAIFake, tmp_path: Path) -> None:
    import signal

    port = free_port()
    proc = _imagegen("serve", "--port", str(port), "-o", str(tmp_path / "kept"))
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, proc)
        box: dict[str, Any] = {}
        # The token is on stderr, once; read it from the first line.
        assert proc.stderr is not None
        first = proc.stderr.readline()
        token = first.rsplit(" ", 1)[-1].strip()
        assert token.startswith("ig-")

        def call() -> None:
            box["r"] = httpx.post(url + "/v1/images/generations", timeout=30,
                                  headers={"authorization": f"Bearer {token}"},
                                  json={"model": "openai/gpt-image-1", "prompt": "x"})

        t = threading.Thread(target=call)
        t.start()
        time.sleep(0.1)  # in flight at the slow fake
        proc.send_signal(signal.SIGTERM)
        t.join(30)
        rc = proc.wait(30)
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert box["r"].status_code == 200, box["r"].text
    assert rc == 0, rest
    assert token not in rest
    assert len(list((tmp_path / "kept").iterdir())) == 1


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl(srv: Running) -> None:
    out = subprocess.run(
        ["curl", "-sS", "-X", "POST", srv.base + "/images/generations",
         "-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: application/json",
         "-d", json.dumps({"model": "openai/gpt-image-1", "prompt": "a fox"})],
        capture_output=True, text=True, timeout=60, check=True)
    check_images_response(json.loads(out.stdout))
    form = subprocess.run(
        ["curl", "-sS", srv.base + "/images/edits", "-H", f"Authorization: Bearer {TOKEN}",
         "-F", "model=openai/gpt-image-1", "-F", "prompt=blue", "-F",
         f"image=@{_write_png(srv.output.parent / 'in.png')};type=image/png"],
        capture_output=True, text=True, timeout=60, check=True)
    check_images_response(json.loads(form.stdout))


def _write_png(path: Path) -> Path:
    path.write_bytes(png(64, 64))
    return path


def test_help_loads_no_server_stack() -> None:
    code = ("import sys, io, contextlib\n"
            "from imagegen_cli.cli.app import main\n"
            "for a in (['--help'], ['serve', '--help'], ['mcp', '--help']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()): main(a)\n"
            "heavy = {'starlette', 'uvicorn', 'mcp', 'anyio', 'pydantic', 'multipart'}\n"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
            "print(sorted(m for m in sys.modules if m.startswith('imagegen_cli.serve')))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["[]", "[]"]


def test_port_in_use_is_a_usage_error(cli: Any) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli(["serve", "--port", str(port), "--token", TOKEN])
    assert r.code == 2 and "could not listen" in r.err


def test_every_served_image_goes_to_the_history_with_both_request_ids(srv: Running) -> None:
    import sqlite3

    from imagegen_cli.files.history import location

    client = srv.client()
    raw = client.images.with_raw_response.generate(
        model="openai/gpt-image-1", prompt="a lighthouse in fog",
        extra_headers={"X-Client-Request-Id": "client-abc-1"})
    request_id = raw.headers["x-request-id"]
    import os

    db = sqlite3.connect(location(os.environ))
    rows = db.execute("SELECT images.prompt, images.path, runs.command, runs.batch FROM images "
                      "JOIN runs ON runs.id = images.run").fetchall()
    assert len(rows) == 1
    prompt, path, command, part = rows[0]
    assert prompt == "a lighthouse in fog" and Path(path).parent == srv.output
    assert command == "serve"
    assert request_id in part and "client-abc-1" in part
