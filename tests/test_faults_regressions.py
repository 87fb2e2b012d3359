"""The eight breakages of issue 10, each pinned by a test that failed before its fix."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import KEY, run_cli, write_config
from tests.fakes import hostile as H
from tests.fakes.hostile import Hostile
from tests.faults import (
    ROOT,
    assert_clean_failure,
    bomb_png,
    error_lines,
    files_under,
    hostile_server,
    imagegen,
    imagegen_argv,
    imagegen_env,
    noisy_png,
    tiny_disk_fixture,
)

hostile = pytest.fixture(hostile_server)
tiny_disk = pytest.fixture(tiny_disk_fixture)
GEN = "/v1/images/generations"


# 1. A decompression bomb as an answer: exit 6, nothing written.
def test_bomb_answer_exits_6_with_nothing_written(hostile: Hostile) -> None:
    hostile.route(GEN, H.answer(200, H.images_json(bomb_png())))
    r = run_cli(["generate", "x", "-o", "out/x.png"])
    line = assert_clean_failure(r, 6, Path("out"))
    assert "100000x100000" in line and "decompression bomb" in line


# 2. The same PNG as `inpaint --image`: exit 2, one clear line, nothing sent.
def test_bomb_as_inpaint_image_exits_2(hostile: Hostile) -> None:
    Path("bomb.png").write_bytes(bomb_png())
    Path("mask.png").write_bytes(H.image(16, 16))
    r = run_cli(["inpaint", "x", "--image", "bomb.png", "--mask", "mask.png"])
    line = assert_clean_failure(r, 2)
    assert "bomb.png declares 100000x100000 pixels" in line
    assert hostile.requests == []


# 3. A trickling provider: --timeout bounds the whole call, not each read.
@pytest.mark.parametrize("headers_too", [False, True])
def test_trickling_answer_is_cut_at_timeout(hostile: Hostile, headers_too: bool) -> None:
    hostile.route(GEN, H.slowloris(H.images_json(H.image()), every=0.1,
                                   headers_too=headers_too))
    started = time.monotonic()
    r = run_cli(["generate", "x", "-o", "out/x.png", "--timeout", "1.5", "--retries", "0"])
    took = time.monotonic() - started
    line = assert_clean_failure(r, 6, Path("out"))
    assert "1.5 s" in line
    assert took < 4, took  # the whole answer would take minutes


def test_trickling_download_is_cut_at_timeout(hostile: Hostile) -> None:
    hostile.route(GEN, H.url_json(f"{hostile.url}/files/a.png"))
    hostile.route("/files/", H.slowloris(H.image(64, 64), every=0.1), auth=False)
    started = time.monotonic()
    r = run_cli(["generate", "x", "-o", "out/x.png", "--timeout", "1", "--retries", "0"])
    assert time.monotonic() - started < 4
    line = assert_clean_failure(r, 6, Path("out"))
    assert "took longer than 1 s" in line


def test_readme_says_timeout_bounds_the_whole_call() -> None:
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `--timeout"))
    assert "connect" in row and "last byte" in row


# 4. A key in base_url (userinfo or query) is never shown.
SECRET_USER = "sk-userinfo-SECRET-1"
SECRET_QUERY = "sk-query-SECRET-2"


def test_base_url_secrets_redacted_everywhere(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    h = Hostile().route(GEN, H.answer(200, H.images_json(H.image()))).start()
    try:
        host = h.url.removeprefix("http://")
        write_config(f'[providers.gw]\ntype = "openai"\nmodel = "gpt-image-1"\n'
                     'api_key_env = "OPENAI_API_KEY"\n'
                     f'base_url = "http://me:{SECRET_USER}@{host}/v1?api-key={SECRET_QUERY}"\n',
                     monkeypatch, tmp_path)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        runs = [run_cli(["generate", "x", "-p", "gw", "--dry-run"]),
                run_cli(["--debug", "generate", "x", "-p", "gw", "-o", "x.png", "--json"]),
                run_cli(["providers", "show", "gw"]),
                run_cli(["providers", "show", "gw", "--json"]),
                run_cli(["providers", "list"]),
                run_cli(["providers", "list", "--json"]),
                run_cli(["config", "show"]),
                run_cli(["config", "get", "providers.gw.base_url"])]
    finally:
        h.stop()
    assert runs[0].code == 0 and "***@" in runs[0].stdout
    # httpx sends URL userinfo as Basic auth, which this fake (as OpenAI) refuses.
    assert runs[1].code == 4, runs[1].err
    assert h.calls(GEN)[0].path == f"/v1/images/generations?api-key={SECRET_QUERY}"
    for r in runs:
        for text in (r.stdout, r.err):
            assert SECRET_USER not in text and SECRET_QUERY not in text, text


# 5. A key variable ending in CR or LF: exit 3 naming the variable, never the key.
@pytest.mark.parametrize("tail", ["\n", "\r", "\r\n"])
@pytest.mark.parametrize("extra", [[], ["--json"], ["--dry-run"]])
def test_key_with_line_break_exits_3(hostile: Hostile, monkeypatch: pytest.MonkeyPatch,
                                     tail: str, extra: list[str]) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY + tail)
    r = run_cli(["--debug", "generate", "x", *extra])
    line = assert_clean_failure(r, 3)
    assert "OPENAI_API_KEY ends with a line break" in line
    assert KEY not in r.err and KEY not in r.stdout
    assert hostile.requests == []


# 6. Fewer images than asked: asked again, else exit 8 naming the shortfall.
def test_gateway_ignoring_n_is_asked_again(hostile: Hostile) -> None:
    hostile.route(GEN, H.answer(200, H.images_json(H.image())))
    r = run_cli(["generate", "x", "-n", "3", "-o", "out/{index}.png"])
    assert r.code == 0, r.err
    assert r.lines() == ["out/1.png", "out/2.png", "out/3.png"]
    assert [c.json()["n"] for c in hostile.calls(GEN)] == [3, 2, 1]


def test_stream_with_one_completed_event_is_asked_again(hostile: Hostile) -> None:
    hostile.route(GEN, H.answer(200, H.sse(H.stream_events(H.image(), partials=1)),
                                "text/event-stream"))
    r = run_cli(["generate", "x", "-n", "3", "--stream", "-o", "out/{index}.png"])
    assert r.code == 0, r.err
    assert sorted(p.name for p in Path("out").iterdir()) == ["1.png", "2.png", "3.png"]
    assert [c.json()["n"] for c in hostile.calls(GEN)] == [3, 2, 1]


@pytest.mark.parametrize("json_out", [False, True])
def test_shortfall_that_persists_exits_8(hostile: Hostile, json_out: bool) -> None:
    one = H.answer(200, H.images_json(H.image()))
    hostile.route(GEN, H.sequence(one, H.json_answer({"created": 1, "data": []})))
    r = run_cli(["generate", "x", "-n", "3", "-o", "out/{index}.png"]
                + (["--json"] if json_out else []))
    line = assert_clean_failure(r, 8)
    assert "1 of 3 images written" in line and "sent 1 of the 3 images asked for" in line
    assert [p.name for p in files_under(Path("out"))] == ["1.png"]
    if json_out:
        report = json.loads(r.stdout)
        assert len(report["images"]) == 1
        assert "sent 1 of the 3 images asked for" in report["errors"][0]["message"]


# 7. `-n 4 | head -1`: every image written, printing stops, exit 0, no traceback.
def test_closed_stdout_writes_every_image(hostile: Hostile, tmp_path: Path) -> None:
    slow = H.sequence(H.answer(200, H.images_json(H.image())),
                      *[_delayed(H.answer(200, H.images_json(H.image())), 0.4)] * 3)
    hostile.route(GEN, slow)
    out = tmp_path / "pipe"
    cmd = " ".join(shlex.quote(a) for a in imagegen_argv(
        ["generate", "x", "-m", "dall-e-3", "-n", "4", "-o", f"{out}/{{index}}.png"]))
    r = subprocess.run(["bash", "-c", f"{cmd} | head -1; exit ${{PIPESTATUS[0]}}"],
                       capture_output=True, text=True, env=imagegen_env(), timeout=60)
    assert r.stdout == f"{out}/1.png\n"
    assert r.returncode == 0, r.stderr
    for bad in ("Traceback", "Exception ignored", "error", "Broken pipe"):
        assert bad not in r.stderr, r.stderr
    assert sorted(f.name for f in out.iterdir()) == ["1.png", "2.png", "3.png", "4.png"]


def _delayed(behaviour: H.Behaviour, seconds: float) -> H.Behaviour:
    def b(conn: H.Conn, req: H.Req) -> None:
        time.sleep(seconds)
        behaviour(conn, req)
    return b


# 8. `-o - > /dev/full` is exit 7; a disk filling mid `-n 3` is exit 8 naming the images.
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_stdout_to_dev_full_exits_7(hostile: Hostile) -> None:
    hostile.route(GEN, H.answer(200, H.images_json(H.image())))
    with open("/dev/full", "wb") as full:
        p = imagegen(["generate", "x", "-o", "-"], stdout=full, stderr=subprocess.PIPE)
        _, err_b = p.communicate(timeout=30)
    err = err_b.decode()
    assert p.returncode == 7, err
    assert "Traceback" not in err and "Exception ignored" not in err
    (line,) = error_lines(err)
    assert "Cannot write the image to stdout: No space left on device" in line


def test_disk_full_mid_run_exits_8_naming_the_images(hostile: Hostile, tiny_disk: Path) -> None:
    # Three ~43 kB images on a 64 kB disk: the first fits, the other two do not.
    hostile.route(GEN, H.answer(200, H.images_json(*(noisy_png(120, 120, i)
                                                     for i in range(3)))))
    r = run_cli(["generate", "x", "-n", "3", "-o", f"{tiny_disk}/{{index}}.png"])
    line = assert_clean_failure(r, 8)
    assert "1 of 3 images written" in line
    assert "image 2: Cannot write" in line and "image 3: Cannot write" in line
    assert "No space left on device" in line
    assert [p.name for p in files_under(tiny_disk)] == ["1.png"]  # no temp file left
    assert r.lines() == [f"{tiny_disk}/1.png"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_paths_to_a_full_stdout_exit_7_with_every_image_written(hostile: Hostile,
                                                                tmp_path: Path) -> None:
    hostile.route(GEN, H.answer(200, H.images_json(H.image(), H.image())))
    out = tmp_path / "full"
    with open("/dev/full", "wb") as full:
        p = imagegen(["generate", "x", "-n", "2", "-o", f"{out}/{{index}}.png"], stdout=full,
                     stderr=subprocess.PIPE)
        _, err_b = p.communicate(timeout=30)
    err = err_b.decode()
    assert p.returncode == 7, err
    assert "Traceback" not in err and "Exception ignored" not in err
    (line,) = error_lines(err)
    assert "Cannot print the results to stdout: No space left on device" in line
    assert sorted(f.name for f in out.iterdir()) == ["1.png", "2.png"]
