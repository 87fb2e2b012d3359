"""`imagegen models list|pull|rm` on a hub cache made in the test (nothing downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub")
pytest.importorskip("diffusers")

from tests.conftest import run_cli  # noqa: E402


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from tests.tiny_pipelines import hub_cache, tiny_taesd

    root = tmp_path / "hub"
    taesd = tiny_taesd(tmp_path / "taesd")
    (taesd / "README.md").write_text("---\nlicense: mit\ntags:\n- vae\n---\n# TAESD\n")
    hub_cache(root, "madebyollin/taesd", taesd)
    other = tmp_path / "other"
    other.mkdir()
    (other / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    hub_cache(root, "someone/tiny-sd", other, commit="1" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    return root


def test_list_json_and_text(cache: Path) -> None:
    r = run_cli(["models", "list", "--json"])
    assert r.code == 0, r.err
    models = {m["model"]: m for m in json.loads(r.stdout)["models"]}
    assert set(models) == {"madebyollin/taesd", "someone/tiny-sd"}
    assert models["madebyollin/taesd"]["license"] == "mit"
    assert models["madebyollin/taesd"]["size_bytes"] > 0
    assert models["someone/tiny-sd"]["license"] is None
    r = run_cli(["models", "list"])
    assert r.code == 0
    assert any(line.startswith("madebyollin/taesd\t") and line.endswith("\tmit")
               for line in r.lines())


def test_list_of_an_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "none"))
    r = run_cli(["models", "list", "--json"])
    assert r.code == 0 and json.loads(r.stdout) == {"models": []}
    r = run_cli(["models", "list"])
    assert r.code == 0 and r.stdout == "" and "no models downloaded" in r.err


def test_rm_asks_unless_yes(cache: Path) -> None:
    r = run_cli(["models", "rm", "someone/tiny-sd"])
    assert r.code == 2 and "needs --yes" in r.err
    r = run_cli(["models", "rm", "someone/tiny-sd", "--yes", "--json"])
    assert r.code == 0, r.err
    assert json.loads(r.stdout)["removed"] == "someone/tiny-sd"
    assert not (cache / "models--someone--tiny-sd").exists()
    left = [m["model"] for m in json.loads(run_cli(["models", "list", "--json"]).stdout)["models"]]
    assert left == ["madebyollin/taesd"]
    r = run_cli(["models", "rm", "someone/tiny-sd", "-y"])
    assert r.code == 2 and "not in the model cache" in r.err


def test_pull_offline_says_so(cache: Path) -> None:
    r = run_cli(["models", "pull", "stabilityai/sd-turbo"])  # HF_HUB_OFFLINE=1 in tests
    assert r.code == 3 and "no network (HF_HUB_OFFLINE is set)" in r.err
    r = run_cli(["models", "pull", "./a/folder"])
    assert r.code == 2 and "hub id" in r.err


def test_pull_fetches_only_what_the_pipeline_loads() -> None:
    from imagegen_cli.providers.local_cache import SKIP, patterns

    allow = patterns({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "U"],
                      "safety_checker": [None, None], "vae": ["diffusers", "V"]})
    assert allow == ["model_index.json", "README.md", "LICENSE*", "unet/*", "vae/*"]
    assert "*.bin" in SKIP and "*.fp16.*" in SKIP


class FakeHub:
    """The Hub's read API on 127.0.0.1, as huggingface_hub calls it for one repo:
    `GET /api/models/ID/revision/REV` (its sha), `GET /api/models/ID/tree/REV`
    (its files), `HEAD`/`GET /ID/resolve/REV/PATH` (a file, with X-Repo-Commit and
    ETag). Records each path asked for."""

    def __init__(self, repo: str, files: dict[str, bytes]) -> None:
        import hashlib
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sha = "a" * 40
        fetched: list[str] = []
        self.fetched = fetched

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def answer(self, body: bytes, ctype: str, extra: dict[str, str] | None = None,
                       head: bool = False) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def route(self, head: bool) -> None:
                path = self.path.split("?")[0]
                api = f"/api/models/{repo}/"
                if path.startswith(api + "revision/"):
                    self.answer(json.dumps({"id": repo, "sha": sha, "siblings": [
                        {"rfilename": f} for f in files]}).encode(), "application/json")
                elif path.startswith(api + "tree/"):
                    tree = [{"type": "file", "path": f, "size": len(b),
                             "oid": hashlib.sha1(b).hexdigest()} for f, b in files.items()]
                    self.answer(json.dumps(tree).encode(), "application/json")
                elif path.startswith(f"/{repo}/resolve/"):
                    name = path.split("/resolve/", 1)[1].split("/", 1)[1]
                    if name not in files:
                        self.send_response(404)
                        self.send_header("X-Error-Code", "EntryNotFound")
                        self.end_headers()
                        return
                    if not head:
                        fetched.append(name)
                    data = files[name]
                    self.answer(data, "application/octet-stream",
                                {"X-Repo-Commit": sha,
                                 "ETag": '"' + hashlib.sha256(data).hexdigest() + '"'}, head)
                else:
                    self.send_response(404)
                    self.end_headers()

            def do_GET(self) -> None:
                self.route(head=False)

            def do_HEAD(self) -> None:
                self.route(head=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_pull_from_a_loopback_hub_takes_only_pipeline_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hconst

    index = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "U"],
             "safety_checker": [None, None]}
    files = {"model_index.json": json.dumps(index).encode(),
             "README.md": b"---\nlicense: openrail\n---\n",
             "unet/config.json": b"{}", "unet/diffusion_pytorch_model.safetensors": b"w" * 100,
             "unet/diffusion_pytorch_model.fp16.safetensors": b"h" * 50,
             "unet/diffusion_pytorch_model.bin": b"b" * 100,
             "safety_checker/model.safetensors": b"s" * 100,
             "sd_turbo.safetensors": b"x" * 300}
    hub = FakeHub("org/tiny", files)
    try:
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setattr(hconst, "HF_HUB_OFFLINE", False)  # read once, at import
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
        r = run_cli(["models", "pull", "org/tiny", "-q", "--json"])
        assert r.code == 0, r.err
        folder = Path(json.loads(r.stdout)["path"])
        got = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        assert got == ["README.md", "model_index.json", "unet/config.json",
                       "unet/diffusion_pytorch_model.safetensors"]
        assert "sd_turbo.safetensors" not in hub.fetched
        listed = json.loads(run_cli(["models", "list", "--json"]).stdout)["models"]
        assert [(m["model"], m["license"]) for m in listed] == [("org/tiny", "openrail")]
    finally:
        hub.stop()
