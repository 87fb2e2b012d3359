"""Rough edges a new user hit following README top to bottom (review pass)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.fixture
def cfgfile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "cfg" / "config.toml"
    monkeypatch.setenv("IMAGEGEN_CONFIG", str(path))
    return path


@pytest.mark.parametrize("key, value, why", [
    ("default_provider", "nope", "nope"),
    ("providers.openai.concurrency", "0", "more than 0"),
    ("providers.openai.rpm", "0", "more than 0"),
])
def test_config_set_refuses_a_bad_value_as_usage_not_a_bad_file(
        cfgfile: Path, key: str, value: str, why: str) -> None:
    """README: `config set` checks values, exit 2 and nothing written. A value only the
    whole-file check catches is still the value's fault (exit 2), not a 'bad config file'
    (exit 3): the file on disk is fine and stays as it was."""
    cfgfile.parent.mkdir()
    cfgfile.write_text('[defaults]\nsize = "1024x1024"\n')
    before = cfgfile.read_bytes()
    r = run_cli(["config", "set", key, value])
    assert r.code == 2, r.err
    assert f"{key} = " in r.err and "not stored" in r.err and why in r.err
    assert "Bad config file" not in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert cfgfile.read_bytes() == before


def test_unknown_default_provider_names_the_known_ones(cfgfile: Path) -> None:
    r = run_cli(["config", "set", "default_provider", "nope"])
    assert r.code == 2
    assert "openai" in r.err and "nebula" in r.err


def test_config_set_on_a_file_already_bad_is_still_a_config_error(cfgfile: Path) -> None:
    cfgfile.parent.mkdir()
    cfgfile.write_text("[providers.openai]\nconcurrency = 0\n")
    r = run_cli(["config", "set", "providers.openai.model", "gpt-image-2"])
    assert r.code == 3 and "Bad config file" in r.err and "concurrency" in r.err


def test_an_option_the_provider_cannot_honour_says_how_to_fix_it(fake: object) -> None:
    """The bar: one line naming the problem AND the fix."""
    r = run_cli(["generate", "a cat", "--seed", "3"])
    assert r.code == 2
    (line,) = r.err.strip().splitlines()
    assert "--seed is not supported by provider openai" in line
    assert "drop --seed" in line and "imagegen providers show openai" in line
    assert not fake.server.requests  # type: ignore[attr-defined]


def test_no_provider_at_all_gives_an_install_command_that_works(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """imagegen-cli is not on PyPI: the hint must be the same command `-p local` gives
    (install_local), never `pip install 'imagegen-cli[local]'`."""
    from imagegen_cli.settings import config

    monkeypatch.setattr(config, "_local_available", lambda: False)
    r = run_cli(["generate", "a cat", "--dry-run"])
    assert r.code == 3
    (line,) = r.err.strip().splitlines()
    assert "OPENAI_API_KEY" in line
    assert "pip install 'imagegen-cli[local]'" not in line
    assert config.install_local() in line


def test_a_shut_down_model_names_the_real_config_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """On OpenAI itself dall-e-3 is gone: exit 2 before sending, and the fix names
    `providers.openai.model`, not a `providers.<name>.model` placeholder."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    r = run_cli(["generate", "a cat", "-m", "dall-e-3", "--dry-run"])
    assert r.code == 2
    (line,) = r.err.strip().splitlines()
    assert "providers.openai.model" in line and "<name>" not in line


@pytest.mark.parametrize("args", [["generate", "@."], ["batch", "--merge", "missing.ndjson"],
                                  ["batch", "--merge", "."]])
def test_unreadable_files_are_named_once_without_errno_noise(args: list[str]) -> None:
    r = run_cli(args)
    assert r.code == 2
    (line,) = r.err.strip().splitlines()
    assert "[Errno" not in line
    assert ("Is a directory" in line) or ("No such file or directory" in line)


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_an_output_folder_that_cannot_be_created_is_exit_7_before_sending(
        fake: object) -> None:
    """README: the folder is checked before anything is sent. os.access() says yes to
    root almost everywhere (/proc included), so the check must really try."""
    r = run_cli(["generate", "a cat", "-o", "/proc/imagegen-no-such/"])
    assert r.code == 7, r.err
    assert "/proc" in r.err
    assert not fake.server.requests  # type: ignore[attr-defined]


def test_stream_on_a_provider_without_it_says_drop_it(nebula: object) -> None:
    r = run_cli(["generate", "a cat", "-p", "nebula", "--stream"])
    assert r.code == 2
    (line,) = r.err.strip().splitlines()
    assert "--stream is not supported by provider nebula" in line and "drop --stream" in line
