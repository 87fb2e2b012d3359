"""Output naming, never-overwrite and atomic writes."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from imagegen_cli.errors import OutputError, UsageError
from imagegen_cli.files.atomic import UMASK, write_atomic
from imagegen_cli.files.naming import OutputPlan, slug

NOW = datetime(2026, 1, 2, 3, 4, 5)


def path(plan: OutputPlan, prompt: str = "a cat", index: int = 1, count: int = 1) -> str:
    return str(plan.path_for(prompt=prompt, index=index, count=count, ext="png", seed=42,
                             model="acct/gpt-image-1", provider="openai", now=NOW))


@pytest.mark.parametrize("prompt, expected", [
    ("A Cat!", "a-cat"),
    ("../../etc/passwd", "etc-passwd"),
    ("/absolute/path", "absolute-path"),
    ("crème brûlée ☕", "creme-brulee"),
    ("☕☕☕", "image"),
    ("x" * 100, "x" * 40),
    ("лиса в снегу", "lisa-v-snegu"),
    ("雪の中の狐", "xue-no-zhong-no-hu"),
    ("一只猫", "yi-zhi-mao"),
    ("고양이", "go-yang-i"),
    ("Ελληνικά", "ellinika"),
    ("con", "con-image"),
    ("NUL", "nul-image"),
    ("Com1", "com1-image"),
    ("lpt9", "lpt9-image"),
    ("console", "console"),
])
def test_slug_is_safe(prompt: str, expected: str) -> None:
    assert slug(prompt) == expected


def test_template_fields() -> None:
    plan = OutputPlan.from_option("{provider}/{model}-{seed}-{date}-{time}-{index}of{count}.{ext}")
    assert path(plan, count=2) == "openai/acct-gpt-image-1-42-20260102-030405-1of2.png"


def test_prompt_cannot_escape_folder(tmp_path: Path) -> None:
    plan = OutputPlan.from_option(str(tmp_path) + "/{prompt}.{ext}")
    p = Path(path(plan, prompt="../../../../tmp/evil"))
    assert p.parent == tmp_path


def test_directory_and_trailing_slash(tmp_path: Path) -> None:
    assert path(OutputPlan.from_option(str(tmp_path))).startswith(str(tmp_path) + "/20260102-")
    assert path(OutputPlan.from_option("new/")).startswith("new/20260102-030405-a-cat-1")


def test_exact_file_numbers_extra_images() -> None:
    plan = OutputPlan.from_option("out.png")
    assert path(plan, index=1, count=3) == "out.png"
    assert path(plan, index=3, count=3) == "out-3.png"


def test_braces_in_plain_name_are_literal_when_no_field() -> None:
    with pytest.raises(UsageError):
        OutputPlan.from_option("{bad}.png")


def test_write_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    assert write_atomic(target, b"1") == target
    assert write_atomic(target, b"2") == tmp_path / "a-1.png"
    assert target.read_bytes() == b"1"
    assert write_atomic(target, b"3", overwrite=True) == target
    assert target.read_bytes() == b"3"


def test_write_leaves_no_temp_files(tmp_path: Path) -> None:
    write_atomic(tmp_path / "d" / "x.png", b"data")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["x.png"]


def test_companion_names_kept_free(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    assert write_atomic(tmp_path / "a.png", b"1", companions=(".json",)) == tmp_path / "a-1.png"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions")
def test_unwritable_folder(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(OutputError):
            write_atomic(tmp_path / "x.png", b"1")
    finally:
        tmp_path.chmod(0o700)


def test_folder_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match="Cannot create folder"):
        write_atomic(tmp_path / "f" / "x.png", b"1")


def test_reserved_windows_names_in_other_fields() -> None:
    plan = OutputPlan.from_option("{provider}.{ext}")
    got = plan.path_for(prompt="x", index=1, count=1, ext="png", seed=None, model="m",
                        provider="aux", now=NOW)
    assert str(got) == "aux-x.png"


def test_atomic_write_never_touches_the_umask(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    import os


    def forbidden(mask: int) -> int:
        raise AssertionError("os.umask called: it sets the mask process-wide for a moment")

    monkeypatch.setattr(os, "umask", forbidden)
    written = write_atomic(tmp_path / "f.bin", b"x")
    assert written.stat().st_mode & 0o777 == 0o666 & ~UMASK
    assert int(Path("/proc/self/status").read_text().split("Umask:")[1]
                               .split()[0], 8) == UMASK


def test_an_image_and_its_sidecar_are_replaced_as_one(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Writers racing to replace one name with --overwrite --sidecar: the .json beside the
    image always describes that image (the two are written under one folder lock; the
    race is widened here by a pause between the image and its sidecar)."""
    import hashlib
    import io
    import json
    import threading
    import time

    from PIL import Image

    from imagegen_cli.engine import save as save_mod
    from imagegen_cli.engine.save import SaveOptions, Saver
    from imagegen_cli.types import GeneratedImage, ImageRequest

    real = save_mod.write_atomic

    def slow_pair(path: Path, data: bytes, **kw: object) -> Path:
        out = real(path, data, **kw)  # type: ignore[arg-type]
        if path.suffix == ".png":  # the first image written waits longest for its sidecar
            time.sleep(0.05 * (6 - int(threading.current_thread().name[1:])))
        return out

    monkeypatch.setattr(save_mod, "write_atomic", slow_pair)

    def png(shade: int) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (shade, 0, 0)).save(buf, format="PNG")
        return buf.getvalue()

    plan = OutputPlan.from_option(f"{tmp_path}/shared.png", overwrite=True)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        saver = Saver(plan=plan, provider="p", model="m",
                      request=ImageRequest(prompt=f"p{i}", model="m"), count=1,
                      files=SaveOptions(sidecar=True))
        try:
            saver.save(GeneratedImage(index=0, data=png(i * 20)), 1)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,), name=f"w{i}") for i in range(6)]
    for t in threads:
        t.start()
        time.sleep(0.01)  # w0's image first, w5's last
    for t in threads:
        t.join()
    assert not errors
    side = json.loads((tmp_path / "shared.json").read_text())
    assert side["sha256"] == hashlib.sha256((tmp_path / "shared.png").read_bytes()).hexdigest()
