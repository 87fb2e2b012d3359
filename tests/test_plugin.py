"""The public provider surface, and a provider written as a third party would.

The plugin is README's own "Writing a provider" example, taken from README.md:
its module and pyproject.toml are written to a temp folder, installed with pip
(offline, into a folder of their own, so the test venv is untouched), found
through the `imagegen.providers` entry point, and driven by the real `imagegen`
in a subprocess, running README's commands against a loopback fake of the
service it speaks to.
"""

from __future__ import annotations

import ast
import base64
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import imagegen_cli.providers as surface
from tests.conftest import write_config
from tests.fakes.server import FakeServer, Request, Response, png

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
KEY = "echo-key-41"

# -- the surface ------------------------------------------------------------


def test_all_names_exactly_what_the_surface_exports() -> None:
    exported = {name for name, value in vars(surface).items()
                if not name.startswith("_")
                # imagegen_cli.providers.base etc.: set on the package by the import system
                and not (isinstance(value, ModuleType)
                         and value.__name__.startswith("imagegen_cli.providers."))}
    assert sorted(exported) == sorted(surface.__all__)
    assert len(set(surface.__all__)) == len(surface.__all__)


def test_the_surface_only_re_exports() -> None:
    """Every name has one home elsewhere; the surface defines nothing."""
    for name in surface.__all__:
        home = getattr(surface, name).__module__
        assert home != "imagegen_cli.providers" and home.startswith("imagegen_cli."), name
    tree = ast.parse(Path(surface.__file__).read_text())
    kinds = {type(node).__name__ for node in tree.body}
    assert kinds <= {"Expr", "ImportFrom", "Assign"}, kinds


def test_importing_the_surface_loads_no_dialect_and_nothing_heavy() -> None:
    # A None entry is a module kept out (transport/__init__ blocks httpx's own CLI), not
    # one loaded.
    code = ("import sys, imagegen_cli.providers\n"
            "print('\\n'.join(sorted(m for m, v in sys.modules.items() if v is not None)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    ours = [m for m in loaded if m.startswith("imagegen_cli.providers.")]
    assert ours == ["imagegen_cli.providers.base", "imagegen_cli.providers.jobs",
                    "imagegen_cli.providers.lifecycle"]
    heavy = [m for m in loaded if m.split(".")[0] in ("httpx", "httpcore", "PIL", "torch",
                                                      "diffusers", "typer", "click", "rich")]
    assert not heavy


DIALECTS = sorted(p for p in (ROOT / "imagegen_cli" / "providers").glob("*.py")
                  if p.name not in ("__init__.py", "base.py", "jobs.py", "lifecycle.py"))


@pytest.mark.parametrize("path", DIALECTS, ids=lambda p: p.name)
def test_built_in_dialects_import_public_names_from_the_surface(path: Path) -> None:
    """As a plugin would: a name the surface offers is taken from the surface."""
    public = set(surface.__all__)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module != "imagegen_cli.providers":
            direct = public & {alias.name for alias in node.names}
            assert not direct, f"{path.name}: {sorted(direct)} from {node.module}"


# -- the plugin, from README ------------------------------------------------


def readme_section() -> str:
    text = README.read_text()
    start = text.index("\n## Writing a provider\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def readme_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", readme_section(), flags=re.S)


def readme_file(lang: str, first_line: str) -> str:
    """The README block that opens with the comment FIRST_LINE (a file's name)."""
    return next(b for b in readme_blocks(lang) if b.startswith(first_line + "\n"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """README's plugin, pip-installed offline into a folder of its own."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed here: pip cannot build the plugin offline")
    src = tmp_path_factory.mktemp("imagegen-echo")
    (src / "imagegen_echo.py").write_text(readme_file("python", "# imagegen_echo.py"))
    (src / "pyproject.toml").write_text(readme_file("toml", "# pyproject.toml"))
    target = tmp_path_factory.mktemp("site")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target), str(src)],
        capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(target.glob("imagegen_echo-*.dist-info/entry_points.txt"))
    return target


class EchoService:
    """A strict fake of README's toy service: POST /v1/render with the Bearer key and a
    JSON body of model, prompt, n, size and optionally seed (nothing else); the images
    come back as base64 PNGs of that size, with a request id."""

    def __init__(self) -> None:
        self.server = FakeServer(self.handle)
        self.url = self.server.url + "/v1"

    def handle(self, req: Request) -> Response:
        if req.headers.get("authorization") != f"Bearer {KEY}":
            return Response.json({"error": "bad key"}, 401)
        if (req.method, req.path) == ("GET", "/v1/models"):
            return Response.json({"models": ["echo-1"]})
        if (req.method, req.path) != ("POST", "/v1/render"):
            return Response.json({"error": "not found"}, 404)
        body = req.json()
        fields = {"model", "prompt", "n", "size"}
        if not fields <= set(body) <= fields | {"seed"} or body["model"] != "echo-1":
            return Response.json({"error": f"bad body {body}"}, 422)
        w, h = (int(v) for v in body["size"].split("x"))
        data = base64.b64encode(png(w, h)).decode()
        return Response.json({"images": [data] * body["n"]}, **{"x-request-id": "req-echo-7"})


@pytest.fixture
def service() -> Iterator[EchoService]:
    s = EchoService()
    s.server.start()
    yield s
    s.server.stop()


def imagegen(args: list[str], site: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The real command line in a fresh interpreter that sees the plugin's folder."""
    full = {**os.environ, "PYTHONPATH": str(site), **env}
    return subprocess.run([sys.executable, "-m", "imagegen_cli", *args], capture_output=True,
                          text=True, env=full, timeout=120)


def readme_commands() -> list[list[str]]:
    """The `imagegen ...` lines of README's shell block, continuation lines joined."""
    block = next(b for b in readme_blocks("sh") if "pip install" in b)
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "imagegen":
            out.append(words[1:])
    return out


def test_readme_plugin_runs_as_written(installed: Path, service: EchoService,
                                       monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    config = write_config("", monkeypatch, tmp_path)
    commands = readme_commands()
    assert [c[:2] for c in commands] == [["providers", "add"], ["providers", "show"],
                                         ["generate", "a red fox"], ["generate", "a red fox"]]
    outputs = []
    for args in commands:
        args = [a.replace("http://127.0.0.1:8000/v1", service.url) for a in args]
        r = imagegen(args, installed, ECHO_API_KEY=KEY)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        outputs.append(r)
    assert 'type = "echo"' in config.read_text()
    shown = outputs[1].stdout
    assert "echo-1" in shown and "--seed" in shown
    dry = json.loads(outputs[2].stdout)
    assert service.url + "/render" in json.dumps(dry)
    assert KEY not in outputs[2].stdout + outputs[2].stderr
    assert len(service.server.calls("/render")) == 1  # the dry run sent nothing
    assert (Path.cwd() / "fox.png").read_bytes().startswith(b"\x89PNG")


def test_plugin_generates_lists_and_answers_json(installed: Path, service: EchoService,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    write_config(f'[providers.myecho]\ntype = "echo"\nbase_url = "{service.url}"\n'
                 'api_key_env = "ECHO_API_KEY"\nmodel = "echo-1"\n', monkeypatch, tmp_path)
    r = imagegen(["providers", "list"], installed, ECHO_API_KEY=KEY)
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith("myecho "))
    assert row.split()[1:3] == ["echo", service.url] and "echo-1" in row
    assert "set via ECHO_API_KEY" in row and KEY not in r.stdout

    r = imagegen(["generate", "x", "-p", "myecho", "-o", "out.png"], installed,
                 ECHO_API_KEY=KEY, IMAGEGEN_DEBUG="1")
    assert r.returncode == 0, r.stderr
    assert f"POST {service.url}/render" in r.stderr and KEY not in r.stderr  # --debug log
    assert Path("out.png").read_bytes().startswith(b"\x89PNG")
    (call,) = service.server.calls("/render")
    assert call.json() == {"model": "echo-1", "prompt": "x", "n": 1, "size": "64x64"}

    # What the engine gives a plugin for free: validation from its capabilities,
    # retries, -n fanned out by max_n, --json, and the request id kept.
    service.server.script.append(Response.json({"error": "busy"}, 503))
    r = imagegen(["generate", "x", "-p", "myecho", "-n", "3", "--seed", "5", "--size",
                  "32x16", "--json", "-o", "many-{index}.png"], installed, ECHO_API_KEY=KEY)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    images = report["images"]
    assert [Path(i["path"]).name for i in images] == ["many-1.png", "many-2.png",
                                                      "many-3.png"]
    assert {i["provider"] for i in images} == {"myecho"}
    assert "req-echo-7" in r.stdout
    # Two calls (max_n 2: 2 + 1), run at once, one of them sent again after the 503.
    bodies = [c.json() for c in service.server.calls("/render")[1:]]
    assert len(bodies) == 3 and {b["n"] for b in bodies} == {1, 2}
    assert {(b["n"], b["seed"]) for b in bodies} == {(2, 5), (1, 7)}
    assert {b["size"] for b in bodies} == {"32x16"}
    assert [(i["width"], i["height"]) for i in images] == [(32, 16)] * 3

    r = imagegen(["info", "many-1.png"], installed)
    assert r.returncode == 0, r.stderr
    assert "myecho" in r.stdout and "req-echo-7" in r.stdout and "echo-1" in r.stdout

    r = imagegen(["generate", "x", "-p", "myecho", "--size", "33x33"], installed,
                 ECHO_API_KEY=KEY)
    assert r.returncode == 2 and "--size 33x33" in r.stderr
    r = imagegen(["generate", "x", "-p", "myecho"], installed)
    assert r.returncode == 3 and "ECHO_API_KEY" in r.stderr


def test_a_plugin_that_cannot_load_is_a_config_error(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path, cli: Any) -> None:
    from imagegen_cli import registry

    monkeypatch.setattr(registry, "_registry", {})
    monkeypatch.setattr(registry, "_loaded", False)
    registry.register("broken", "imagegen_no_such_plugin:BrokenProvider")
    write_config('[providers.b]\ntype = "broken"\nbase_url = "http://127.0.0.1:9/v1"\n',
                 monkeypatch, tmp_path)
    r = cli(["generate", "x", "-p", "b"])
    assert r.code == 3, r.err
    assert "'broken'" in r.err and "imagegen_no_such_plugin" in r.err
    assert "Traceback" not in r.err


def test_a_plugin_cannot_take_a_built_in_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry point named `openai` never replaces the built-in dialect (it would be
    handed OPENAI_API_KEY), and a built-in type is found without reading entry points."""
    import importlib.metadata

    from imagegen_cli import registry
    from imagegen_cli.providers.openai import OpenAIProvider

    class Hijack:
        name, value = "openai", "evil_plugin:Steal"

    class Extra:
        name, value = "mine", "my_plugin:Mine"

    read: list[str] = []

    def entry_points(group: str) -> list[object]:
        read.append(group)
        return [Hijack(), Extra()]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_registry", {})
    monkeypatch.setattr(registry, "_loaded", False)
    assert registry.dialect("openai") is OpenAIProvider
    assert read == []  # a built-in needs no scan
    assert registry.dialect_names() == ["bfl", "distribute", "gemini", "local", "mine", "nebula",
                                        "openai", "xai"]
    assert registry.dialect("openai") is OpenAIProvider and read == ["imagegen.providers"]


def test_a_dialect_default_model_is_listed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           cli: Any) -> None:
    """A dialect that picks its model in code shows it, as a configured model shows."""
    import json

    from imagegen_cli import registry
    from imagegen_cli.providers import Capabilities, Provider

    class Fixed(Provider):
        needs_key = False

        def default_model(self) -> str | None:
            return self.cfg.model or "fixed-1"

        def capabilities(self, model: str | None) -> Capabilities:
            return Capabilities()

    monkeypatch.setattr(registry, "_registry", {})
    monkeypatch.setattr(registry, "_loaded", False)
    registry.register("fixed", Fixed)
    write_config('[providers.f]\ntype = "fixed"\nbase_url = "http://127.0.0.1:9/v1"\n',
                 monkeypatch, tmp_path)
    r = cli(["providers", "list", "--json"])
    assert r.code == 0, r.err
    assert {p["name"]: p["model"] for p in json.loads(r.stdout)}["f"] == "fixed-1"
    r = cli(["providers", "show", "f"])
    assert "model    : fixed-1" in r.stdout
    write_config('[providers.g]\nbase_url = "http://127.0.0.1:9/v1"\n', monkeypatch, tmp_path)
    r = cli(["providers", "list"])
    assert r.code == 3 and "fixed" in r.err and "openai" in r.err  # the types registered
