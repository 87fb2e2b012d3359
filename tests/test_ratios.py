"""--aspect for a model sized by named ratios, and --resolution where no model takes it."""

from __future__ import annotations

import pytest

from imagegen_cli.engine.settle import nearest_ratio
from tests.conftest import run_cli

GEMINI_LIKE = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")


@pytest.mark.parametrize(("asked", "sent"), [
    ("16:9", "16:9"), ("1:1", "1:1"), ("1920:1080", "16:9"), ("2:1", "16:9"),
    ("7:3", "21:9"), ("1:2", "9:16"), ("5:4", "5:4"), ("6:5", "5:4"),
])
def test_aspect_goes_to_the_nearest_documented_ratio(asked: str, sent: str) -> None:
    assert nearest_ratio(asked, GEMINI_LIKE) == sent


def test_resolution_on_a_model_without_tiers_is_refused_naming_the_flag() -> None:
    r = run_cli(["generate", "a cat", "-p", "openai", "--resolution", "2K", "--dry-run"],
                )
    assert r.code == 2, r.err
    assert "--resolution" in r.err and "not supported" in r.err


def test_resolution_outside_every_tier_is_refused() -> None:
    r = run_cli(["generate", "a cat", "-p", "openai", "--resolution", "8K", "--dry-run"])
    assert r.code == 2
    assert "--resolution" in r.err
