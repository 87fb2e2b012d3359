"""The one clock the product reads: `today()` for rules that follow the calendar
(a model's lifecycle), `now()` for the time written into names and records.

`IMAGEGEN_TODAY=YYYY-MM-DD` judges the calendar rules as of that day: to see what
an installed table will say on a given date, and so that the test suite gives the
same answers on any day, in any time zone. It never changes file names or
timestamps, which always carry the real local time.
"""

from __future__ import annotations

import os
from datetime import date, datetime

from imagegen_cli.errors import UsageError

ENV_TODAY = "IMAGEGEN_TODAY"


def today() -> date:
    """Today's local date, or the day IMAGEGEN_TODAY names."""
    pinned = os.environ.get(ENV_TODAY, "").strip()
    if not pinned:
        return date.today()
    try:
        return date.fromisoformat(pinned)
    except ValueError:
        raise UsageError(f"{ENV_TODAY}={pinned!r} is not a date: write it as YYYY-MM-DD, "
                         f"or unset {ENV_TODAY}") from None


def now() -> datetime:
    """The real local time (names like {date}-{time}, records)."""
    return datetime.now()
