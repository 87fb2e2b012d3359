"""Issue 11: what a new user trips over in the first hour (settings, money, waiting)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imagegen_cli.settings.precedence import setting
from imagegen_cli.settings.schema import Config
from tests.conftest import run_cli, write_config

# ---------------------------------------------------------------- settings


def test_pick_reports_the_source() -> None:
    cfg = Config(Path("/c.toml"), True, {}, {}, {"steps": 8}, None,
                        provider_defaults={"nebula": {"steps": 4}},
                        text="[defaults]\nsteps = 8\n[providers.nebula.defaults]\nsteps = 4\n")
    p = setting(cfg, "steps", None, "--steps", provider="openai")
    assert (p.value, p.source.describe()) == (8, "defaults.steps in /c.toml, line 2")
    p = setting(cfg, "steps", None, "--steps", provider="nebula")
    assert p.value == 4 and p.source.describe() == \
        "providers.nebula.defaults.steps in /c.toml, line 4"
    p = setting(cfg, "steps", 2, "--steps", provider="nebula")
    assert p.value == 2 and p.source.describe() == "flag --steps"
    p = setting(cfg, "output", None, "-o", {"IMAGEGEN_OUTPUT": "x/"}, "IMAGEGEN_OUTPUT")
    assert p.source.describe() == "environment variable IMAGEGEN_OUTPUT"


def test_per_provider_defaults_apply_to_that_provider_only(
        nebula: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_config(f'[defaults]\nsize = "1536x1024"\n'
                 f'[providers.nebula]\nbase_url = "{nebula.url}"\n'
                 f'[providers.nebula.defaults]\nsteps = 8\nsize = "512x512"\n',
                 monkeypatch, tmp_path)
    r = run_cli(["generate", "fox", "-p", "nebula", "-o", "a.png"])
    assert r.code == 0, r.err
    body = nebula.server.calls("/images/generation")[0].json()
    assert body["num_steps"] == 8 and (body["width"], body["height"]) == (512, 512)


def test_global_default_a_provider_cannot_honour_is_skipped_with_a_note(
        nebula: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # README's own example, then a provider that takes neither the size nor quality.
    write_config(f'[defaults]\nsize = "1536x1024"\nquality = "high"\nsteps = 6\n'
                 f'[providers.nebula]\nbase_url = "{nebula.url}"\n'
                 f'[providers.nebula.defaults]\n', monkeypatch, tmp_path)
    r = run_cli(["generate", "fox", "-p", "nebula", "-m",
                 "stabilityai/stable-diffusion-xl-base-1.0", "-o", "a.png"])
    assert r.code == 0, r.err
    assert "defaults.quality" in r.err and "not used with nebula" in r.err
    body = nebula.server.calls("/images/generation")[0].json()
    assert "quality" not in body and body["num_steps"] == 6  # steps is honoured
    assert (body["width"], body["height"]) == (1536, 1024)


def test_global_default_out_of_bounds_is_skipped(nebula: Any, monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    write_config(f'[defaults]\nsize = "4096x4096"\n[providers.nebula]\n'
                 f'base_url = "{nebula.url}"\n', monkeypatch, tmp_path)
    r = run_cli(["generate", "fox", "-p", "nebula", "-o", "a.png"])
    assert r.code == 0, r.err
    assert "defaults.size" in r.err
    body = nebula.server.calls("/images/generation")[0].json()
    assert (body["width"], body["height"]) == (1024, 1024)


def test_error_about_a_provider_default_names_file_and_key(
        nebula: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    p = write_config(f'[providers.nebula]\nbase_url = "{nebula.url}"\n'
                     f'[providers.nebula.defaults]\nnegative_prompt = "blur"\n',
                     monkeypatch, tmp_path)
    r = run_cli(["generate", "fox", "-p", "nebula"])
    assert r.code == 2
    assert "providers.nebula.defaults.negative_prompt" in r.err and str(p) in r.err
    assert nebula.server.requests == []


def test_error_about_an_env_value_names_the_variable(fake: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEGEN_OUTPUT", "pic.bmp")
    r = run_cli(["generate", "sky"])
    assert r.code == 2 and "IMAGEGEN_OUTPUT" in r.err


def test_imagegen_model_applies_to_the_default_provider_only(
        nebula: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_config(f'default_provider = "openai"\n[providers.nebula]\n'
                 f'base_url = "{nebula.url}"\n', monkeypatch, tmp_path)
    monkeypatch.setenv("IMAGEGEN_MODEL", "gpt-image-2")
    r = run_cli(["generate", "fox", "-p", "nebula", "-o", "a.png"])
    assert r.code == 0, r.err
    assert "IMAGEGEN_MODEL" in r.err
    body = nebula.server.calls("/images/generation")[0].json()
    assert body["model"] == "black-forest-labs/FLUX.1-schnell"
    r = run_cli(["generate", "fox", "--dry-run"])  # the default provider: applies
    assert json.loads(r.stdout)["model"] == "gpt-image-2"


def test_explicit_output_extension_beats_config_format(
        fake: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_config(f'[defaults]\nformat = "webp"\n[providers.openai]\nbase_url = "{fake.url}"\n',
                 monkeypatch, tmp_path)
    r = run_cli(["generate", "sky", "-o", "x.png"])
    assert r.code == 0, r.err
    assert r.lines() == ["x.png"] and Path("x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = run_cli(["generate", "sky", "-o", "y.png", "-f", "webp"])
    assert r.code == 2  # two flags that disagree are still an error


# ---------------------------------------------------------------- config commands


@pytest.fixture
def cfgfile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "cfg" / "config.toml"
    monkeypatch.setenv("IMAGEGEN_CONFIG", str(path))
    return path


@pytest.mark.parametrize("key, value", [
    ("defaults.quality", "ultra"), ("defaults.format", "bmp"), ("defaults.aspect", "banana"),
    ("defaults.steps", "0"), ("defaults.size", "big"), ("defaults.count", "0"),
    ("defaults.output", "a.bmp"), ("defaults.provider", "nope"),
    ("providers.nebula.defaults.quality", "hd"), ("providers.distribute.mode", "fast"),
])
def test_config_set_checks_values_like_the_flags(cfgfile: Path, key: str, value: str) -> None:
    r = run_cli(["config", "set", key, value])
    assert r.code == 2, r.err
    assert key in r.err and "not stored" in r.err
    assert not cfgfile.exists()


def test_config_set_accepts_good_values(cfgfile: Path) -> None:
    for key, value in [("defaults.quality", "hd"), ("defaults.format", "jpg"),
                       ("defaults.aspect", "16:9"), ("defaults.steps", "8"),
                       ("providers.nebula.defaults.steps", "4")]:
        r = run_cli(["config", "set", key, value])
        assert r.code == 0, r.err
    assert "[providers.nebula.defaults]" in cfgfile.read_text()


def test_config_get_effective_on_a_fresh_config(cfgfile: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    r = run_cli(["config", "get", "defaults.count", "--effective"])
    assert r.code == 0 and r.lines() == ["1\tbuilt-in default"]
    monkeypatch.setenv("IMAGEGEN_OUTPUT", "out/")
    r = run_cli(["config", "get", "defaults.output", "--effective"])
    assert r.lines() == ["out/\tfrom environment variable IMAGEGEN_OUTPUT"]
    run_cli(["config", "set", "providers.nebula.defaults.steps", "4"])
    r = run_cli(["config", "get", "defaults.steps", "--effective", "-p", "nebula"])
    assert r.stdout.startswith("4\tfrom providers.nebula.defaults.steps in ")
    monkeypatch.setenv("NEBULA_API_KEY", "k-123456")
    r = run_cli(["config", "get", "providers.nebula.api_key", "--effective"])
    assert r.lines() == ["***\tkey environment variable NEBULA_API_KEY"]
    assert "k-123456" not in r.stdout


def test_config_show_warns_about_unknown_keys(cfgfile: Path) -> None:
    cfgfile.parent.mkdir()
    cfgfile.write_text('[defaults]\nsizee = "1"\n')
    r = run_cli(["config", "show"])
    assert r.code == 0 and "unknown key 'defaults.sizee'" in r.err


def test_config_unset_of_an_unset_key_is_not_an_error(cfgfile: Path) -> None:
    r = run_cli(["config", "unset", "defaults.size"])
    assert r.code == 0 and "not set" in r.err


# ---------------------------------------------------------------- money and pixels


def test_count_with_seed_sends_consecutive_seeds_on_nebula(nebula: Any) -> None:
    r = run_cli(["generate", "fox", "-p", "nebula", "-n", "3", "--seed", "42", "--json",
                 "-o", "n/{index}-{seed}.png"])
    assert r.code == 0, r.err
    sent = sorted(c.json()["seed"] for c in nebula.server.calls("/images/generation"))
    assert sent == [42, 43, 44]
    images = json.loads(r.stdout)["images"]
    assert [(i["index"], i["seed"]) for i in images] == [(1, 42), (2, 43), (3, 44)]
    assert [Path(i["path"]).name for i in images] == ["1-42.png", "2-43.png", "3-44.png"]


def test_count_with_seed_sends_consecutive_seeds_on_distribute(distribute: Any) -> None:
    r = run_cli(["generate", "fox", "-p", "distribute", "-n", "2", "--seed", "7", "--json"])
    assert r.code == 0, r.err
    sent = sorted(c.json()["seed"] for c in distribute.server.calls("/async/images/create"))
    assert sent == [7, 8]
    assert [i["seed"] for i in json.loads(r.stdout)["images"]] == [7, 8]
    r = run_cli(["generate", "fox", "-p", "distribute", "-n", "2", "--seed", "7", "--dry-run"])
    assert [c["body"]["seed"] for c in json.loads(r.stdout)["requests"]] == [7, 8]


def test_unwritable_output_folder_is_found_before_paying(fake: Any) -> None:
    Path("afile").write_text("not a folder")
    r = run_cli(["generate", "sky", "-o", "afile/sub/x.png"])
    assert r.code == 7, r.err
    assert "afile" in r.err
    assert fake.server.calls("/images/generations") == []


def test_nebula_size_bounds_checked_before_sending(nebula: Any) -> None:
    r = run_cli(["generate", "fox", "-p", "nebula", "-s", "4096x4096"])
    assert r.code == 2 and "2048" in r.err
    assert nebula.server.requests == []


def test_key_in_config_and_env_differ_says_which_is_used(
        fake: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    p = write_config(f'[providers.openai]\nbase_url = "{fake.url}"\n'
                     'api_key = "sk-stored-999"\n', monkeypatch, tmp_path)
    p.chmod(0o600)
    r = run_cli(["generate", "sky", "-o", "a.png"])
    assert r.code == 0, r.err
    assert "using OPENAI_API_KEY" in r.err and "sk-stored-999" not in r.err


def test_401_names_where_the_key_came_from(fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-0000")
    r = run_cli(["generate", "sky", "-o", "a.png"])
    assert r.code == 4
    assert "environment variable OPENAI_API_KEY" in r.err and "sk-wrong-0000" not in r.err


def test_output_gif_refused_and_noext_gets_extension(fake: Any) -> None:
    r = run_cli(["generate", "sky", "-o", "pic.bmp"])
    assert r.code == 2 and ".png" in r.err
    # gif only from a model that draws it (gpt-image-2.6), else refused the same way.
    r = run_cli(["generate", "sky", "-m", "gpt-image-2", "-o", "pic.gif"])
    assert r.code == 2 and ".png" in r.err
    assert fake.server.calls("/images/generations") == []
    r = run_cli(["generate", "sky", "-o", "noext"])
    assert r.code == 0 and r.lines() == ["noext.png"]
    assert Path("noext.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("flag", ["--sidecar", "--keep-partials"])
def test_stdout_output_refuses_file_only_flags(fake: Any, flag: str) -> None:
    r = run_cli(["generate", "sky", "-o", "-", "--stream", flag])
    assert r.code == 2 and flag in r.err and "-o -" in r.err


# ---------------------------------------------------------------- waiting, visibly


def test_retries_are_one_plain_line_each_on_stderr(fake: Any) -> None:
    from tests.fakes.server import Response

    fake.server.script.append(Response(429, b"slow down", {"retry-after": "58"}))
    fake.server.script.append(Response(503, b"busy"))
    r = run_cli(["generate", "sky", "-o", "x.png"])
    assert r.code == 0, r.err
    lines = [ln for ln in r.err.splitlines() if "retrying" in ln]
    # A 429 pauses every call to the provider and does not use up --retries.
    assert lines[0] == ("note: 429 from openai, retrying in 58 s (rate limited: this wait "
                        "does not use up --retries)")
    assert lines[1].startswith("note: 503 from openai, retrying in ")
    assert lines[1].endswith("(attempt 2 of 3)") and len(lines) == 2
    fake.server.script.append(Response(429, b"slow down", {"retry-after": "3"}))
    r = run_cli(["generate", "sky", "-o", "y.png", "-q"])
    assert r.code == 0 and r.err == ""


def test_terminal_progress_counts_written_jobs_and_download_speed() -> None:
    from imagegen_cli.cli.report import RichReporter

    rep = RichReporter()
    task = rep.progress.tasks[0]
    rep.written(2, 4)
    assert task.fields["detail"] == "2/4 written"
    rep.job_status("aaaaaaaa-1", "QUEUED")
    rep.job_status("bbbbbbbb-2", "PROCESSING")
    assert task.description == "job aaaaaaaa QUEUED, job bbbbbbbb PROCESSING"
    rep.download(0, 3_000_000)
    rep.download(1_500_000, 3_000_000)
    detail = task.fields["detail"]
    assert detail.startswith("2/4 written, 1.5 MB / 3.0 MB, ") and detail.endswith("/s")


def test_job_left_running_is_fetched_later_with_same_naming_and_metadata(
        distribute: Any) -> None:
    from PIL import Image

    r = run_cli(["generate", "forever fox", "-p", "distribute", "--seed", "5", "--timeout",
                 "3", "-o", "out/{prompt}-{index}-{seed}.{ext}"])
    assert r.code == 6
    (job_id,) = distribute.jobs
    assert f"imagegen job get distribute {job_id}" in r.err
    distribute.jobs[job_id]["body"]["prompt"] = "now done"  # the fake finishes it
    r = run_cli(["job", "get", "distribute", job_id])
    assert r.code == 0, r.err
    assert r.lines() == ["out/forever-fox-1-5.png"]
    with Image.open("out/forever-fox-1-5.png") as im:
        text = im.text  # type: ignore[attr-defined]
        assert text["parameters"].startswith("forever fox\n") and text["seed"] == "5"
    r = run_cli(["job", "get", "distribute", "00000000-0000-4000-8000-000000000000"])
    assert r.code == 5 and "does not know job" in r.err and "check the id" in r.err


def test_job_get_refuses_providers_without_jobs(fake: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    r = run_cli(["job", "get", "openai", "abc"])
    assert r.code == 2 and "distribute" in r.err
    monkeypatch.delenv("OPENAI_API_KEY")  # said before any key is asked for
    assert run_cli(["job", "get", "openai", "abc"]).code == 2


# ---------------------------------------------------------------- small things


def test_typo_suggestion_is_said_once() -> None:
    r = run_cli(["generat", "x"])
    assert r.code == 2 and r.err.count("Did you mean") == 1


def test_debug_is_accepted_after_the_command(fake: Any) -> None:
    r = run_cli(["generate", "--debug", "sky", "-o", "d.png"])
    assert r.code == 0, r.err
    assert "debug: > POST" in r.err


def test_kept_partials_are_listed_in_json(fake: Any) -> None:
    r = run_cli(["generate", "sky", "--stream", "--partial-images", "2", "--keep-partials",
                 "--json", "-o", "k.png"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    assert [p["path"] for p in report["partials"]] == ["k.partial-1.png", "k.partial-2.png"]
    assert [i["path"] for i in report["images"]] == ["k.png"]


def test_error_without_code_does_not_show_type_as_code(fake: Any) -> None:
    from tests.fakes.server import Response

    fake.server.script.append(Response.json(
        {"error": {"message": "Bad thing", "type": "invalid_request_error"}}, 400))
    r = run_cli(["generate", "sky", "-o", "e.png"])
    assert r.code == 5 and "Bad thing" in r.err
    assert "code invalid_request_error" not in r.err


def test_json_failure_carries_request_id_and_error_objects(fake: Any) -> None:
    from tests.fakes.server import Response

    fake.server.script.append(Response.json(
        {"error": {"message": "Your request was rejected", "code": "moderation_blocked"}},
        400, **{"x-request-id": "req_fail_1"}))
    r = run_cli(["generate", "sky", "--json", "-o", "e.png"])
    assert r.code == 5
    report = json.loads(r.stdout)
    assert report["request_id"] == "req_fail_1"
    (e,) = report["errors"]
    assert e["exit_code"] == 5 and e["request_id"] == "req_fail_1"
    assert e["provider"] == "openai" and "rejected" in e["message"]


def test_debug_shows_bodies_summarised_and_redacted(fake: Any) -> None:
    from tests.conftest import KEY
    from tests.fakes.server import Response

    fake.server.script.append(Response.json(
        {"error": {"message": "Invalid size", "param": "size"}}, 400))
    r = run_cli(["--debug", "generate", "sky", "-o", "e.png"])
    assert r.code == 5
    assert 'debug: > body {"model": "gpt-image-2.6-flare", "prompt": "sky"' in r.err
    assert 'debug: < body {"error": {"message": "Invalid size", "param": "size"}}' in r.err
    r = run_cli(["--debug", "generate", "sky", "-o", "ok.png"])
    assert r.code == 0
    assert "bytes decoded from base64>" in r.err  # the image, summarised
    assert KEY not in r.err


def test_check_all_says_no_key_and_names_the_failed_url(
        fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    r = run_cli(["providers", "check", "--all"])
    assert r.code == 0, r.err
    assert "nebula: no key (set NEBULA_API_KEY)" in r.lines()
    assert "openai: ok (key accepted, " in r.stdout
    monkeypatch.setenv("OPENAI_API_KEY", "sk-bad-0000")
    r = run_cli(["providers", "check", "--all"])
    assert r.code == 4 and f"(at {fake.url}/models)" in r.err


def test_gateway_without_model_list_checks_and_lists_known_models(fake: Any) -> None:
    fake.list_models = False
    r = run_cli(["providers", "check", "openai"])
    assert r.code == 0, r.err
    assert "key accepted (no model list" in r.stdout
    assert [c.json() for c in fake.server.calls("/images/generations")] == [{}]
    r = run_cli(["providers", "models", "openai", "--json"])
    assert r.code == 0, r.err
    got = json.loads(r.stdout)
    assert got["live"] is False and "gpt-image-2.6-flare" in got["models"]
    assert "no model list at" in r.err


def test_providers_add_over_a_preset_needs_force(cfgfile: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["providers", "add", "openai", "--type", "openai", "--base-url",
            "https://proxy.example/v1"]
    r = run_cli(args)
    assert r.code == 2 and "--force" in r.err and not cfgfile.exists()
    assert run_cli([*args, "--force"]).code == 0
    monkeypatch.setenv("GW_KEY", "k-1234567")
    r = run_cli(["providers", "add", "gw", "--type", "openai", "--base-url",
                 "https://gw.example/v1", "--api-key-env", "GW_KEY"])
    assert r.code == 0 and "GW_KEY is set" in r.err and "set GW_KEY to" not in r.err


def test_sigterm_exits_143_saying_what_was_left(distribute: Any, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagegen_cli", "generate", "forever fox", "-p", "distribute",
         "--seed", "1", "-n", "2", "-o", "t/{index}.png"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(distribute.jobs) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "0 of 2 images written" in err
    for job_id in distribute.jobs:
        assert job_id in err
    assert "imagegen job get" in err and out == ""


def test_repository_tracks_no_symlinks() -> None:
    """A fresh clone must work: no tracked link into someone's temp folder
    (bench/.venv-openai was one, and bench/bench.py crashed on it)."""
    import shutil
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    listing = subprocess.run(["git", "ls-files", "-s"], cwd=root, capture_output=True,
                             text=True, check=True).stdout
    links = [line.split("\t")[1] for line in listing.splitlines() if line.startswith("120000")]
    assert links == []


def test_unknown_provider_from_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEGEN_PROVIDER", "nope")
    r = run_cli(["generate", "sky"])
    assert r.code == 3 and "environment variable IMAGEGEN_PROVIDER" in r.err
