"""`imagegen batch` as real processes: kill -9 and resume, two batches into one
folder, a rate-limiting provider; and the local model loading once per batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import pytest

from tests.conftest import run_cli, stderr_on_terminal, write_config
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.server import Request, Response


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "imagegen_cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))


def images(folder: str) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix == ".png")


def test_kill_9_mid_batch_then_resume(slow: OpenAIFake) -> None:
    n = 24
    Path("p.txt").write_text("\n".join(f"scene {i}" for i in range(n)) + "\n")
    proc = spawn("batch", "p.txt", "-o", "o/", "-j", "4", "-q")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if Path("o").exists() and len(images("o")) >= 6:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    made = len(images("o"))
    assert 0 < made < n, "the kill must land mid-batch"
    # Requests the killed process had on the wire may reach the fake's log a moment
    # later: count once the log has stopped growing.
    sent = -1
    while sent != len(slow.server.requests):
        sent = len(slow.server.requests)
        time.sleep(0.3)
    proc = spawn("batch", "p.txt", "-o", "o/", "-j", "4", "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    files = images("o")
    # exactly one file per expected image: no duplicates (-1 suffixes), none missing
    assert len(files) == n
    assert sorted(f.name.split("-")[0] for f in files) == sorted(f"{i:02d}" for i in
                                                                 range(1, n + 1))
    assert not [p for p in Path("o").iterdir() if p.name.endswith(".part")]
    assert len(slow.server.requests) - sent <= n - made  # finished jobs sent nothing
    recs = [json.loads(line) for line in out.splitlines()]
    assert len(recs) == n and sum(bool(r["skipped"]) for r in recs) == made


def test_the_same_batch_started_twice_at_once_pays_once(slow: OpenAIFake) -> None:
    """A CI retry while the first run still goes: the second says at once that the
    journal is taken (exit 7, nothing sent); the first writes every image once, and the
    same command afterwards sends nothing."""
    n = 40  # 0.2 s a call, two at a time: the first run goes on for about 4 s
    Path("a.txt").write_text("\n".join(f"shared {i}" for i in range(n)) + "\n")
    first = spawn("batch", "a.txt", "-o", "o/", "-j", "2", "--json")
    assert first.stdout is not None
    first.stdout.readline()  # it runs: an image is written
    second = spawn("batch", "a.txt", "-o", "o/", "-j", "2", "--json")
    out2, err2 = second.communicate(timeout=60)
    out1, err1 = first.communicate(timeout=60)
    assert first.returncode == 0, err1
    assert second.returncode == 7 and out2 == "", err2
    assert "Another imagegen batch is running on the journal" in err2
    assert "Traceback" not in err2
    assert len(slow.server.calls("/images/generations")) == n
    assert len(images("o")) == n
    again = spawn("batch", "a.txt", "-o", "o/", "--json")
    out3, _ = again.communicate(timeout=60)
    assert again.returncode == 0
    assert all(json.loads(line)["skipped"] for line in out3.splitlines())
    assert len(slow.server.calls("/images/generations")) == n


def test_two_batches_into_one_folder_overwrite_nothing(slow: OpenAIFake) -> None:
    """Two different batches into one folder, each with its own journal: neither
    overwrites the other."""
    Path("a.txt").write_text("\n".join(f"shared {i}" for i in range(8)) + "\n")
    Path("b.txt").write_text("\n".join(f"shared {i}" for i in range(8)) + "\nonly b\n")
    procs = [spawn("batch", name, "-o", "o/", "-j", "4", "--json", "--state", f"{name}.journal")
             for name in ("a.txt", "b.txt")]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    recs = [json.loads(line) for out, _ in outs for line in out.splitlines()]
    assert len(recs) == 17 and not any(r["skipped"] for r in recs)
    paths = [r["path"] for r in recs]
    assert len(set(paths)) == 17 and len(images("o")) == 17
    import hashlib

    for r in recs:
        assert hashlib.sha256(Path(r["path"]).read_bytes()).hexdigest() == r["sha256"]


def test_rate_limited_provider_ends_with_every_job_done(fake: OpenAIFake) -> None:
    limit, window = 4, 0.5
    real = fake.server.app
    times: deque[float] = deque()
    lock = threading.Lock()
    refused = []

    def app(req: Request) -> Response:
        with lock:
            now = time.monotonic()
            while times and now - times[0] > window:
                times.popleft()
            if len(times) >= limit:
                wait = window - (now - times[0])
                refused.append(now)
                return Response.json({"error": {"message": "Rate limit reached",
                                                "type": "requests", "param": None,
                                                "code": "rate_limit_exceeded"}}, 429,
                                     **{"retry-after-ms": str(int(wait * 1000) + 1),
                                        "retry-after": "1"})
            times.append(now)
        return real(req)

    fake.server.app = app
    Path("p.txt").write_text("\n".join(f"job {i}" for i in range(16)) + "\n")
    proc = spawn("batch", "p.txt", "-o", "o/", "-j", "8", "--json", "--retries", "1")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert len(out.splitlines()) == 16 and len(images("o")) == 16
    assert refused, "the fake must have rate-limited"


def test_local_batch_loads_each_model_once(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("diffusers")
    pytest.importorskip("torch")
    import shutil

    from tests.tiny_pipelines import build

    sd, _ = build(tmp_path / "models")
    other = tmp_path / "models" / "other"
    shutil.copytree(sd, other)
    from tests.tiny_pipelines import count_loads

    loads = count_loads(monkeypatch)
    write_config("", monkeypatch, tmp_path)
    recs = [{"prompt": f"thing {i}"} for i in range(4)] + [
        {"prompt": "elsewhere", "model": str(other)}]
    Path("r.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    r = run_cli(["batch", "r.jsonl", "-p", "local", "-m", str(sd), "--steps", "1",
                 "--size", "32x32", "-o", "o/", "-j", "4", "--json"])
    assert r.code == 0, r.err
    assert sorted(loads) == sorted([str(sd), str(other)])
    assert len(r.lines()) == 5 and len(images("o")) == 5


def test_progress_display_on_a_terminal(slow: OpenAIFake) -> None:
    # stderr a terminal: the rich display (overall bar with done/failed/skipped and
    # images per minute, a line per running job counting its images); stdout, a pipe,
    # still carries the paths, and only them (rich used to take stdout over while its
    # display ran and print them on the terminal).
    import re

    Path("p.txt").write_text("a fox\na cat\na owl\n")
    code, out, screen = stderr_on_terminal("batch", "p.txt", "-o", "o/", "-j", "2",
                                                   "-n", "2")
    assert code == 0, screen
    assert re.search(r"batch .* 3/3 done 3 failed 0 skipped 0\s+\d+ img/min", screen), screen
    assert re.search(r"  1  .* 0/2 +a fox", screen), screen  # a running job's line
    assert "batch: 3 jobs: 3 done" in screen
    assert sorted(out.split()) == sorted(str(p) for p in images("o"))
    assert len(out.split()) == 6
    assert not any(str(p) in screen for p in images("o"))


def test_generate_paths_reach_stdout_while_the_spinner_runs(slow: OpenAIFake) -> None:
    code, out, screen = stderr_on_terminal("generate", "a fox", "-n", "3", "-o",
                                                   "g/")
    assert code == 0, screen
    assert out.split() == [str(p) for p in images("g")]
    assert "3/3 written" in screen and "g/" not in screen


def test_ctrl_c_mid_batch_says_how_to_finish(slow: OpenAIFake) -> None:
    n = 24
    Path("p.txt").write_text("\n".join(f"scene {i}" for i in range(n)) + "\n")
    proc = spawn("batch", "p.txt", "-o", "o/", "-j", "4")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (Path("o").exists() and images("o")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted; nothing half-written" in err
    assert "run the same command again to do the rest" in err
    made = images("o")
    assert sorted(out.split()) == sorted(str(p) for p in made)
    assert not [p for p in Path("o").iterdir() if p.suffix not in (".png", ".jsonl")]
    r = run_cli(["batch", "p.txt", "-o", "o/", "-j", "4"])
    assert r.code == 0, r.err
    assert f"{len(made)} skipped" in r.err and len(images("o")) == n
