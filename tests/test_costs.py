"""Prices, estimates, --max-cost and the cost of a run, against the strict OpenAI fake."""

from __future__ import annotations

import base64
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KEY, run_cli, write_config
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.server import Response, png

TABLE = Path(__file__).parent.parent / "imagegen_cli" / "data" / "prices.toml"


def _table_cases() -> list[tuple[str, str, str | None, float]]:
    """(model, size, quality, USD) for every per-image figure, read from the data file
    itself (not through prices.py)."""
    data = tomllib.loads(TABLE.read_text())
    cases = []
    for model, entry in data["providers"]["openai"]["models"].items():
        for size, by in (entry.get("per_image") or {}).items():
            if isinstance(by, dict):
                cases += [(model, size, q, price) for q, price in by.items()]
            else:
                cases.append((model, size, None, by))
    return cases


CASES = _table_cases()


def test_table_covers_the_openai_models() -> None:
    models = {c[0] for c in CASES}
    assert {"gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2", "dall-e-3",
            "dall-e-2"} <= models
    data = tomllib.loads(TABLE.read_text())
    for name, entry in data["providers"]["openai"]["models"].items():
        for group in ("per_image", "tokens"):
            if group in entry:
                assert entry[f"{group}_source"] and entry[f"{group}_date"], (name, group)
    for name in ("distribute", "nebula", "yescale", "truefoundry"):
        assert data["providers"][name]["known"] is False
        assert "models" not in data["providers"][name]


def dry(args: list[str]) -> dict[str, Any]:
    r = run_cli(["generate", "a lighthouse", "--dry-run", "-q", *args])
    assert r.code == 0, r.err
    return json.loads(r.stdout)["estimated_cost"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("model", "size", "quality", "price"), CASES,
                         ids=[f"{m}-{s}-{q}" for m, s, q, _ in CASES])
def test_estimate_equals_the_table(fake: OpenAIFake, model: str, size: str,
                                   quality: str | None, price: float) -> None:
    args = ["-m", model, "-s", size] + (["--quality", quality] if quality else [])
    est = dry(args)
    assert est["known"] is True
    assert est["total_usd"] == {"min": price, "max": price}
    assert est["per_request"] == [{"n": 1, "min_usd": price, "max_usd": price}]
    assert not fake.server.requests


def test_estimate_per_request_and_total(fake: OpenAIFake) -> None:
    # dall-e-3 takes one image a request: three requests, each priced.
    est = dry(["-m", "dall-e-3", "-s", "1792x1024", "--quality", "hd", "-n", "3"])
    assert est["per_request"] == [{"n": 1, "min_usd": 0.12, "max_usd": 0.12}] * 3
    assert est["total_usd"] == {"min": 0.36, "max": 0.36}
    est = dry(["-m", "gpt-image-1", "-s", "1024x1024", "--quality", "medium", "-n", "4"])
    assert est["per_request"] == [{"n": 4, "min_usd": 0.168, "max_usd": 0.168}]


def test_unsettled_quality_or_size_is_a_range(fake: OpenAIFake) -> None:
    est = dry(["-m", "gpt-image-1", "-s", "1024x1024"])  # quality auto: the model decides
    assert est["total_usd"] == {"min": 0.011, "max": 0.167}
    assert "output tokens" in est["how"]
    est = dry(["-m", "gpt-image-1-mini", "--quality", "high"])  # size auto
    assert est["total_usd"] == {"min": 0.036, "max": 0.052}
    # dall-e-3's API defaults are known: no range.
    assert dry(["-m", "dall-e-3"])["total_usd"] == {"min": 0.04, "max": 0.04}


def test_dry_run_says_the_estimate_on_stderr(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "--dry-run", "-m", "gpt-image-1", "-s", "1024x1024",
                 "--quality", "high", "-n", "3"])
    assert r.code == 0
    assert "estimated cost (openai): $0.501" in r.err


def test_no_published_price_is_unknown_not_guessed(fake: OpenAIFake) -> None:
    est = dry(["-m", "gpt-image-2", "-s", "2048x1152", "--quality", "low"])
    assert est["known"] is False and "2048x1152" in est["how"]


def test_max_cost_below_estimate_sends_nothing(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "a lighthouse", "-m", "gpt-image-1", "-s", "1024x1024",
                 "--quality", "high", "-n", "2", "--max-cost", "0.30", "-o", "out/"])
    assert r.code == 2
    assert fake.server.requests == []
    assert not Path("out").exists()
    assert "Estimated cost $0.334 is over --max-cost $0.30" in r.err
    assert "2 image(s) x $0.167 per image" in r.err  # how it was made
    assert "Traceback" not in r.err


def test_max_cost_counts_the_dearest_end_of_a_range(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-m", "gpt-image-1", "--max-cost", "0.2"])
    assert r.code == 2 and fake.server.requests == []
    assert "$0.011-$0.25" in r.err


def test_max_cost_from_environment_and_defaults(fake: OpenAIFake, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["generate", "x", "-m", "gpt-image-1", "-s", "1024x1024", "--quality", "low",
            "-q", "-o", "a.png"]
    monkeypatch.setenv("IMAGEGEN_MAX_COST", "0.01")
    r = run_cli(args)
    assert r.code == 2 and "IMAGEGEN_MAX_COST $0.01" in r.err
    assert fake.server.requests == []
    r = run_cli([*args, "--max-cost", "0.02"])  # the flag wins
    assert r.code == 0, r.err
    monkeypatch.delenv("IMAGEGEN_MAX_COST")
    write_config(f'[defaults]\nmax_cost = 0.005\n[providers.openai]\nbase_url = "{fake.url}"\n',
                 monkeypatch, tmp_path)
    r = run_cli(args)
    assert r.code == 2 and "[defaults] max_cost $0.005" in r.err
    assert len(fake.server.requests) == 1


def test_bad_max_cost_is_a_usage_error(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "--max-cost", "lots"])
    assert r.code == 2 and "--max-cost 'lots' is not an amount in USD" in r.err


def test_under_the_cap_runs(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-m", "gpt-image-1", "-s", "1024x1024", "--quality", "low",
                 "--max-cost", "$0.02", "-q", "-o", "a.png"])
    assert r.code == 0, r.err
    assert Path("a.png").exists()


def gateway(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, extra: str = "") -> None:
    write_config(f'[providers.gw]\ntype = "openai"\nbase_url = "{url}"\n'
                 f'api_key_env = "GW_API_KEY"\n{extra}', monkeypatch, tmp_path)
    monkeypatch.setenv("GW_API_KEY", KEY)


def test_unknown_price_with_max_cost_exits_2(fake: OpenAIFake, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    gateway(monkeypatch, tmp_path, fake.url)
    r = run_cli(["generate", "x", "-p", "gw", "-m", "gpt-image-1", "--max-cost", "5"])
    assert r.code == 2
    assert fake.server.requests == []
    assert "price of gw model gpt-image-1 is unknown" in r.err
    assert 'imagegen config set providers.gw.prices."gpt-image-1" USD' in r.err
    # The same without a cap runs, and says the cost is unknown rather than $0.
    r = run_cli(["generate", "x", "-p", "gw", "-m", "gpt-image-1", "--json", "-o", "g.png"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    assert report["cost_usd"] is None and report["images"][0]["cost_usd"] is None


@pytest.mark.parametrize("provider", ["yescale", "nebula", "distribute", "truefoundry"])
def test_providers_without_public_prices_refuse_a_cap(provider: str) -> None:
    r = run_cli(["generate", "x", "-p", provider, "-m", "some-model", "--max-cost", "1",
                 "--dry-run"])
    assert r.code == 2
    assert f"price of {provider} model some-model is unknown" in r.err


def test_config_prices_add_and_override(fake: OpenAIFake, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    gateway(monkeypatch, tmp_path, fake.url,
            '[providers.gw.prices."gpt-image-1"]\nper_image = 0.5\nsource = "our contract"\n')
    r = run_cli(["generate", "x", "-p", "gw", "-m", "gpt-image-1", "-n", "2",
                 "--max-cost", "0.9"])
    assert r.code == 2 and "$1.00" in r.err and "your config" in r.err
    r = run_cli(["generate", "x", "-p", "gw", "-m", "gpt-image-1", "--max-cost", "0.5",
                 "--json", "-o", "g.png"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    # No token rates set for gw: the answer's usage cannot be priced, the table can.
    assert (report["cost_usd"], report["cost_source"]) == (0.5, "table")
    r = run_cli(["providers", "show", "gw"])
    assert "gpt-image-1 (your config)" in r.stdout and "our contract" in r.stdout


def test_config_overrides_an_openai_figure(fake: OpenAIFake, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(f'[providers.openai]\nbase_url = "{fake.url}"\n'
                 '[providers.openai.prices."gpt-image-1".per_image]\n'
                 '"1024x1024" = { low = 0.001 }\n', monkeypatch, tmp_path)
    assert dry(["-m", "gpt-image-1", "-s", "1024x1024", "--quality", "low"])[
        "total_usd"]["max"] == 0.001


def test_bad_price_table_in_config_exits_3(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    write_config('[providers.yescale.prices]\n"flux-pro" = "cheap"\n', monkeypatch, tmp_path)
    r = run_cli(["generate", "x", "-p", "yescale", "--dry-run"])
    assert r.code == 3
    assert "providers.yescale.prices" in r.err and "line 2" in r.err


def usage_answer(usage: dict[str, Any], n: int = 1) -> Response:
    data = [{"b64_json": base64.b64encode(png(8, 8)).decode()} for _ in range(n)]
    return Response.json({"created": 1, "data": data, "usage": usage},
                         **{"x-request-id": "req_usage"})


def test_cost_from_usage(fake: OpenAIFake) -> None:
    usage = {"total_tokens": 4280, "input_tokens": 120, "output_tokens": 4160,
             "input_tokens_details": {"text_tokens": 20, "image_tokens": 100}}
    fake.server.script.append(usage_answer(usage, n=2))
    r = run_cli(["generate", "x", "-m", "gpt-image-1", "-n", "2", "--json", "--sidecar",
                 "-o", "u/{index}.png"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    # gpt-image-1: text in $5, image in $10, image out $40 per 1M tokens
    exact = (20 * 5 + 100 * 10 + 4160 * 40) / 1_000_000
    assert report["cost_source"] == "usage"
    assert report["cost_usd"] == pytest.approx(exact)
    assert [i["cost_usd"] for i in report["images"]] == [pytest.approx(exact / 2)] * 2
    # dollars to the millionth, never float noise such as 0.0027500000000000003
    assert all(i["cost_usd"] == round(i["cost_usd"], 6) for i in report["images"])
    side = json.loads(Path("u/1.json").read_text())
    assert side["cost_usd"] == pytest.approx(exact / 2) and side["cost_source"] == "usage"
    assert side["provider"] == "openai"


def test_cost_from_table_when_no_usage(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-m", "dall-e-3", "--quality", "hd", "-s", "1024x1792",
                 "--json", "-o", "d.png"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    assert (report["cost_usd"], report["cost_source"]) == (0.12, "table")


def test_cost_line_at_the_end_of_an_interactive_run(fake: OpenAIFake,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import imagegen_cli.cli.generate as gen

    monkeypatch.setattr(gen, "_interactive", lambda: True)
    r = run_cli(["generate", "x", "-m", "dall-e-3", "-n", "3", "-o", "i/"])
    assert r.code == 0, r.err
    assert r.err.strip().splitlines()[-1] == "3 images, $0.12 (from the price table)"
    fake.server.script.append(usage_answer({"input_tokens": 0, "output_tokens": 3150}))
    r = run_cli(["generate", "x", "-m", "gpt-image-1", "-o", "j/"])
    assert r.err.strip().splitlines()[-1] == "1 image, $0.126"
    r = run_cli(["generate", "x", "-m", "gpt-image-2", "-o", "k/", "-q"])
    assert r.code == 0 and r.err == ""


def test_providers_show_prices_and_sources() -> None:
    r = run_cli(["providers", "show", "openai"])
    assert r.code == 0
    assert "1024x1024: low 0.011, medium 0.042, high 0.167" in r.stdout
    # Sources are shown for the default model (the others: --json).
    assert "developers.openai.com/api/docs/pricing" in r.stdout and "read 2026-11-23" in r.stdout
    r = run_cli(["providers", "show", "nebula"])
    assert "prices   : unknown" in r.stdout and "[providers.nebula.prices" in r.stdout
    r = run_cli(["providers", "show", "local"])
    assert "no money spent" in r.stdout
    r = run_cli(["providers", "show", "openai", "--json"])
    prices = json.loads(r.stdout)["prices"]
    assert prices["models"]["dall-e-2"]["per_image"]["256x256"] == 0.016


def test_local_costs_nothing_and_reports_compute(tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    pytest.importorskip("torch")
    from tests.tiny_pipelines import build

    sd, _ = build(tmp_path / "models")
    base = ["generate", "x", "-p", "local", "-m", str(sd), "--steps", "1", "--size", "32x32"]
    r = run_cli([*base, "--max-cost", "0", "--dry-run", "-q"])
    assert r.code == 0, r.err
    est = json.loads(r.stdout)["estimated_cost"]
    assert est["free"] is True and est["total_usd"] == {"min": 0, "max": 0}
    assert "no money is spent" in est["how"]
    r = run_cli([*base, "--json", "-o", "l.png"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    assert (report["cost_usd"], report["cost_source"]) == (0, "table")
    assert report["compute_s"] > 0


def test_config_set_fallback_and_max_cost(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config("", monkeypatch, tmp_path)
    assert run_cli(["config", "set", "providers.openai.fallback", "nebula,local"]).code == 0
    assert run_cli(["config", "set", "defaults.max_cost", "0.5"]).code == 0
    text = path.read_text()
    assert 'fallback = ["nebula", "local"]' in text and "max_cost = 0.5" in text
    r = run_cli(["config", "set", "providers.openai.prices", "1"])
    assert r.code == 2 and 'imagegen config set providers.openai.prices."MODEL" USD' in r.err


def test_jsonl_records_carry_provider_and_cost(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-m", "dall-e-2", "-s", "512x512", "-n", "2", "--jsonl",
                 "-o", "n/"])
    assert r.code == 0, r.err
    recs = [json.loads(line) for line in r.lines()]
    assert [(x["provider"], x["cost_usd"], x["cost_source"]) for x in recs] == [
        ("openai", 0.018, "table")] * 2


def test_batch_budget_refuses_jobs_that_would_cross_the_cap() -> None:
    from imagegen_cli.engine.budget import BatchBudget
    from imagegen_cli.engine.events import JobFinished
    from imagegen_cli.engine.save import Outcome, SavedImage
    from imagegen_cli.errors import ExitCode

    class J:
        def __init__(self, usd: float) -> None:
            self.usd = usd

    budget = BatchBudget(0.30, "--max-cost", lambda j: j.usd)
    a, b, c, d = J(0.167), J(0.167), J(0.04), J(0.10)
    assert budget.admit(a) is None and budget.admit(a) is None  # once per job, not per call
    refusal = budget.admit(b)
    assert refusal is not None and refusal.exit_code == ExitCode.PARTIAL
    assert "would take the batch over --max-cost $0.30" in str(refusal)
    assert budget.admit(b) is refusal
    assert budget.admit(c) is None  # a cheaper job still fits
    # a finished for less than its estimate (usage): the difference is free again
    img = SavedImage("p", 1, 1, 1, "png", 1, "x", None, None, cost_usd=0.05,
                     cost_source="usage")
    budget(JobFinished(a, Outcome(saved=[img])))  # type: ignore[arg-type]
    assert budget.committed == pytest.approx(0.09)
    assert budget.admit(d) is None


# ------------------------------------------------- the default model (gpt-image-2.6-flare)

def test_default_model_has_an_estimate(fake: OpenAIFake) -> None:
    """No -m, no --size, no --quality: the default model's estimate is the range of its
    1024x1024 figures, low to max, read from the data file."""
    data = tomllib.loads(TABLE.read_text())
    flare = data["providers"]["openai"]["models"]["gpt-image-2.6-flare"]
    figures = flare["per_image"]["1024x1024"].values()
    est = dry([])
    assert est["model"] == "gpt-image-2.6-flare"
    assert est["known"] is True
    assert est["total_usd"] == {"min": min(figures), "max": max(figures)}
    assert "output tokens" in est["how"]
    est = dry(["-n", "3", "--quality", "high", "-s", "1024x1024"])
    assert est["total_usd"]["max"] == pytest.approx(3 * flare["per_image"]["1024x1024"]["high"])
    assert not fake.server.requests


def test_max_cost_works_with_the_default_model(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "a lighthouse", "--max-cost", "1", "-q", "-o", "a.png"])
    assert r.code == 0, r.err
    assert Path("a.png").exists()
    sent = fake.server.requests
    assert len(sent) == 1 and sent[0].json()["model"] == "gpt-image-2.6-flare"
    # Below the top of the range (max quality, $0.21072 an image): nothing is sent.
    r = run_cli(["generate", "a lighthouse", "--max-cost", "0.10", "-o", "b.png"])
    assert r.code == 2
    assert len(fake.server.requests) == 1 and not Path("b.png").exists()
    assert "Estimated cost $0.0235-$0.2107 is over --max-cost $0.10" in r.err
    # An explicit quality that fits runs.
    r = run_cli(["generate", "x", "--quality", "low", "-s", "1024x1024", "--max-cost", "0.03",
                 "-q", "-o", "c.png"])
    assert r.code == 0, r.err


def test_default_model_at_an_unquoted_size_says_how_to_set_a_price(fake: OpenAIFake) -> None:
    r = run_cli(["generate", "x", "-s", "2048x1152", "--max-cost", "1", "-o", "d.png"])
    assert r.code == 2 and fake.server.requests == []
    assert "gpt-image-2.6-flare is unknown" in r.err and "2048x1152" in r.err
    assert 'config set providers.openai.prices."gpt-image-2.6-flare" USD' in r.err
    assert "Traceback" not in r.err


def test_streamed_cost_per_image_from_its_own_usage(fake: OpenAIFake) -> None:
    # Issue 19 item 8: each streamed image was charged the stream's running usage
    # total (2x the cost at n=3). The fake's completed events carry 10 text tokens in
    # and 90 image tokens out each.
    r = run_cli(["generate", "x", "-m", "gpt-image-1", "--stream", "-n", "3", "--json",
                 "--sidecar", "-o", "s/{index}.png"])
    assert r.code == 0, r.err
    report = json.loads(r.stdout)
    one = (10 * 5 + 90 * 40) / 1_000_000  # gpt-image-1: $5 text in, $40 image out per 1M
    assert [i["cost_usd"] for i in report["images"]] == [pytest.approx(one)] * 3
    assert report["cost_usd"] == pytest.approx(3 * one) and report["cost_source"] == "usage"
    assert report["usage"]["total_tokens"] == 300
    for k in (1, 2, 3):
        assert json.loads(Path(f"s/{k}.json").read_text())["cost_usd"] == pytest.approx(one)
