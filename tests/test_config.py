"""Config loading, validation and precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegen_cli.errors import ConfigError
from imagegen_cli.settings import config
from imagegen_cli.settings.precedence import pick
from imagegen_cli.settings.provider import ProviderConfig
from tests.conftest import run_cli, write_config
from tests.fakes.openai_fake import OpenAIFake


def test_no_file_gives_presets() -> None:
    cfg = config.load({"HOME": "/nonexistent"} | {"XDG_CONFIG_HOME": "/nonexistent"})
    assert not cfg.exists
    assert {"openai", "distribute", "nebula", "truefoundry", "yescale"} <= set(cfg.providers)


def test_malformed_file_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('default_provider = "openai"\n[defaults]\nsize = \n')
    with pytest.raises(ConfigError) as exc:
        config.load({"IMAGEGEN_CONFIG": str(p)})
    assert str(p) in str(exc.value) and "line 3" in str(exc.value)


def test_malformed_file_exits_3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    p = write_config("[providers.openai\n", monkeypatch, tmp_path)
    r = run_cli(["generate", "x"])
    assert r.code == 3 and str(p) in r.err and "line 1" in r.err
    assert "Traceback" not in r.err


def test_wrong_type_names_key_and_line(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[defaults]\nsize = "1024x1024"\ncount = "three"\n')
    with pytest.raises(ConfigError, match=r"line 3: defaults.count must be an integer"):
        config.load({"IMAGEGEN_CONFIG": str(p)})


def test_unknown_keys_warn(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('colour = "blue"\n[defaults]\nsizee = "1"\n[providers.openai]\nmdoel = "x"\n')
    cfg = config.load({"IMAGEGEN_CONFIG": str(p)})
    text = "\n".join(cfg.warnings)
    assert "'colour'" in text and "'defaults.sizee'" in text
    assert "'providers.openai.mdoel'" in text and "line 5" in text


def test_provider_table_overrides_preset_fields(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[providers.openai]\nmodel = "dall-e-3"\n'
                 '[providers.gw]\ntype = "openai"\nbase_url = "https://gw.example/v1"\n'
                 'api_key_env = "GW_KEY"\n')
    cfg = config.load({"IMAGEGEN_CONFIG": str(p)})
    assert cfg.providers["openai"].model == "dall-e-3"
    assert cfg.providers["openai"].base_url == "https://api.openai.com/v1"
    assert cfg.providers["gw"].api_key_env == "GW_KEY"


def test_new_provider_needs_type(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[providers.gw]\nbase_url = "https://gw.example/v1"\n')
    with pytest.raises(ConfigError, match="needs type"):
        config.load({"IMAGEGEN_CONFIG": str(p)})


def test_environment_key_wins_over_stored_key() -> None:
    p = ProviderConfig("x", "openai", api_key_env="X_KEY", api_key="stored")
    assert p.key({"X_KEY": "from-env"}) == "from-env"
    assert p.key({}) == "stored"


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    assert pick("flag", "env", "file", "default") == "flag"
    assert pick(None, "env", "file", "default") == "env"
    assert pick(None, None, "file", "default") == "file"
    assert pick(None, None, None, "default") == "default"


def test_provider_resolution_order(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('default_provider = "nebula"\n')
    cfg = config.load({"IMAGEGEN_CONFIG": str(p)})
    env = {"IMAGEGEN_PROVIDER": "yescale"}
    assert config.resolve_provider(cfg, "openai", env)[0].name == "openai"
    assert config.resolve_provider(cfg, None, env)[0].name == "yescale"
    assert config.resolve_provider(cfg, None, {})[0].name == "nebula"
    cfg.default_provider = None
    assert config.resolve_provider(cfg, None, {"NEBULA_API_KEY": "k"})[0].name == "nebula"


def test_defaults_apply_and_flags_win(fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    write_config(f'[defaults]\nsize = "1536x1024"\nquality = "low"\n'
                 f'output = "gen/{{index}}.{{ext}}"\n'
                 f'[providers.openai]\nbase_url = "{fake.url}"\n', monkeypatch, tmp_path)
    r = run_cli(["generate", "sky", "--quality", "high"])
    assert r.code == 0, r.err
    assert r.lines() == ["gen/1.png"]
    body = fake.server.calls("/images/generations")[0].json()
    assert body["size"] == "1536x1024" and body["quality"] == "high"
    monkeypatch.setenv("IMAGEGEN_OUTPUT", "env/{index}.{ext}")
    r = run_cli(["generate", "sky"])
    assert r.lines() == ["env/1.png"]


def test_key_file_readable_by_others_warns(fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    p = write_config(f'[providers.openai]\nbase_url = "{fake.url}"\napi_key = "sk-stored-1"\n',
                     monkeypatch, tmp_path)
    p.chmod(0o644)
    r = run_cli(["generate", "sky", "--dry-run"])
    assert "chmod 600" in r.err
    assert "sk-stored-1" not in r.err + r.stdout
    p.chmod(0o600)
    r = run_cli(["generate", "sky", "--dry-run"])
    assert "chmod" not in r.err


def test_missing_config_named_by_env_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEGEN_CONFIG", "/nonexistent/c.toml")
    r = run_cli(["generate", "sky"])
    assert r.code == 3 and "/nonexistent/c.toml" in r.err


def test_key_need_comes_from_the_dialect(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[providers.mine]\ntype = "local"\nmodel = "./m"\n'
                 '[providers.gw]\ntype = "openai"\nbase_url = "https://g/v1"\n')
    cfg = config.load({"IMAGEGEN_CONFIG": str(p)})
    assert cfg.providers["mine"].needs_key is False
    assert cfg.providers["mine"].key_source({}) == "not needed"
    assert cfg.providers["gw"].needs_key is True
    assert cfg.providers["local"].needs_key is False


def test_error_line_is_the_repeated_keys_own_table(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    text = ('[providers.gw]\ntype = "openai"\nbase_url = "https://g/v1"\ntimeout = 5\n\n'
            '[defaults]\nsize = "1024x1024"\n\ntimeout = "soon"\n')
    p.write_text(text)
    with pytest.raises(ConfigError, match=r"line 9: defaults.timeout must be a number"):
        config.load({"IMAGEGEN_CONFIG": str(p)})
    p.write_text('[defaults]\nmodel = 3\n[providers.openai]\nmodel = 4\n')
    with pytest.raises(ConfigError, match=r"line 2: defaults.model must be a string"):
        config.load({"IMAGEGEN_CONFIG": str(p)})
    p.write_text('[defaults]\nmode = "x"\n[providers.openai]\nmode = "fast"\n')
    with pytest.raises(ConfigError, match=r"line 4: providers.openai.mode"):
        config.load({"IMAGEGEN_CONFIG": str(p)})
    p.write_text('defaults.size = "9x9"\n[providers.gw]\ntype = "openai"\nsteps = 3\n'
                 'size = 1\n')
    cfg = config.load({"IMAGEGEN_CONFIG": str(p)})
    assert any("line 4: unknown key 'providers.gw.steps'" in w for w in cfg.warnings)
    assert any("line 5: unknown key 'providers.gw.size'" in w for w in cfg.warnings)
    p.write_text('defaults.steps = "x"\n[providers.gw]\ntype = "openai"\nsteps = 3\n')
    with pytest.raises(ConfigError, match=r"line 1: defaults.steps must be an integer"):
        config.load({"IMAGEGEN_CONFIG": str(p)})
