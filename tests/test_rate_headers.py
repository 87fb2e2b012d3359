"""`imagegen batch` (a real process) against a provider that says its request limit
in x-ratelimit-* headers, as OpenAI does: paced at it from the first answer that says
little is left, instead of learning it from 429s."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.ratelimit import RateLimit, duration
from tests.fakes.server import Request, Response


def batch(fake: OpenAIFake, headers: bool, jobs: int = 40) -> RateLimit:
    real = fake.server.app

    def slow(req: Request) -> Response:
        resp = real(req)
        resp.delay = 0.5  # slow calls: no answer is back when the first 429s are
        return resp

    fake.server.app = slow
    limit = RateLimit(fake.server, rpm=600, burst=2, headers=headers)
    Path("p.txt").write_text("\n".join(f"job {i}" for i in range(jobs)) + "\n")
    proc = subprocess.run([sys.executable, "-m", "imagegen_cli", "batch", "p.txt", "-o", "o/",
                           "-j", "8", "--json"], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == jobs
    assert len(list(Path("o").glob("*.png"))) == jobs
    return limit


def test_batch_paces_at_the_limit_the_headers_say(fake: OpenAIFake) -> None:
    # 10 requests a second, holding 2, and 0.5 s calls: of the first 8 at once, 6 are
    # refused, and their headers say the limit. From the pause's end (1 s) the batch
    # goes at it (9.8 a second) and nothing more is refused. Learning it from the
    # 429s instead starts from what got through before the pause (2 a second) and
    # climbs from there: some 6 accepted by 3 s, not 20.
    limit = batch(fake, headers=True)
    assert limit.accepted == 40 and limit.refused <= 6
    assert not [t for t in limit.refusals if t > 0.5], limit.refusals
    assert len([t for t in limit.accepts if t < 3.0]) >= 15, limit.accepts


def test_reset_durations_are_written_as_openai_does() -> None:
    assert [duration(s) for s in (0.02, 1.5, 60, 61.25)] == ["20ms", "1.5s", "1m0s",
                                                             "1m1.25s"]
