"""Every fault the hostile server can play ends in the documented exit code, with one
clear line, no traceback, nothing at the target path and no temp file left."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imagegen_cli.transport.client import MAX_THROTTLED
from tests.conftest import SLEEPS, run_cli, write_config
from tests.fakes import hostile as H
from tests.fakes.hostile import Hostile
from tests.faults import assert_clean_failure, files_under, hostile_server

hostile = pytest.fixture(hostile_server)
GEN = "/v1/images/generations"
OUT = ["-o", "out/{index}.png"]
JSON_ERR = H.json_answer  # alias for readability in the table below

# (name, behaviour for the generations route, extra args, exit code, words in the line,
#  requests expected)
CASES: list[tuple[str, Callable[[Hostile], H.Behaviour], list[str], int, list[str], int]] = [
    # A 429 pauses every call to the provider and is retried without using up --retries
    # (MAX_THROTTLED times), then counts as an attempt.
    ("429 Retry-After seconds", lambda h: H.retry_after("2"), [], 6,
     ["Rate limit reached", "HTTP 429", "after 3 attempts"], MAX_THROTTLED + 3),
    ("429 Retry-After HTTP date", lambda h: H.retry_after(H.http_date(3)), [], 6,
     ["Rate limit reached", "after 3 attempts"], MAX_THROTTLED + 3),
    ("429 Retry-After absurd", lambda h: H.retry_after("999999"), [], 6,
     ["asks to wait 999999 s", "try again later"], 1),
    ("503 Retry-After negative, NaN, garbage", lambda h: H.sequence(
        H.retry_after("-5", 503), H.retry_after("nan", 503), H.retry_after("soon", 503)), [],
     6, ["HTTP 503", "after 3 attempts"], 3),
    ("500 storm", lambda h: H.answer(500, '{"error": {"message": "boom"}}'), [], 6,
     ["unavailable", "HTTP 500"], 3),
    ("502 HTML page", lambda h: H.answer(
        502, "<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1>"
        "</body></html>", "text/html"), [], 6, ["502 Bad Gateway", "HTTP 502"], 3),
    ("503 plain text", lambda h: H.answer(503, "upstream overloaded, try later",
                                          "text/plain"), [], 6,
     ["upstream overloaded, try later", "HTTP 503"], 3),
    ("400 plain text", lambda h: H.answer(400, "bad things", "text/plain"), [], 5,
     ["refused the request: bad things", "HTTP 400"], 1),
    ("empty 200", lambda h: H.answer(200, b""), [], 6, ["malformed body"], 1),
    ("JSON array", lambda h: H.json_answer([1, 2, 3]), [], 6, ["malformed image entry"], 1),
    ("bad base64", lambda h: H.json_answer({"data": [{"b64_json": "iVBO$$$$"}]}), [], 6,
     ["malformed body", "not valid base64"], 1),
    ("JSON string", lambda h: H.json_answer("ok"), [], 6, ["without any image"], 1),
    ("JSON null", lambda h: H.json_answer(None), [], 6, ["without any image"], 1),
    ("HTML as 200", lambda h: H.answer(200, "<html>hello</html>", "text/html"), [], 6,
     ["malformed body"], 1),
    ("slowloris body", lambda h: H.slowloris(H.images_json(H.image()), every=0.1),
     ["--timeout", "1", "--retries", "0"], 6, ["did not finish its answer within 1 s"], 1),
    ("slowloris headers", lambda h: H.slowloris(H.images_json(H.image()), every=0.1,
                                                headers_too=True),
     ["--timeout", "1", "--retries", "0"], 6, ["did not answer within 1 s"], 1),
    ("never answers", lambda h: H.never_answer(), ["--timeout", "1", "--retries", "1"], 6,
     ["did not answer within 1 s", "after 2 attempts"], 2),
    ("reset mid-body", lambda h: H.reset_mid_body(H.images_json(H.image(64, 64)), 100),
     [], 6, ["answer broke off"], 1),
    ("SSE cut mid-event", lambda h: H.cut_after(
        H.sse(H.stream_events(H.image(), partials=1)), 150), ["--stream"], 6,
     ["malformed stream event"], 1),
    ("SSE with no event", lambda h: H.cut_after(b": keep-alive\n\n", 100), ["--stream"], 6,
     ["stream ended before the image was complete"], 1),
    ("image URL with a file: scheme", lambda h: H.url_json("file:///etc/passwd"), [], 6,
     ["scheme 'file'", "only http and https"], 1),
    ("image URL redirecting to ftp:", lambda h: H.url_json(f"{h.url}/files/a.png"), [], 6,
     ["redirects with scheme 'ftp'"], 2),
    ("image URL redirect loop", lambda h: H.url_json(f"{h.url}/files/loop"), [], 6,
     ["redirects more than 5 times"], 7),
    ("image with a gigantic Content-Length", lambda h: H.url_json(f"{h.url}/files/huge"), [],
     6, ["over the 67108864 byte limit"], 2),
    ("image that never ends", lambda h: H.url_json(f"{h.url}/files/endless"), [], 6,
     ["over the 67108864 byte limit"], 2),
    ("image URL answering 404", lambda h: H.url_json(f"{h.url}/files/missing"), [], 5,
     ["HTTP 404"], 2),
    ("SVG served as image/png", lambda h: H.url_json(f"{h.url}/files/svg"), [], 6,
     ["not an image"], 2),
    ("HTML served as image/png", lambda h: H.url_json(f"{h.url}/files/html"), [], 6,
     ["not an image"], 2),
]


def _files(h: Hostile) -> None:
    h.route("/files/a.png", H.redirect("ftp://example.invalid/a.png"), auth=False)
    h.route("/files/loop", H.redirect("/files/loop"), auth=False)
    h.route("/files/huge", H.declares(10**13), auth=False)
    h.route("/files/endless", H.endless(), auth=False)
    h.route("/files/svg", H.serve_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"/>'),
            auth=False)
    h.route("/files/html", H.serve_bytes(b"<!doctype html><title>x</title>"), auth=False)


@pytest.mark.parametrize("name, behaviour, extra, code, words, requests", CASES,
                         ids=[c[0] for c in CASES])
def test_fault_ends_cleanly(hostile: Hostile, name: str,
                            behaviour: Callable[[Hostile], H.Behaviour], extra: list[str],
                            code: int, words: list[str], requests: int) -> None:
    hostile.route(GEN, behaviour(hostile))
    _files(hostile)
    started = time.monotonic()
    r = run_cli(["generate", "x", *OUT, *extra])
    line = assert_clean_failure(r, code, Path("out"))
    for w in words:
        assert w in line, line
    assert len(hostile.requests) == requests, [q.path for q in hostile.requests]
    assert r.stdout == ""
    assert time.monotonic() - started < 10
    assert files_under(Path(".")) == []  # no temp file anywhere in the working folder


def test_retry_after_is_honoured(hostile: Hostile) -> None:
    hostile.route(GEN, H.sequence(H.retry_after("2"), H.retry_after(H.http_date(30)),
                                  H.answer(200, H.images_json(H.image()))))
    r = run_cli(["generate", "x", *OUT])
    assert r.code == 0, r.err
    assert SLEEPS[0] == 2 and 25 < SLEEPS[1] <= 30


def test_redirect_to_another_host_never_carries_the_key(hostile: Hostile) -> None:
    other = Hostile().route("/img.png", H.serve_bytes(H.image()), auth=False).start()
    try:
        hostile.route(GEN, H.url_json(f"{hostile.url}/files/a.png"))
        hostile.route("/files/a.png", H.redirect(f"{other.url}/img.png"), auth=False)
        r = run_cli(["generate", "x", *OUT])
        assert r.code == 0, r.err
        assert r.lines() == ["out/1.png"]
        (got,) = other.requests
        assert "authorization" not in got.headers
        assert all("authorization" not in q.headers for q in hostile.calls("/files/"))
    finally:
        other.stop()


# -- Distribute jobs ----------------------------------------------------------


@pytest.fixture
def dist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Hostile]:
    h = Hostile(key="dist-key-42")
    h.start()
    write_config(f'[providers.distribute]\nbase_url = "{h.url}"\nmode = "async"\n',
                 monkeypatch, tmp_path)
    monkeypatch.setenv("DISTRIBUTE_API_KEY", "dist-key-42")
    yield h
    h.stop()


def _raw_key(inner: H.Behaviour) -> H.Behaviour:
    """Distribute's async API takes the raw key in `authorization` (no Bearer)."""
    def b(conn: H.Conn, req: H.Req) -> None:
        if req.headers.get("authorization") != "dist-key-42":
            conn.respond(401, b'{"message": "Unauthorized"}')
            return
        inner(conn, req)
    return b


@pytest.mark.parametrize("status, words", [
    ("PROCESSING", ["is still PROCESSING after"]),
    ("SOMETHING_NEW", ["is still SOMETHING_NEW after"]),
])
def test_distribute_job_that_never_finishes(dist: Hostile, status: str,
                                            words: list[str]) -> None:
    dist.route("/async/images/create", _raw_key(H.json_answer({"id": "job-1"})), auth=False)
    dist.route("/async/images/result", _raw_key(H.json_answer({"id": "job-1",
                                                               "status": status})),
               auth=False)
    r = run_cli(["generate", "x", "-p", "distribute", *OUT, "--timeout", "20"])
    line = assert_clean_failure(r, 6, Path("out"))
    for w in words:
        assert w in line
    assert "job-1" in line
    assert len(dist.calls("/async/images/result")) > 3


def test_distribute_job_status_not_json(dist: Hostile) -> None:
    dist.route("/async/images/create", _raw_key(H.json_answer({"id": "job-1"})), auth=False)
    dist.route("/async/images/result", _raw_key(H.answer(200, "<html>oops</html>",
                                                         "text/html")), auth=False)
    r = run_cli(["generate", "x", "-p", "distribute", *OUT])
    line = assert_clean_failure(r, 6, Path("out"))
    assert "not JSON" in line


def test_distribute_status_that_never_ends_is_capped(dist: Hostile) -> None:
    dist.route("/async/images/create", _raw_key(H.json_answer({"id": "job-1"})), auth=False)
    dist.route("/async/images/result", _raw_key(H.endless(b"[" * 65536, "application/json",
                                                          b"")), auth=False)
    r = run_cli(["generate", "x", "-p", "distribute", *OUT, "--retries", "0"])
    line = assert_clean_failure(r, 6, Path("out"))
    assert "more than 16777216 bytes" in line


def test_odd_retry_after_values_never_sleep_a_negative_or_nan_time(hostile: Hostile) -> None:
    hostile.route(GEN, H.sequence(H.retry_after("-5", 503), H.retry_after("nan", 503),
                                  H.retry_after(H.http_date(-60), 503),
                                  H.answer(200, H.images_json(H.image()))))
    r = run_cli(["generate", "x", *OUT, "--retries", "3"])
    assert r.code == 0, r.err
    assert len(SLEEPS) == 3 and all(0 <= s < 10 for s in SLEEPS), SLEEPS  # time.sleep(-5)
    # would raise ValueError: an internal error
