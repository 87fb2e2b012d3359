"""Hypothesis settings shared by the fuzz suites (tests/test_fuzz_*.py).

Each fuzz test states its CI example count with `fuzz(N)`. A deeper run sets
IMAGEGEN_FUZZ_EXAMPLES (scripts/fuzz-long does: 100,000 per parser), which
replaces every count.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

F = TypeVar("F", bound=Callable[..., Any])


def examples(ci: int) -> int:
    deep = os.environ.get("IMAGEGEN_FUZZ_EXAMPLES")
    return int(deep) if deep else ci


def fuzz(ci: int) -> Callable[[F], F]:
    """Settings for one fuzz test: CI examples unless a deep run is asked for; no
    deadline (a shared CI box is slow at times); no example database left behind."""
    return settings(  # type: ignore[return-value]
        max_examples=examples(ci),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.function_scoped_fixture,
                               HealthCheck.filter_too_much],
    )
