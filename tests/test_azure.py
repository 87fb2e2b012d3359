"""Azure OpenAI (preset `azure`), key headers, deployments and OPENAI_BASE_URL, driven
through the CLI against the strict fake's Azure mode."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import KEY, SLEEPS, run_cli, write_config
from tests.fakes.openai_fake import OpenAIFake, error
from tests.fakes.server import Response, png

AZ_KEY = "azure-key-0123456789abcdef"
DEPLOYMENTS = {"my-deploy": "gpt-image-2.6-flare", "cheap": "gpt-image-1-mini",
               "old": "gpt-image-1", "dalle": "dall-e-3"}


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[OpenAIFake]:
    """The Azure fake as the `azure` preset: endpoint and key from the environment, the
    user's deployments mapped to their real models."""
    f = OpenAIFake(mode="azure", keys=(AZ_KEY,), image_size=(32, 32),
                   deployments=DEPLOYMENTS).start()
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", f.server.url + "/")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZ_KEY)
    write_config('[providers.azure]\nmodel = "my-deploy"\n'
                 'models = { my-deploy = "gpt-image-2.6-flare", cheap = "gpt-image-1-mini", '
                 'old = "gpt-image-1", dalle = "dall-e-3" }\n', monkeypatch, tmp_path)
    yield f
    f.stop()


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str) -> None:
    write_config('[providers.azure]\nmodel = "my-deploy"\n'
                 'models = { my-deploy = "gpt-image-2.6-flare", old = "gpt-image-1" }\n'
                 + extra, monkeypatch, tmp_path)


def test_v1_path_with_api_key_header(azure: OpenAIFake) -> None:
    r = run_cli(["generate", "a fox", "-p", "azure", "-o", "a.png"])
    assert r.code == 0, r.err
    assert r.lines() == ["a.png"]
    (call,) = azure.server.calls("/images/generations")
    assert call.path == "/openai/v1/images/generations"
    assert call.headers["api-key"] == AZ_KEY and "authorization" not in call.headers
    assert call.json() == {"model": "my-deploy", "prompt": "a fox", "n": 1,
                           "output_format": "png"}
    assert azure.azure_routes == [("v1", "my-deploy", None)]
    # The endpoint came from the environment: said once, not with -q.
    assert r.err.count("using AZURE_OPENAI_ENDPOINT") == 1
    r = run_cli(["generate", "a fox", "-p", "azure", "-o", "b.png", "-q"])
    assert r.code == 0 and r.err == ""


def test_deployment_path_with_api_version(azure: OpenAIFake, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _config(tmp_path, monkeypatch, 'api_version = "2025-04-01-preview"\n')
    r = run_cli(["generate", "a fox", "-p", "azure", "-o", "a.png", "--json"])
    assert r.code == 0, r.err
    (call,) = azure.server.calls("/images/generations")
    assert call.path == ("/openai/deployments/my-deploy/images/generations"
                         "?api-version=2025-04-01-preview")
    assert call.headers["api-key"] == AZ_KEY and "authorization" not in call.headers
    assert azure.azure_routes == [("deployment", "my-deploy", "2025-04-01-preview")]
    # Edits take the deployment path too, multipart with the key in api-key.
    png_in = Path("in.png")
    png_in.write_bytes(png(32, 32))
    r = run_cli(["edit", "add a hat", "-p", "azure", "-i", str(png_in), "-o", "e.png"])
    assert r.code == 0, r.err
    (edit,) = azure.server.calls("/images/edits")
    assert edit.path.startswith("/openai/deployments/my-deploy/images/edits?api-version=")
    assert edit.headers["content-type"].startswith("multipart/form-data")
    assert "authorization" not in edit.headers


def test_fake_requires_api_version_on_deployment_path(azure: OpenAIFake) -> None:
    """The fake is strict: the deployment path without api-version is not found."""
    import httpx

    resp = httpx.post(azure.server.url + "/openai/deployments/my-deploy/images/generations",
                      headers={"api-key": AZ_KEY}, json={"prompt": "x"})
    assert resp.status_code == 404


def test_bearer_is_refused_by_azure(azure: OpenAIFake, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An openai-type provider without key_header sends Authorization: Azure refuses it
    (exit 4); key_header = "api-key" is the fix, and `config set` stores it."""
    write_config(f'[providers.corp]\ntype = "openai"\nbase_url = "{azure.url}"\n'
                 'api_key_env = "CORP_KEY"\nmodel = "my-deploy"\n', monkeypatch, tmp_path)
    monkeypatch.setenv("CORP_KEY", AZ_KEY)
    r = run_cli(["generate", "x", "-p", "corp", "-o", "x.png"])
    assert r.code == 4, r.err
    assert "Authorization" in r.err and AZ_KEY not in r.err
    r = run_cli(["config", "set", "providers.corp.key_header", "api-key"])
    assert r.code == 0, r.err
    r = run_cli(["generate", "x", "-p", "corp", "-o", "x.png"])
    assert r.code == 0, r.err
    assert azure.server.calls("/images/generations")[-1].headers["api-key"] == AZ_KEY


def test_deployment_follows_real_model_rules(azure: OpenAIFake) -> None:
    # gpt-image-2.6-flare takes free sizes and complexity; gpt-image-1-mini neither.
    r = run_cli(["generate", "x", "-p", "azure", "-s", "1280x720", "--complexity", "high",
                 "-o", "a.png"])
    assert r.code == 0, r.err
    body = azure.server.calls("/images/generations")[-1].json()
    assert body["model"] == "my-deploy" and body["size"] == "1280x720"
    r = run_cli(["generate", "x", "-p", "azure", "-m", "cheap", "-s", "1280x720"])
    assert r.code == 2 and "1536x1024" in r.err
    r = run_cli(["generate", "x", "-p", "azure", "-m", "cheap", "--complexity", "high"])
    assert r.code == 2
    # gpt-image-1-mini is deprecated (shuts down 2026-12-01): it runs, with a warning.
    r = run_cli(["generate", "x", "-p", "azure", "-m", "cheap", "-s", "1536x1024", "-o",
                 "c.png"])
    assert r.code == 0, r.err
    assert "gpt-image-1-mini is deprecated" in r.err
    assert len(azure.server.calls("/images/generations")) == 2  # the refusals sent nothing
    # dall-e-3 (shut down 2026-05-12) behind a deployment: refused before any call.
    r = run_cli(["generate", "x", "-p", "azure", "-m", "dalle"])
    assert r.code == 2 and "dall-e-3 was shut down" in r.err


def test_shut_down_real_model_refused(azure: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-p", "azure", "-m", "old"])
    assert r.code == 2
    assert "gpt-image-1 was shut down" in r.err and "2026-10-23" in r.err
    assert azure.server.calls("/images/generations") == []
    # `providers show` says which real model each deployment is, and its status.
    r = run_cli(["providers", "show", "azure", "--json"])
    assert r.code == 0, r.err
    models = json.loads(r.stdout)["models"]
    assert models["old"]["real_model"] == "gpt-image-1"
    assert models["old"]["status"].startswith("shut down 2026-10-23")
    assert models["my-deploy"]["status"] == "active"


def test_json_and_metadata_record_deployment_and_real_model(azure: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-p", "azure", "-o", "m.png", "--json"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    assert report["model"] == "my-deploy"
    assert report["extra"]["deployment"] == "my-deploy"
    assert report["extra"]["base_model"] == "gpt-image-2.6-flare"
    r = run_cli(["info", "m.png", "--json"])
    assert r.code == 0, r.err
    (meta,) = json.loads(r.stdout)
    assert "my-deploy" in json.dumps(meta)
    assert "gpt-image-2.6-flare" in json.dumps(meta)
    with Image.open("m.png") as im:
        assert im.size == (32, 32)


def test_dry_run_and_verbose_never_show_the_key(azure: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-p", "azure", "--dry-run"])
    assert r.code == 0, r.err
    (req,) = json.loads(r.stdout)["requests"]
    assert req["url"].endswith("/openai/v1/images/generations")
    assert req["headers"]["api-key"] == "***" and "authorization" not in req["headers"]
    assert AZ_KEY not in r.stdout + r.err
    assert azure.server.requests == []
    r = run_cli(["generate", "x", "-p", "azure", "-o", "v.png", "--debug", "--sidecar"])
    assert r.code == 0, r.err
    assert AZ_KEY not in r.stdout + r.err


def test_custom_key_header_redacted(azure: OpenAIFake, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Any header can carry the key; dry-run masks it wherever it goes."""
    write_config(f'[providers.gw]\ntype = "openai"\nbase_url = "{azure.url}"\n'
                 'api_key_env = "GW_KEY"\nkey_header = "X-Gateway-Token"\n', monkeypatch,
                 tmp_path)
    monkeypatch.setenv("GW_KEY", "gw-secret-98765")
    r = run_cli(["generate", "x", "-p", "gw", "-m", "gpt-image-2", "--dry-run"])
    assert r.code == 0, r.err
    (req,) = json.loads(r.stdout)["requests"]
    assert req["headers"]["x-gateway-token"] == "***"
    assert "gw-secret-98765" not in r.stdout + r.err


def test_bad_config_keys_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config('[providers.azure]\nkey_header = "api key"\n', monkeypatch, tmp_path)
    r = run_cli(["providers", "list"])
    assert r.code == 3 and "key_header must be a header name" in r.err
    write_config('[providers.azure]\nmodels = { my-deploy = 3 }\n', monkeypatch, tmp_path)
    r = run_cli(["providers", "list"])
    assert r.code == 3 and "models maps your deployment names" in r.err


def test_missing_endpoint_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZ_KEY)
    r = run_cli(["generate", "x", "-p", "azure", "-m", "gpt-image-2"])
    assert r.code == 3 and "AZURE_OPENAI_ENDPOINT" in r.err
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com")
    r = run_cli(["generate", "x", "-p", "azure", "-m", "gpt-image-2"])
    assert r.code == 3 and "AZURE_OPENAI_API_KEY" in r.err


def test_costs_follow_the_real_model(azure: OpenAIFake, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Azure's prices are not in the table: --max-cost cannot be honoured (exit 2).
    r = run_cli(["generate", "x", "-p", "azure", "--max-cost", "1"])
    assert r.code == 2 and "providers.azure.prices" in r.err
    assert azure.server.requests == []
    # A price for the real model prices its deployment.
    _config(tmp_path, monkeypatch, '[providers.azure.prices."gpt-image-2.6-flare"]\n'
            'per_image = 0.05\n')
    r = run_cli(["generate", "x", "-p", "azure", "-n", "3", "--max-cost", "0.1"])
    assert r.code == 2 and "0.15" in r.err
    r = run_cli(["generate", "x", "-p", "azure", "-n", "2", "--max-cost", "0.1", "-o", "c/",
                 "--json"])
    assert r.code == 0, r.err
    assert json.loads(r.stdout)["cost_usd"] == pytest.approx(0.1)


def test_retries_and_errors(azure: OpenAIFake) -> None:
    azure.server.script.append(Response.json({"error": {"code": "500", "message": "boom"}},
                                             500))
    r = run_cli(["generate", "x", "-p", "azure", "-o", "r.png"])
    assert r.code == 0, r.err
    assert len(SLEEPS) == 1 and len(azure.server.calls("/images/generations")) == 2
    azure.server.script.append(error(400, "Your task failed as a result of our safety "
                                     "system.", "contentFilter"))
    r = run_cli(["generate", "x", "-p", "azure", "-o", "f.png"])
    assert r.code == 5 and "contentFilter" in r.err
    r = run_cli(["generate", "x", "-p", "azure", "-m", "nope", "-o", "n.png"])
    assert r.code == 5 and "DeploymentNotFound" in r.err


def test_batch_and_fallback(azure: OpenAIFake, fake_openai_too: OpenAIFake) -> None:
    Path("jobs.jsonl").write_text(
        '{"prompt": "one", "output": "b/1.png"}\n'
        '{"prompt": "two", "model": "cheap", "size": "1536x1024", "output": "b/2.png"}\n')
    r = run_cli(["batch", "jobs.jsonl", "-p", "azure"])
    assert r.code == 0, r.err
    assert sorted(p.name for p in Path("b").iterdir()) == ["1.png", "2.png"]
    deployments = sorted(d for _, d, _ in azure.azure_routes)
    assert deployments == ["cheap", "my-deploy"]
    # Azure down -> the same request goes to openai.
    azure.server.script.extend(Response(503, b"down") for _ in range(3))
    r = run_cli(["generate", "x", "-p", "azure,openai", "-m", "my-deploy", "-o", "fb.png",
                 "--json", "--retries", "2"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    assert report["provider"] == "openai"
    assert report["fallbacks"][0]["from"] == "azure"


@pytest.fixture
def fake_openai_too(azure: OpenAIFake, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIFake]:
    """The OpenAI fake beside the Azure one (for fallbacks), openai's default model."""
    f = OpenAIFake(image_size=(32, 32)).start()
    path = tmp_path / "config.toml"
    path.write_text(path.read_text() + f'[providers.openai]\nbase_url = "{f.url}"\n')
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    yield f
    f.stop()


def test_providers_add_with_key_header(tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    write_config("", monkeypatch, tmp_path)
    r = run_cli(["providers", "add", "corp", "--type", "openai", "--base-url",
                 "https://corp.openai.azure.com/openai", "--key-header", "api-key",
                 "--api-version", "2025-04-01-preview", "--api-key-env", "CORP_KEY"])
    assert r.code == 0, r.err
    text = (tmp_path / "config.toml").read_text()
    assert 'key_header = "api-key"' in text and 'api_version = "2025-04-01-preview"' in text
    r = run_cli(["providers", "show", "corp"])
    assert r.code == 0, r.err
    assert "key header: api-key" in r.stdout and "2025-04-01-preview" in r.stdout
    r = run_cli(["providers", "list", "--json"])
    names = {p["name"]: p["type"] for p in json.loads(r.stdout)}
    assert names["azure"] == "openai" and names["xai"] == "xai" and names["corp"] == "openai"
    r = run_cli(["generate", "x", "-p", "corp", "-m", "dep1", "--dry-run"])
    assert r.code == 3 or r.code == 0  # no key: dry-run may still show the request
    monkeypatch.setenv("CORP_KEY", "corp-key-5555")
    r = run_cli(["generate", "x", "-p", "corp", "-m", "dep1", "--dry-run"])
    assert r.code == 0, r.err
    assert json.loads(r.stdout)["requests"][0]["url"] == (
        "https://corp.openai.azure.com/openai/deployments/dep1/images/generations"
        "?api-version=2025-04-01-preview")


# ------------------------------------------------------------ OPENAI_BASE_URL
def test_openai_base_url_is_honoured_with_a_note(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    f = OpenAIFake(image_size=(32, 32)).start()
    try:
        write_config("", monkeypatch, tmp_path)
        monkeypatch.setenv("OPENAI_BASE_URL", f.url + "/")
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        r = run_cli(["generate", "x", "-m", "gpt-image-2", "-n", "12", "-o", "o/"])
        assert r.code == 0, r.err
        assert len(f.server.calls("/images/generations")) == 2  # 10 + 2
        assert r.err.count("using OPENAI_BASE_URL") == 1  # once, for both calls
        r = run_cli(["generate", "x", "-o", "q.png", "-q"])
        assert r.code == 0 and r.err == ""
        # A config file's base_url wins, and no note names the variable then.
        write_config('[providers.openai]\nbase_url = "https://api.openai.com/v1"\n',
                     monkeypatch, tmp_path)
        r = run_cli(["generate", "x", "--dry-run"])
        assert "OPENAI_BASE_URL" not in r.err
        assert json.loads(r.stdout)["requests"][0]["url"].startswith("https://api.openai.com")
    finally:
        f.stop()


def test_plain_http_base_url_is_warned(monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    write_config("", monkeypatch, tmp_path)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.example.com/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    r = run_cli(["generate", "x", "--dry-run", "-q"])
    assert r.code == 0, r.err
    assert "plain http" in r.err and KEY not in r.stdout + r.err
    assert json.loads(r.stdout)["requests"][0]["url"] == (
        "http://proxy.example.com/v1/images/generations")
