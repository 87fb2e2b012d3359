"""Provider fallback: -p a,b and providers.a.fallback, between two strict OpenAI fakes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import KEY, provider_pair, run_cli, unavailable
from tests.fakes.openai_fake import OpenAIFake, error


@pytest.fixture
def pair(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
         ) -> Iterator[tuple[OpenAIFake, OpenAIFake]]:
    """`first` and `backup`; retired models on gateways: prices are table ones."""
    with provider_pair(monkeypatch, tmp_path, "gpt-image-1", "gpt-image-1-mini") as fakes:
        yield fakes


def test_503_falls_back_and_records_the_second_provider(
        pair: tuple[OpenAIFake, OpenAIFake]) -> None:
    a, b = pair
    unavailable(a, 3)  # the first try and both retries
    r = run_cli(["generate", "a fox", "-p", "first,backup", "-o", "fox.png", "--json",
                 "--sidecar"])
    assert r.code == 0, r.err
    assert len(a.server.calls("/images/generations")) == 3
    (call,) = b.server.calls("/images/generations")
    assert call.json()["model"] == "gpt-image-1-mini"  # backup's own default model
    report = json.loads(r.stdout)
    assert (report["provider"], report["model"]) == ("backup", "gpt-image-1-mini")
    img = report["images"][0]
    assert (img["provider"], img["model"], img["fallback_from"]) == (
        "backup", "gpt-image-1-mini", "first")
    assert report["fallbacks"][0]["from"] == "first" and report["fallbacks"][0]["to"] == "backup"
    assert "HTTP 503" in report["fallbacks"][0]["reason"]
    with Image.open("fox.png") as im:
        assert im.size == (48, 48)  # made by the backup fake
        assert im.text["provider"] == "backup"  # type: ignore[attr-defined]
    side = json.loads(Path("fox.json").read_text())
    assert side["provider"] == "backup" and side["fallback_from"] == "first"
    assert "warning: first is unavailable" in r.err and "sending the same request to backup" \
        in r.err


def test_fallback_list_in_config(pair: tuple[OpenAIFake, OpenAIFake],
                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    a, b = pair
    path = Path(str(tmp_path / "config.toml"))
    path.write_text(path.read_text().replace('model = "gpt-image-1"\n',
                                             'model = "gpt-image-1"\nfallback = ["backup"]\n', 1))
    unavailable(a)
    r = run_cli(["generate", "x", "-p", "first", "--retries", "0", "-o", "x.png", "-q"])
    assert r.code == 0, r.err
    assert r.lines() == ["x.png"]
    assert len(b.server.calls("/images/generations")) == 1


def test_refusal_never_reaches_the_second(pair: tuple[OpenAIFake, OpenAIFake]) -> None:
    a, b = pair
    r = run_cli(["generate", "moderation_blocked here", "-p", "first,backup", "-o", "r.png"])
    assert r.code == 5
    assert len(a.server.calls("/images/generations")) == 1
    assert b.server.requests == []
    assert not Path("r.png").exists()


def test_bad_request_400_never_reaches_the_second(pair: tuple[OpenAIFake, OpenAIFake]) -> None:
    a, b = pair
    a.server.script.append(error(400, "Invalid value for 'size'", "invalid_value", "size"))
    r = run_cli(["generate", "x", "-p", "first,backup", "-o", "r.png"])
    assert r.code == 5
    assert b.server.requests == []


def test_key_error_never_falls_back(pair: tuple[OpenAIFake, OpenAIFake],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = pair
    monkeypatch.setenv("FIRST_API_KEY", "sk-wrong")
    r = run_cli(["generate", "x", "-p", "first,backup", "-o", "r.png"])
    assert r.code == 4
    assert b.server.requests == []
    monkeypatch.setenv("FIRST_API_KEY", KEY)
    monkeypatch.delenv("BACKUP_API_KEY")  # a fallback without a key: exit 3, nothing sent
    r = run_cli(["generate", "x", "-p", "first,backup", "-o", "r.png"])
    assert r.code == 3 and "BACKUP_API_KEY" in r.err
    assert a.server.requests[1:] == []  # only the 401 above reached anyone


def test_fallback_key_refused_names_its_own_key(pair: tuple[OpenAIFake, OpenAIFake],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 19, item 24: backup's refused key was said to come from FIRST_API_KEY.
    a, b = pair
    unavailable(a)
    monkeypatch.setenv("BACKUP_API_KEY", "sk-wrong")
    r = run_cli(["generate", "x", "-p", "first,backup", "--retries", "0", "-o", "r.png"])
    assert r.code == 4, r.err
    assert len(b.server.calls("/images/generations")) == 1
    assert "key came from environment variable BACKUP_API_KEY" in r.err
    assert "FIRST_API_KEY" not in r.err


def test_all_unavailable_exits_6(pair: tuple[OpenAIFake, OpenAIFake]) -> None:
    a, b = pair
    unavailable(a)
    unavailable(b)
    r = run_cli(["generate", "x", "-p", "first,backup", "--retries", "0", "-o", "r.png"])
    assert r.code == 6
    assert "backup is unavailable" in r.err
    assert not Path("r.png").exists()


def test_option_the_fallback_cannot_honour_fails_before_sending(
        pair: tuple[OpenAIFake, OpenAIFake], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    a, b = pair
    # dall-e-3 takes no --background: settled for each provider before anything is sent.
    path = tmp_path / "config.toml"
    path.write_text(path.read_text().replace('model = "gpt-image-1-mini"', 'model = "dall-e-3"'))
    r = run_cli(["generate", "x", "-p", "first,backup", "--background", "transparent"])
    assert r.code == 2
    assert "Fallback provider backup cannot take this request: --background" in r.err
    assert a.server.requests == [] and b.server.requests == []


def test_fallback_splits_n_by_the_next_providers_limit(
        pair: tuple[OpenAIFake, OpenAIFake], tmp_path: Path) -> None:
    a, b = pair
    path = tmp_path / "config.toml"
    path.write_text(path.read_text().replace('model = "gpt-image-1-mini"', 'model = "dall-e-3"'))
    unavailable(a)
    r = run_cli(["generate", "x", "-p", "first,backup", "-n", "2", "--retries", "0",
                 "-o", "d/{index}.png", "--json"])
    assert r.code == 0, r.err
    assert [c.json()["n"] for c in b.server.calls("/images/generations")] == [1, 1]
    report = json.loads(r.stdout)
    assert [i["index"] for i in report["images"]] == [1, 2]
    assert {i["provider"] for i in report["images"]} == {"backup"}
    # dall-e-3 1024x1024 standard from the table? backup is not OpenAI itself: unknown.
    assert report["cost_usd"] is None


def test_dry_run_shows_the_chain_and_each_estimate(pair: tuple[OpenAIFake, OpenAIFake]) -> None:
    r = run_cli(["generate", "x", "-p", "first,backup", "--dry-run", "-q"])
    assert r.code == 0, r.err
    shown = json.loads(r.stdout)
    assert shown["provider"] == "first"
    assert [f["provider"] for f in shown["fallback"]] == ["backup"]
    assert shown["fallback"][0]["estimated_cost"]["known"] is False


def test_unknown_fallback_name_exits_3(pair: tuple[OpenAIFake, OpenAIFake]) -> None:
    r = run_cli(["generate", "x", "-p", "first,nosuch", "--dry-run"])
    assert r.code == 3 and "Unknown fallback provider 'nosuch'" in r.err


def test_max_cost_covers_every_provider_of_the_chain(
        pair: tuple[OpenAIFake, OpenAIFake], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    a, b = pair
    path = tmp_path / "config.toml"
    path.write_text(path.read_text()
                    + '[providers.first.prices."gpt-image-1"]\nper_image = 0.01\n')
    r = run_cli(["generate", "x", "-p", "first,backup", "--max-cost", "1"])
    assert r.code == 2 and "price of backup model gpt-image-1-mini is unknown" in r.err
    assert a.server.requests == [] and b.server.requests == []
    path.write_text(path.read_text()
                    + '[providers.backup.prices."gpt-image-1-mini"]\nper_image = 0.5\n')
    r = run_cli(["generate", "x", "-p", "first,backup", "--max-cost", "0.4"])
    assert r.code == 2 and "$0.50 is over --max-cost $0.40" in r.err
    r = run_cli(["generate", "x", "-p", "first,backup", "--max-cost", "0.5", "-q", "-o", "o.png"])
    assert r.code == 0, r.err


def test_connection_refused_falls_back(pair: tuple[OpenAIFake, OpenAIFake],
                                       tmp_path: Path) -> None:
    import socket

    a, b = pair
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "config.toml"
    path.write_text(path.read_text().replace(a.url, f"http://127.0.0.1:{port}/v1"))
    r = run_cli(["generate", "x", "-p", "first,backup", "--retries", "0", "-o", "c.png",
                 "--json"])
    assert r.code == 0, r.err
    assert json.loads(r.stdout)["images"][0]["provider"] == "backup"
    assert "first is unavailable" in r.err


def test_timeout_falls_back(pair: tuple[OpenAIFake, OpenAIFake]) -> None:
    from tests.fakes.server import Response

    a, b = pair
    a.server.script.append(Response(200, b"{}", {"content-type": "application/json"},
                                    delay=1.0))
    r = run_cli(["generate", "x", "-p", "first,backup", "--retries", "0", "--timeout", "0.3",
                 "-o", "t.png", "-q"])
    assert r.code == 0, r.err
    assert len(b.server.calls("/images/generations")) == 1
    assert "did not answer within" in r.err  # -q still says why it fell back


def test_fallback_provider_keeps_its_own_rate_limit(pair: tuple[OpenAIFake, OpenAIFake],
                                                    tmp_path: Path) -> None:
    # The backup's `rpm` holds when it serves as a fallback in a batch (it used to get
    # a transport with no limits at all: every worker's call at once).
    from tests.conftest import SLEEPS

    a, b = pair
    path = tmp_path / "config.toml"
    path.write_text(path.read_text() + "rpm = 60\n")  # appended to [providers.backup]
    unavailable(a, 10)
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\nthree\n")
    r = run_cli(["batch", str(prompts), "-p", "first,backup", "-j", "3", "--retries", "0",
                 "-o", str(tmp_path / "out") + "/", "-q"])
    assert r.code == 0, r.err
    assert len(b.server.calls("/images/generations")) == 3
    # 60 a minute: the 2nd and 3rd calls wait one and two seconds (waits are recorded
    # by the test fixture, not slept).
    assert sorted(round(s) for s in SLEEPS) == [1, 2], SLEEPS
