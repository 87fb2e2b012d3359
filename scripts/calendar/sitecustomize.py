"""Loaded by every Python process of a `scripts/calendar-check` run (it is put on
PYTHONPATH): the calendar Python code sees starts at IMAGEGEN_FAKE_NOW and ticks on
from there. time.time, time.monotonic and time.perf_counter stay real, so file ages
(stat's mtime against time.time), deadlines and timeouts still compare honestly;
datetime, date and time.localtime/gmtime/strftime move."""

import os

_when = os.environ.get("IMAGEGEN_FAKE_NOW")
if _when:
    import time

    _real = (time.time, time.monotonic, time.perf_counter, time.time_ns, time.monotonic_ns,
             time.perf_counter_ns)
    from freezegun import freeze_time

    freeze_time(_when, tick=True).start()
    (time.time, time.monotonic, time.perf_counter, time.time_ns, time.monotonic_ns,
     time.perf_counter_ns) = _real
