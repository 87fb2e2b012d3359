#!/usr/bin/env python3
"""Time imagegen against `import typer` and the official openai CLI (v1), on the
same loopback fake, and measure peak memory as -n grows.

    .venv/bin/python bench/bench.py [--runs 15] [--no-openai] [--help-only]

The openai CLI is installed into bench/.venv-openai on first use (PyPI).
The fake answers every image with the same 1024x1024 PNG of noise (~3 MiB),
the worst case for size. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVE = """
import sys, time
from tests.fakes.openai_fake import OpenAIFake
fake = OpenAIFake(keep_retired=True).start()  # bench covers dall-e-3 too
fake.fixed_image = sys.stdin.buffer.read()
print(fake.url, flush=True)
time.sleep(3600)
"""


class FakeRef:
    def __init__(self, url: str) -> None:
        self.url = url

BIN = Path(sys.executable).parent
KEY = "sk-test-key-123"
DECODE = ("import sys, json, base64; d = json.load(sys.stdin); "
          "open(sys.argv[1], 'wb').write(base64.b64decode(d['data'][0]['b64_json']))")


TIME = shutil.which("time") or "/usr/bin/time"


def run(cmd: list[str] | str, env: dict[str, str], cwd: Path) -> tuple[float, int]:
    """Wall seconds, and peak RSS (KiB) of the command's largest process.

    RSS comes from GNU time wrapping each process: a child forked straight from
    this (bigger) Python process would inherit its high-water mark."""
    if isinstance(cmd, str):
        cmd = ["sh", "-c", cmd]
    fd, rss_file = tempfile.mkstemp()
    os.close(fd)
    start = time.perf_counter()
    proc = subprocess.run([TIME, "-q", "-o", rss_file, "-f", "%M", *cmd], env=env, cwd=cwd,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {cmd}\n{proc.stderr.decode()}")
    rss = int(Path(rss_file).read_text().split()[-1] or 0)
    os.unlink(rss_file)
    return wall, rss


def series(name: str, cmd: list[str] | str, env: dict[str, str], cwd: Path, runs: int,
           rows: list[tuple[str, float, float, int]]) -> float:
    run(cmd, env, cwd)  # warm the page cache
    walls, rss = [], 0
    for _ in range(runs):
        w, r = run(cmd, env, cwd)
        walls.append(w)
        rss = max(rss, r)
    med = statistics.median(walls)
    rows.append((name, med, min(walls), rss))
    return med


def ensure_openai_cli() -> Path | None:
    venv = ROOT / "bench" / ".venv-openai"
    exe = venv / "bin" / "openai"
    if not exe.exists():
        if venv.is_symlink() or venv.exists():
            # A stale or dangling venv (e.g. a link into a deleted temp folder): rebuild.
            import shutil

            if venv.is_symlink():
                venv.unlink()
            else:
                shutil.rmtree(venv)
        print("installing openai<2 into bench/.venv-openai ...", file=sys.stderr)
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)])
        r = made if made.returncode else subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "openai<2"])
        if r.returncode != 0:
            print("could not install the openai CLI: its rows are skipped", file=sys.stderr)
            return None
    return exe


def noise_png() -> bytes:
    from PIL import Image

    im = Image.frombytes("RGB", (1024, 1024), os.urandom(1024 * 1024 * 3))
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--no-openai", action="store_true")
    ap.add_argument("--help-only", action="store_true",
                    help="only `import typer` against `imagegen [COMMAND] --help`")
    args = ap.parse_args()

    # The fake runs in its own process so that its memory and CPU stay out of the
    # figures of the commands measured.
    image = noise_png()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        cwd=ROOT)
    assert server.stdin and server.stdout
    server.stdin.write(image)
    server.stdin.close()
    url = server.stdout.readline().decode().strip()
    fake = FakeRef(url)
    work = Path(tempfile.mkdtemp(prefix="imagegen-bench-"))
    cfg = work / "config.toml"
    cfg.write_text(f'[providers.openai]\nbase_url = "{fake.url}"\n')
    env = {**os.environ, "OPENAI_API_KEY": KEY, "IMAGEGEN_CONFIG": str(cfg),
           "NO_PROXY": "127.0.0.1", "PYTHONDONTWRITEBYTECODE": "0"}
    env.pop("IMAGEGEN_PROVIDER", None)
    imagegen = str(BIN / "imagegen")
    rows: list[tuple[str, float, float, int]] = []

    typer_t = series("python -c 'import typer'", [sys.executable, "-c", "import typer"], env,
                     work, args.runs, rows)
    help_t = series("imagegen --help", [imagegen, "--help"], env, work, args.runs, rows)
    command_help = {cmd: series(f"imagegen {cmd} --help", [imagegen, cmd, "--help"], env, work,
                                args.runs, rows)
                    for cmd in ("generate", "batch", "config")}
    if args.help_only:
        report(rows, [], typer_t, help_t, command_help, None, None)
        server.terminate()
        return
    gen_t = series("imagegen generate (1 image, dall-e-2 b64)",
                   [imagegen, "generate", "a lighthouse", "-m", "dall-e-2", "-q", "-o",
                    str(work / "out") + "/"], env, work, args.runs, rows)
    openai_t = None
    if not args.no_openai:
        exe = ensure_openai_cli()
        if exe:
            cmd = (f"{exe} -b {fake.url}/ api images.generate -m dall-e-2 -p 'a lighthouse' "
                   f"-n 1 --response-format b64_json | {sys.executable} -c \"{DECODE}\" "
                   f"{work}/openai.png")
            openai_t = series("openai CLI + base64 decode (1 image)", cmd, env, work,
                              args.runs, rows)

    mem: list[tuple[str, int]] = []
    for n, model in ((1, "gpt-image-2.6-flare"), (4, "gpt-image-2.6-flare"),
                     (10, "gpt-image-2.6-flare"),
                     (4, "dall-e-3"), (10, "dall-e-3")):
        _, rss = run([imagegen, "generate", "x", "-m", model, "-n", str(n), "-q", "-o",
                      str(work / f"m{n}{model}") + "/"], env, work)
        mem.append((f"imagegen -n {n} ({model})", rss))
    if openai_t is not None:
        _, rss = run([str(ensure_openai_cli()), "-b", fake.url + "/", "api", "images.generate",
                      "-m", "dall-e-2", "-p", "x", "-n", "1", "--response-format", "b64_json"],
                     env, work)
        mem.append(("openai CLI (1 image)", rss))
    server.terminate()
    shutil.rmtree(work, ignore_errors=True)
    print(f"image answered: 1024x1024 PNG, {len(image) / 2**20:.1f} MiB; "
          f"{args.runs} runs each, median / min\n")
    report(rows, mem, typer_t, help_t, command_help, gen_t, openai_t)


def report(rows: list[tuple[str, float, float, int]], mem: list[tuple[str, int]],
           typer_t: float, help_t: float, command_help: dict[str, float],
           gen_t: float | None, openai_t: float | None) -> None:
    print("| command | median s | min s | peak RSS MiB |\n|---|---|---|---|")
    for name, med, mn, rss in rows:
        print(f"| {name} | {med:.3f} | {mn:.3f} | {rss / 1024:.0f} |")
    if mem:
        print("\n| memory run | peak RSS MiB |\n|---|---|")
        for name, rss in mem:
            print(f"| {name} | {rss / 1024:.0f} |")
    print()
    print(f"--help / import typer: {help_t / typer_t:.2f}x (target <= 1.5x)")
    for cmd, t in command_help.items():
        print(f"{cmd} --help / import typer: {t / typer_t:.2f}x (target <= 1.5x)")
    if gen_t and openai_t:
        print(f"generate / openai CLI: {gen_t / openai_t:.2f}x (target <= 0.5x)")


if __name__ == "__main__":
    main()
