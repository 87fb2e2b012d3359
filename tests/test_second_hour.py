"""Issue 22: the second first hour (what a new user still trips over)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli, write_config


def on_terminal(args: list[str], columns: int,
                env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run imagegen with stdout and stderr on a pseudo-terminal COLUMNS wide: (exit code,
    the text it showed)."""
    import fcntl
    import pty
    import struct
    import termios

    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    run_env = dict(os.environ, COLUMNS=str(columns), TERM="xterm", **(env or {}))
    proc = subprocess.Popen([sys.executable, "-m", "imagegen_cli", *args],
                            stdout=child, stderr=child, env=run_env)
    os.close(child)
    data = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    os.close(main)
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", data.decode()).replace("\r", "")
    return proc.wait(), text


# ------------------------------------------------- 1. tables at 60, 80, 120 columns


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_providers_list_never_drops_or_cuts_a_name(columns: int) -> None:
    code, text = on_terminal(["providers", "list"], columns,
                             {"DISTRIBUTE_API_KEY": "k-1"})
    assert code == 0, text
    assert "…" not in text
    for name in ("openai", "azure", "xai", "distribute", "nebula", "truefoundry",
                 "yescale", "gemini", "local"):
        assert any(line.split()[:1] == [name] for line in text.splitlines()), (name, text)
    assert "set via DISTRIBUTE_API_KEY" in text
    if columns < 100:  # one block per provider: every value whole on its line
        assert "  base url: https://api.nebulablock.com/api/v1" in text
    assert all(len(line) <= columns for line in text.splitlines()
               if "http" not in line)  # only a URL longer than the terminal may wrap


@pytest.mark.parametrize("columns", [60, 80, 120])
@pytest.mark.parametrize("args", [["providers", "show", "openai"],
                                  ["providers", "show", "nebula"],
                                  ["providers", "models", "openai"],
                                  ["config", "show"], ["config", "path"]])
def test_other_tables_are_never_cut(columns: int, args: list[str]) -> None:
    code, text = on_terminal(args, columns)
    assert code in (0, 3), text  # models: no key -> the known list or exit 3
    assert "…" not in text


def test_providers_show_is_short() -> None:
    r = run_cli(["providers", "show", "openai"])
    assert r.code == 0
    assert len(r.lines()) < 60
    assert "at most 3840x2160 pixels" in r.stdout and "8294400" not in r.stdout
    assert "    gpt-image-2.5-flare (active): no --complexity; formats png, jpeg, webp" \
        in r.lines()
    assert "key      : missing (variable OPENAI_API_KEY)" in r.stdout


def test_providers_show_key_set_is_said_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    r = run_cli(["providers", "show", "openai"])
    assert "key      : set via OPENAI_API_KEY\n" in r.stdout


# ------------------------------------------------- 2. CSV quotes


def test_csv_unclosed_quote_is_exit_2_naming_its_line(fake: Any) -> None:
    Path("r.csv").write_text('prompt,n\n"a cat,1\nan owl,1\na dog,1\n')
    r = run_cli(["batch", "r.csv", "-o", "o/"])
    assert r.code == 2, r.err
    assert "r.csv, line 2: a quoted cell opens on this line" in r.err
    assert "csv-multiline" in r.err
    assert not fake.server.calls("/images/generations")
    # --skip-invalid: the other lines are still records of their own.
    r = run_cli(["batch", "r.csv", "-o", "o/", "--skip-invalid", "--json"])
    assert r.code == 0, r.err
    assert sorted(json.loads(x)["id"] for x in r.lines()) == ["2", "3"]


def test_csv_multiline_asked_for_still_refuses_a_quote_open_to_the_end(fake: Any) -> None:
    Path("r.csv").write_text('prompt\nan owl\n"a cat\nasleep\non a mat\n')
    r = run_cli(["batch", "r.csv", "-o", "o/", "--input-format", "csv-multiline"])
    assert r.code == 2 and "r.csv, line 3: a quoted cell opens on this line and is never " \
        "closed (it runs to the end of the file)" in r.err, r.err
    assert not fake.server.calls("/images/generations")
    Path("r.csv").write_text('prompt\n"a cat\nasleep"\n')
    r = run_cli(["batch", "r.csv", "-o", "o/", "--input-format", "csv-multiline", "--json"])
    assert r.code == 0, r.err
    assert [c.json()["prompt"] for c in fake.server.calls("/images/generations")] \
        == ["a cat\nasleep"]


def test_csv_ids_start_at_1_for_the_first_record(fake: Any) -> None:
    Path("r.csv").write_text('prompt\na fox\nan owl\n')
    r = run_cli(["batch", "r.csv", "-o", "o/", "--json"])
    assert r.code == 0, r.err
    got = sorted((x["id"], x["line"]) for x in map(json.loads, r.lines()))
    assert got == [("1", 2), ("2", 3)]
    assert Path("o").joinpath("1-a-fox-1.png").exists()


# ------------------------------------------------- 3. --from an image made elsewhere


def _a1111_png(path: str, text: str) -> None:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)


A1111 = ("a lighthouse\nNegative prompt: blurry\nSteps: 30, Sampler: Euler a, CFG scale: 7, "
         "Seed: 42, Size: 1024x1024, Model: sd_xl_base_1.0")


def test_from_elsewhere_drops_what_the_provider_cannot_take_naming_the_file(
        fake: Any) -> None:
    _a1111_png("mill.png", A1111)
    r = run_cli(["generate", "--from", "mill.png", "-o", "o.png"])
    assert r.code == 0, r.err
    body = fake.server.calls("/images/generations")[0].json()
    assert body["prompt"] == "a lighthouse" and body["model"] == "gpt-image-2.6-flare"
    for key in ("seed", "num_steps", "steps", "guidance", "negative_prompt"):
        assert key not in body
    assert "seed 42 recorded in mill.png is not used with openai" in r.err
    assert "steps 30 recorded in mill.png is not used with openai" in r.err
    assert "drop --" not in r.err
    assert "its model sd_xl_base_1.0 (made elsewhere) is not sent to openai" in r.err


def test_from_model_goes_to_the_same_provider_only(nebula: Any) -> None:
    _a1111_png("mill.png", A1111)
    r = run_cli(["generate", "--from", "mill.png", "-p", "nebula", "-o", "o.png"])
    assert r.code == 0, r.err
    body = nebula.server.calls("/images/generation")[0].json()
    assert body["model_name"] != "sd_xl_base_1.0" if "model_name" in body else \
        body.get("model") != "sd_xl_base_1.0"
    assert body["seed"] == 42  # FLUX.1-schnell takes a seed: kept
    r = run_cli(["generate", "--from", "mill.png", "-p", "nebula", "--no-seed", "-o", "p.png"])
    assert r.code == 0, r.err
    assert "seed" not in nebula.server.calls("/images/generation")[1].json()
    r = run_cli(["generate", "--from", "mill.png", "--no-seed", "--seed", "3"])
    assert r.code == 2 and "--seed and --no-seed" in r.err


def test_from_a_value_out_of_range_names_the_file(nebula: Any) -> None:
    _a1111_png("mill.png", A1111.replace("Size: 1024x1024", "Size: 4096x4096"))
    r = run_cli(["generate", "--from", "mill.png", "-p", "nebula", "-o", "o.png"])
    assert r.code == 0, r.err
    assert 'size "4096x4096" recorded in mill.png is not used with nebula' in r.err
    body = nebula.server.calls("/images/generation")[0].json()
    assert (body.get("width"), body.get("height")) != (4096, 4096)


# ------------------------------------------------- 4. the provider chosen for you


def test_automatic_provider_is_said_once_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTRIBUTE_API_KEY", "d-key")
    r = run_cli(["generate", "a cat", "-n", "3", "--dry-run"])
    assert r.code == 0, r.err
    assert r.err.count("using provider distribute") == 1
    assert "DISTRIBUTE_API_KEY is set" in r.err and "default_provider" in r.err
    r = run_cli(["generate", "a cat", "--dry-run", "-q"])
    assert "using provider" not in r.err
    monkeypatch.setenv("OPENAI_API_KEY", "sk-1")
    r = run_cli(["generate", "a cat", "--dry-run"])
    assert "using provider openai" in r.err and "the first of 2 providers with a key" in r.err
    monkeypatch.delenv("DISTRIBUTE_API_KEY")
    r = run_cli(["generate", "a cat", "--dry-run"])
    assert "using provider" not in r.err  # OPENAI_API_KEY alone: the Quick start
    r = run_cli(["generate", "a cat", "-p", "openai", "--dry-run"])
    assert "using provider" not in r.err


# ------------------------------------------------- 7. typos


@pytest.mark.parametrize("args", [["generate", "x", "-p", "opneai", "--dry-run"],
                                  ["providers", "show", "opneai"],
                                  ["config", "get", "providers.opneai.model", "--effective"]])
def test_unknown_provider_suggests_and_points_at_providers_add(args: list[str]) -> None:
    r = run_cli(args)
    assert r.code == 3, r.err
    assert "Did you mean 'openai'?" in r.err
    assert "imagegen providers add opneai" in r.err
    assert "[providers.opneai] table" not in r.err


def test_unquoted_prompt_says_to_quote_it() -> None:
    r = run_cli(["generate", "a", "cat", "on", "a", "mat"])
    assert r.code == 2
    assert 'quote the prompt: imagegen generate "a cat on a mat"' in r.err
    r = run_cli(["edit", "a", "cat", "-i", "x.png"])
    assert 'quote the prompt: imagegen edit "a cat"' in r.err
    r = run_cli(["config", "get", "a", "b"])
    assert r.code == 2 and "quote the prompt" not in r.err


# ------------------------------------------------- 15. help


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_help_never_wraps_inside_a_word_and_describes_every_argument(columns: int) -> None:
    for command in (["generate"], ["batch"], ["edit"], ["config", "get"], ["info"]):
        code, text = on_terminal([*command, "--help"], columns)
        assert code == 0, text
        assert not any(line.rstrip().endswith(("gpt-", "Re-")) for line in text.splitlines())
        section = text.split("Arguments:\n", 1)[1].split("\n\n", 1)[0]
        assert len(section.splitlines()[0].split()) > 1, section  # NAME and its help
        assert "Positional arguments" not in text


def test_batch_help_offers_no_stdout_output() -> None:
    r = run_cli(["batch", "--help"])
    block = r.stdout.split("-o, --output PATH", 1)[1].split("\n  -", 1)[0]
    assert "stdout" not in block and "Folder" in block
    r = run_cli(["generate", "--help"])
    assert "- for stdout" in r.stdout


# ------------------------------------------------- 5. providers check nebula


def test_nebula_check_without_a_model_list(nebula: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes.server import Request, Response

    real = nebula.server.app

    def app(req: Request) -> Response:
        if req.path.endswith("/serverless/models"):
            return Response.json({"detail": "Not Found"}, 404)
        return real(req)

    nebula.server.app = app
    r = run_cli(["providers", "check", "nebula"])
    assert r.code == 0, r.err
    assert "key accepted" in r.stdout + r.err
    r = run_cli(["providers", "check", "--all"])
    assert r.code == 0, r.stdout + r.err
    assert not [c for c in nebula.server.calls("/images/generation")
                if c.json().get("prompt")]  # nothing that makes an image was sent
    monkeypatch.setenv("NEBULA_API_KEY", "wrong")
    r = run_cli(["providers", "check", "nebula"])
    assert r.code == 4, r.err


# ------------------------------------------------- 6. JSON edit body refused


def _multipart_only(fake: Any) -> None:
    from tests.fakes.server import Request, Response

    real = fake.server.app

    def app(req: Request) -> Response:
        if req.path.endswith("/images/edits") and \
                req.headers.get("content-type", "").startswith("application/json"):
            return Response.json({"error": {"message": "expected multipart/form-data",
                                            "type": "invalid_request_error"}}, 400)
        return real(req)

    fake.server.app = app


def _served_png(fake: Any) -> str:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "green").save(buf, format="PNG")
    fake.files["ref.png"] = buf.getvalue()
    return f"{fake.server.url}/files/ref.png"


def test_json_edit_body_refused_falls_back_to_multipart_once(fake: Any) -> None:
    url = _served_png(fake)
    _multipart_only(fake)
    r = run_cli(["edit", "x", "-i", url, "-o", "e.png"])
    assert r.code == 0, r.err
    assert r.err.count("refused the JSON edit body") == 1 and "multipart" in r.err
    first, second = fake.server.calls("/images/edits")
    assert first.headers["content-type"].startswith("application/json")
    assert second.headers["content-type"].startswith("multipart/form-data")
    assert "authorization" not in fake.server.calls("/files/ref.png")[0].headers
    # --edit-body json: no second try; multipart: downloaded first, one call.
    r = run_cli(["edit", "x", "-i", url, "-o", "f.png", "--edit-body", "json"])
    assert r.code == 5, r.err
    assert len(fake.server.calls("/images/edits")) == 3
    r = run_cli(["edit", "x", "-i", url, "-o", "g.png", "--edit-body", "multipart"])
    assert r.code == 0, r.err
    assert len(fake.server.calls("/images/edits")) == 4
    assert fake.server.calls("/images/edits")[3].headers["content-type"].startswith(
        "multipart/form-data")
    r = run_cli(["edit", "x", "-i", url, "--edit-body", "both"])
    assert r.code == 2 and "--edit-body" in r.err


def test_edit_body_from_config(fake: Any, monkeypatch: pytest.MonkeyPatch,
                               tmp_path: Path) -> None:
    url = _served_png(fake)
    write_config(f'[providers.openai]\nbase_url = "{fake.url}"\n'
                 '[defaults]\nedit_body = "multipart"\n', monkeypatch, tmp_path)
    r = run_cli(["edit", "x", "-i", url, "-o", "e.png", "--dry-run"])
    assert r.code == 0, r.err
    assert "multipart" in r.stdout
    r = run_cli(["config", "set", "defaults.edit_body", "sometimes"])
    assert r.code == 2


# ------------------------------------------------- 8. base URL without /v1


def test_404_on_images_path_says_to_check_base_url(fake: Any, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    root = fake.url.rsplit("/v1", 1)[0]
    write_config(f'[providers.gw]\ntype = "openai"\nbase_url = "{root}"\n'
                 'api_key_env = "OPENAI_API_KEY"\n', monkeypatch, tmp_path)
    r = run_cli(["generate", "x", "-p", "gw", "-m", "gpt-image-2.6-flare", "-o", "a.png"])
    assert r.code == 5, r.err
    assert "OpenAI-compatible URLs usually end in /v1" in r.err and f"{root}/v1" in r.err


def test_providers_add_warns_at_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IMAGEGEN_CONFIG", str(tmp_path / "c.toml"))
    r = run_cli(["providers", "add", "gw", "--type", "openai", "--base-url",
                 "https://gw.example.com", "--api-key-env", "GW_KEY"])
    assert r.code == 0, r.err
    assert "usually served under /v1" in r.err
    assert "no --model: every request will need -m MODEL" in r.err
    r = run_cli(["providers", "add", "gw2", "--type", "openai", "--base-url",
                 "https://gw.example.com/v1", "--model", "m"])
    assert r.code == 0 and "warning" not in r.err, r.err


# ------------------------------------------------- 9. bash completion


def test_bash_install_without_bash_completion_says_how_else(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from imagegen_cli.cli import completion

    monkeypatch.setattr(completion, "BASH_COMPLETION", (str(tmp_path / "none"),))
    r = run_cli(["completion", "--install", "bash"])
    assert r.code == 0, r.err
    assert "bash-completion package" in r.err and "was not found" in r.err
    assert "source <(imagegen completion bash)" in r.err
    (tmp_path / "bc").write_text("")
    monkeypatch.setattr(completion, "BASH_COMPLETION", (str(tmp_path / "bc"),))
    r = run_cli(["completion", "--install", "bash"])
    assert r.code == 0 and "was not found" not in r.err


# ------------------------------------------------- 10. batch --dry-run after a run


def test_batch_dry_run_after_a_finished_batch_skips_and_estimates_nothing(fake: Any) -> None:
    Path("p.txt").write_text("a fox\nan owl\n")
    r = run_cli(["batch", "p.txt", "-o", "out/", "-m", "gpt-image-2", "--quality", "low",
                 "-q"])
    assert r.code == 0, r.err
    Path("p.txt").write_text("a fox\nan owl\na cat\n")
    sent = len(fake.server.requests)
    r = run_cli(["batch", "p.txt", "-o", "out/", "-m", "gpt-image-2", "--quality", "low",
                 "--dry-run"])
    assert r.code == 0, r.err
    lines = [json.loads(x) for x in r.lines()]
    assert [x.get("skipped", False) for x in lines] == [True, True, False]
    assert "estimated_cost" not in lines[0] and "estimated_cost" in lines[2]
    assert "estimated cost of 1 job: $0.005-$0.006;" in r.err and "2 finished earlier" in r.err
    assert len(fake.server.requests) == sent
    r = run_cli(["batch", "p.txt", "-o", "out/", "-m", "gpt-image-2", "--quality", "low",
                 "--dry-run", "--force"])
    assert not any(json.loads(x).get("skipped") for x in r.lines())


# ------------------------------------------------- 11. errors name where a value was set


def test_config_value_errors_name_the_key_and_file(fake: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = Path.home() / ".config" / "imagegen" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.delenv("IMAGEGEN_CONFIG")
    cfg.write_text(f'[providers.openai]\nbase_url = "{fake.url}"\n'
                   '[defaults]\noutput = "pic.bmp"\n')
    r = run_cli(["generate", "x"])
    assert r.code == 2
    assert r.err.startswith(
        "error: defaults.output in ~/.config/imagegen/config.toml, line 4: -o pic.bmp"), r.err
    cfg.write_text(f'[providers.openai]\nbase_url = "{fake.url}"\n'
                   '[providers.openai.defaults]\nsize = "100x100"\n')
    r = run_cli(["generate", "x"])
    assert r.code == 2
    assert "providers.openai.defaults.size = 100x100 (in ~/.config/imagegen/config.toml, " \
        "line 4) is not accepted" in r.err
    assert "--size" not in r.err
    assert not fake.server.requests


# ------------------------------------------------- 12. prices by config set


def test_config_set_prices_with_dots_and_slashes_in_model_ids(
        fake: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import tomllib

    path = write_config(f'[providers.openai]\nbase_url = "{fake.url}"\n', monkeypatch, tmp_path)
    for key, value in [("providers.openai.prices.gpt-image-2.6-flare", "0.3"),
                       ('providers.openai.prices."gpt-image-2".per_image.1024x1024.low',
                        "0.01"),
                       ("providers.openai.prices.gpt-image-2.tokens",
                        "{ image_out = 30.0 }"),
                       ('providers.truefoundry.prices."openai-main/gpt-image-2"', "0.07")]:
        r = run_cli(["config", "set", key, value])
        assert r.code == 0, (key, r.err)
    prices = tomllib.loads(path.read_text())["providers"]
    assert prices["openai"]["prices"]["gpt-image-2.6-flare"] == 0.3
    assert prices["openai"]["prices"]["gpt-image-2"] == {
        "per_image": {"1024x1024": {"low": 0.01}}, "tokens": {"image_out": 30.0}}
    assert prices["truefoundry"]["prices"]["openai-main/gpt-image-2"] == 0.07
    r = run_cli(["generate", "x", "--max-cost", "0.2"])
    assert r.code == 2 and "$0.30" in r.err
    r = run_cli(["config", "get", 'providers.openai.prices."gpt-image-2.6-flare"'])
    assert r.stdout.strip() == "0.3"
    r = run_cli(["config", "get", "providers.openai.prices.gpt-image-2.6-flare",
                 "--effective"])
    assert r.stdout.split("\t")[0] == "0.3"
    r = run_cli(["config", "set", "providers.openai.prices.x.per_image", "banana"])
    assert r.code == 2 and "not stored" in r.err
    r = run_cli(["config", "unset", "providers.openai.prices.gpt-image-2.tokens"])
    assert r.code == 0
    assert "tokens" not in tomllib.loads(path.read_text())["providers"]["openai"]["prices"][
        "gpt-image-2"]


# ------------------------------------------------- 15. cost messages


def test_cost_messages_end_with_how_to_narrow_the_range(fake: Any) -> None:
    r = run_cli(["generate", "x", "-m", "gpt-image-2", "--max-cost", "0.1"])
    assert r.code == 2
    assert "Nothing was sent: pass --size or --quality to narrow it" in r.err
    assert "any of" not in r.err  # not every value listed
    r = run_cli(["generate", "x", "--dry-run"])
    assert r.err.rstrip().endswith("pass --quality to narrow it"), r.err
    r = run_cli(["generate", "x", "-m", "gpt-image-2", "--quality", "low", "--size",
                 "1024x1024", "--dry-run"])
    assert "narrow" not in r.err


# ------------------------------------------------- 13. --summary after Ctrl-C


def _cancel_batch(lines: int, *extra: str) -> dict[str, Any]:
    import signal
    import time

    Path("p.txt").write_text("\n".join(f"scene {i}" for i in range(lines)) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "imagegen_cli", "batch", "p.txt", "-o",
                             "o/", "-j", "2", "--summary", "s.json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (Path("o").exists()
                                               and len(list(Path("o").glob("*.png"))) >= 2):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    return dict(json.loads(Path("s.json").read_text()))


def test_summary_after_ctrl_c_counts_every_job_once(slow: Any) -> None:
    s = _cancel_batch(30)
    assert s["interrupted"] is True and s["jobs"] == 30
    assert s["done"] >= 2 and s["not_run"] > 0
    assert s["done"] + s["failed"] + s["skipped"] + s["not_run"] == s["jobs"]


def test_summary_after_ctrl_c_of_a_long_input_says_it_was_not_read_whole(slow: Any) -> None:
    from imagegen_cli.engine.stream import WINDOW

    s = _cancel_batch(WINDOW + 50)  # past the window: the rest is read as the run goes
    assert s["done"] + s["failed"] + s["skipped"] + s["not_run"] == s["jobs"]
    assert s["jobs"] >= WINDOW and s["unread"] is True


def test_ctrl_c_names_the_provider_in_job_get(distribute: Any) -> None:
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "imagegen_cli", "generate", "forever fox", "-p", "distribute",
         "--seed", "1", "-n", "2", "-o", "t/{index}.png"],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(distribute.jobs) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    first = next(iter(distribute.jobs))
    assert "imagegen job get distribute " in err and "PROVIDER" not in err, err
    assert any(f"job get distribute {j}" in err for j in distribute.jobs), (first, err)


# ------------------------------------------------- 15. job get twice


def test_second_job_get_points_at_the_images_instead_of_a_stray_copy(distribute: Any) -> None:
    r = run_cli(["generate", "forever fox", "-p", "distribute", "--seed", "5", "--timeout",
                 "3", "-o", "out/{prompt}-{index}-{seed}.{ext}"])
    assert r.code == 6
    (job_id,) = distribute.jobs
    distribute.jobs[job_id]["body"]["prompt"] = "now done"
    r = run_cli(["job", "get", "distribute", job_id])
    assert r.code == 0 and r.lines() == ["out/forever-fox-1-5.png"], r.err
    before = sorted(str(p) for p in Path(".").rglob("*.png"))
    r = run_cli(["job", "get", "distribute", job_id])
    assert r.code == 0, r.err
    assert r.lines() == ["out/forever-fox-1-5.png"] and "fetched already" in r.err
    assert sorted(str(p) for p in Path(".").rglob("*.png")) == before
    r = run_cli(["job", "get", "distribute", job_id, "-o", "again.png"])
    assert r.code == 0 and Path("again.png").exists(), r.err


# ------------------------------------------------- 14. one message for a broken file


def test_a_broken_config_file_gets_one_message_from_every_command(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_config('[defaults]\nsize = "1024x1024\nsteps = 4\n', monkeypatch, tmp_path)
    said = set()
    for args in (["generate", "x", "--dry-run"], ["config", "show"],
                 ["config", "get", "defaults.size"], ["config", "set", "defaults.steps", "5"],
                 ["config", "unset", "defaults.steps"], ["providers", "list"],
                 ["config", "get", "defaults.size", "--effective"]):
        r = run_cli(args)
        assert r.code == 3, (args, r.err)
        said.add(r.err.strip())
    assert said == {f"error: Bad config file {path}, line 2: Illegal character '\\n'"}


# ------------------------------------------------- 15. small things


@pytest.mark.parametrize(("given", "used"), [(",nebula", "nebula"),
                                             ("nebula,nebula", "nebula"),
                                             ("nebula,,nebula", "nebula")])
def test_odd_provider_lists_are_normalised_with_a_note(nebula: Any, given: str,
                                                       used: str) -> None:
    r = run_cli(["generate", "x", "-p", given, "--dry-run"])
    assert r.code == 0, r.err
    assert f"-p {given}: using {used} (empty names and repeats left out)" in r.err
    r = run_cli(["generate", "x", "-p", "nebula", "--dry-run"])
    assert "left out" not in r.err


def test_info_mentions_the_sidecar_beside_the_image(fake: Any) -> None:
    r = run_cli(["generate", "a fox", "--sidecar", "-o", "fox.png"])
    assert r.code == 0, r.err
    r = run_cli(["info", "fox.png"])
    assert "sidecar:" in r.stdout and "fox.json" in r.stdout
    r = run_cli(["info", "fox.png", "--json"])
    assert json.loads(r.stdout)[0]["sidecar"] == "fox.json"
    r = run_cli(["generate", "a cat", "-o", "cat.png"])
    assert json.loads(run_cli(["info", "cat.png", "--json"]).stdout)[0]["sidecar"] is None


def test_huge_count_dry_run_is_a_summary(fake: Any) -> None:
    r = run_cli(["generate", "x", "-n", "100000", "--dry-run"])
    assert r.code == 0, r.err
    assert len(r.out) < 100_000
    shown = json.loads(r.stdout)
    assert shown["requests_total"] == 10_000 and len(shown["requests"]) == 100
    assert "showing the first 100 of 10,000 requests" in r.err
    Path("p.txt").write_text("a fox\n")
    r = run_cli(["batch", "p.txt", "-n", "100000", "--dry-run"])
    assert r.code == 0 and len(r.out) < 100_000, r.err
