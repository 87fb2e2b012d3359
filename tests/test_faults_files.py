"""Files under fault: a read-only folder, a target that is a folder, a symlink or a
FIFO, a disk that fills, kill -9 mid-run, two processes writing the same names."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.fakes import hostile as H
from tests.fakes.hostile import Hostile
from tests.faults import (
    assert_clean_failure,
    files_under,
    hostile_server,
    imagegen,
    mount_tmpfs,
    noisy_png,
    tiny_disk_fixture,
)

hostile = pytest.fixture(hostile_server)
tiny_disk = pytest.fixture(tiny_disk_fixture)
GEN = "/v1/images/generations"


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot write in: a read-only tmpfs as root (root ignores
    mode bits), mode 0555 otherwise."""
    if os.geteuid() == 0:
        yield from mount_tmpfs(tmp_path / "ro", "ro,size=64k")
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


def _whole(path: Path) -> None:
    with Image.open(path) as im:
        im.load()


def test_read_only_folder_exits_7(hostile: Hostile, read_only: Path) -> None:
    hostile.route(GEN, H.answer(200, H.images_json(H.image())))
    r = run_cli(["generate", "x", "-o", f"{read_only}/x.png"])
    line = assert_clean_failure(r, 7, read_only)
    assert "read-only file system" in line.lower() or "permission denied" in line.lower()


def test_target_that_is_a_folder(hostile: Hostile) -> None:
    hostile.route(GEN, H.answer(200, H.images_json(H.image())))
    Path("out/1.png").mkdir(parents=True)
    r = run_cli(["generate", "x", "-o", "out/{index}.png"])
    assert r.code == 0 and r.lines() == ["out/1-1.png"], r.err
    r = run_cli(["generate", "x", "-o", "out/{index}.png", "--overwrite"])
    line = assert_clean_failure(r, 7)
    assert "out/1.png" in line and "directory" in line
    assert Path("out/1.png").is_dir()
    assert sorted(p.name for p in Path("out").iterdir()) == ["1-1.png", "1.png"]


@pytest.mark.parametrize("dangling", [False, True])
def test_target_that_is_a_symlink_is_never_written_through(hostile: Hostile,
                                                           dangling: bool) -> None:
    hostile.route(GEN, H.answer(200, H.images_json(H.image())))
    victim = Path("victim.txt")
    if not dangling:
        victim.write_text("precious")
    Path("x.png").symlink_to(victim.resolve())
    r = run_cli(["generate", "x", "-o", "x.png"])
    assert r.code == 0 and r.lines() == ["x-1.png"], r.err
    assert Path("x.png").is_symlink()
    r = run_cli(["generate", "x", "-o", "x.png", "--overwrite"])
    assert r.code == 0 and r.lines() == ["x.png"], r.err
    assert not Path("x.png").is_symlink()  # the link was replaced, not followed
    _whole(Path("x.png"))
    if dangling:
        assert not victim.exists()
    else:
        assert victim.read_text() == "precious"


def test_target_that_is_a_fifo_is_never_opened(hostile: Hostile) -> None:
    hostile.route(GEN, H.answer(200, H.images_json(H.image())))
    os.mkfifo("x.png")
    r = run_cli(["generate", "x", "-o", "x.png"])  # opening the FIFO would block forever
    assert r.code == 0 and r.lines() == ["x-1.png"], r.err
    assert Path("x.png").exists() and not Path("x.png").is_file()


def test_disk_too_small_for_the_image(hostile: Hostile, tiny_disk: Path) -> None:
    hostile.route(GEN, H.answer(200, H.images_json(noisy_png(200, 200))))
    r = run_cli(["generate", "x", "-o", f"{tiny_disk}/x.png"])
    line = assert_clean_failure(r, 7, tiny_disk)
    assert "No space left on device" in line


def _slow_images(delay: float, size: int = 300) -> H.Behaviour:
    def b(conn: H.Conn, req: H.Req) -> None:
        time.sleep(delay)
        H.answer(200, H.images_json(noisy_png(size, size, int(time.time() * 1e6))))(conn, req)
    return b


def test_kill_9_mid_run_leaves_nothing_half_written(hostile: Hostile, tmp_path: Path) -> None:
    hostile.route(GEN, _slow_images(0.15))
    for attempt, wait in enumerate((0.0, 0.3, 0.8)):
        out = tmp_path / f"k{attempt}"
        p = imagegen(["generate", "x", "-m", "dall-e-3", "-n", "10", "-o",
                      f"{out}/{{index}}.png"], stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL)
        assert p.stdout is not None
        p.stdout.readline()  # the first image is written
        time.sleep(wait)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        p.stdout.close()
        targets = [f for f in files_under(out) if not f.name.startswith(".")]
        assert targets  # at least the first one
        for f in targets:
            _whole(f)  # every file at a target path is complete


def test_two_processes_on_the_same_names_lose_nothing(hostile: Hostile) -> None:
    hostile.route(GEN, _slow_images(0.05, 32))
    args = ["generate", "same", "-m", "dall-e-3", "-n", "6", "-o", "shared/{prompt}.png"]
    procs = [imagegen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e.decode() for _, e in outs]
    printed = [line for o, _ in outs for line in o.decode().splitlines()]
    assert len(printed) == len(set(printed)) == 12  # no name handed out twice
    files = files_under(Path("shared"))
    assert sorted(str(f) for f in files) == sorted(printed)
    for f in files:
        _whole(f)


def test_a_full_disk_stops_new_calls(hostile: Hostile, tmp_path: Path) -> None:
    """A batch whose output disk fills pays for no new call: only the images already in
    flight arrive after it (was: every remaining job sent and thrown away)."""
    # About 60 kB each, 0.2 s apart: the writing thread keeps up, so when the first write
    # fails only the two calls of -j 2 can be in flight (and one answer being written).
    hostile.route(GEN, _slow_images(0.2, 140))
    mounted = mount_tmpfs(tmp_path / "small", "size=256k,mode=0777")
    disk = next(mounted)  # held: the generator unmounts when it is closed
    try:
        Path("p.txt").write_text("".join(f"prompt {i}\n" for i in range(20)))
        r = run_cli(["batch", "p.txt", "-o", f"{disk}/", "-j", "2", "--retries", "0",
                     "--state", str(tmp_path / "journal.jsonl")])
        assert r.code in (7, 8), r.err
        assert "No space left on device" in r.err and "Traceback" not in r.err
        written = [f for f in files_under(disk) if f.suffix == ".png"]
        for f in written:
            _whole(f)
        assert len(hostile.requests) <= len(written) + 2 + 2, len(hostile.requests)
        assert "not run" in r.err
        assert not [f for f in files_under(disk) if f.name.endswith(".part")]
    finally:
        mounted.close()
