"""imagegen_cli.engine.run driven directly, without Typer: one entry point serves a
run of one job and a batch of many, and a fallback chain moves on through the
scheduler (on a 503, never on a 400), between strict OpenAI fakes on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from PIL import Image

from imagegen_cli.engine import records, run
from imagegen_cli.engine.events import Event, FellBack, ImageWritten, JobFinished, JobStarted
from imagegen_cli.engine.options import ImageOptions
from imagegen_cli.errors import ExitCode
from imagegen_cli.files.naming import BATCH_TEMPLATE
from tests.conftest import provider_pair, unavailable
from tests.fakes.openai_fake import OpenAIFake, error

E = TypeVar("E")


@dataclass
class Listener:
    """A frontend that keeps what it is told, in order."""

    events: list[Event] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def frontend(self) -> run.Frontend:
        return run.Frontend(note=self.notes.append, warn=self.warnings.append,
                            sinks=[self.events.append])

    def of(self, kind: type[E]) -> list[E]:
        return [ev for ev in self.events if isinstance(ev, kind)]


@pytest.fixture
def pair(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
         ) -> Iterator[tuple[OpenAIFake, OpenAIFake]]:
    with provider_pair(monkeypatch, tmp_path, "gpt-image-2", "gpt-image-2") as fakes:
        yield fakes


def one(options: ImageOptions, seen: Listener) -> run.Plan:
    return run.plan_one(options, run.session(seen.frontend(), dict(os.environ)))


def many(text: str, seen: Listener, base: ImageOptions, concurrency: int = 4) -> run.Plan:
    recs = records.parse(text, "prompts.txt", "text", base)
    ctx = run.session(seen.frontend(), dict(os.environ), default_template=BATCH_TEMPLATE)
    return run.plan_batch(recs, ctx, source="prompts.txt",
                          batch=run.Batch(output=base.output), concurrency=concurrency)


def test_one_entry_point_runs_one_job(fake: OpenAIFake) -> None:
    seen = Listener()
    plan = one(ImageOptions(prompt="a fox", output="fox.png", count=2,
                            model="gpt-image-2"), seen)
    assert len(plan.jobs) == 1 and plan.batch is None
    tally = run.run(plan, seen.frontend())
    assert (tally.jobs, tally.done, tally.failed, tally.images) == (1, 1, 0, 2)
    assert [type(ev) for ev in seen.events] == [JobStarted, ImageWritten, ImageWritten,
                                                 JobFinished]
    paths = sorted(ev.image.path for ev in seen.of(ImageWritten))
    assert paths == ["fox-2.png", "fox.png"]
    assert len(fake.server.calls("/images/generations")) == 1  # n=2 in one request
    assert seen.warnings == []


def test_one_entry_point_runs_a_batch_and_its_journal_skips_a_rerun(
        fake: OpenAIFake) -> None:
    base = ImageOptions(output="out/", model="gpt-image-2")
    seen = Listener()
    plan = many("one\ntwo\nthree\n", seen, base, concurrency=2)
    assert [j.id for j in plan.jobs] == ["1", "2", "3"] and plan.batch is not None
    tally = run.run(plan, seen.frontend())
    assert (tally.jobs, tally.done, tally.images) == (3, 3, 3)
    assert len(fake.server.calls("/images/generations")) == 3
    assert Path("out/.imagegen-batch.jsonl").is_file()
    again = Listener()
    tally = run.run(many("one\ntwo\nthree\n", again, base), again.frontend())
    assert (tally.skipped, tally.done) == (3, 0)
    assert len(fake.server.calls("/images/generations")) == 3  # nothing sent again


def test_fallback_moves_on_after_503s_through_the_scheduler(
        pair: tuple[OpenAIFake, OpenAIFake]) -> None:
    a, b = pair
    unavailable(a)
    seen = Listener()
    plan = one(ImageOptions(prompt="a fox", provider="first,backup", retries=0,
                            output="fox.png"), seen)
    assert [m.provider.name for m in plan.jobs[0].members] == ["first", "backup"]
    tally = run.run(plan, seen.frontend())
    assert tally.done == 1
    (fell,) = seen.of(FellBack)
    assert (fell.provider, fell.to) == ("first", "backup")
    assert "HTTP 503" in fell.reason
    assert seen.warnings == [fell.text()]
    (written,) = seen.of(ImageWritten)
    assert (written.image.provider, written.image.fallback_from) == ("backup", "first")
    with Image.open("fox.png") as im:
        assert im.size == (48, 48)  # the backup's drawing
    assert len(a.server.calls("/images/generations")) == 1
    assert len(b.server.calls("/images/generations")) == 1


def test_fallback_in_a_batch_of_concurrent_jobs(pair: tuple[OpenAIFake, OpenAIFake]) -> None:
    a, b = pair
    unavailable(a, 2)
    seen = Listener()
    plan = many("one\ntwo\n", seen, ImageOptions(provider="first,backup", retries=0,
                                                 output="out/"), concurrency=2)
    tally = run.run(plan, seen.frontend())
    assert (tally.done, tally.failed) == (2, 0)
    assert len(seen.of(FellBack)) == 2
    assert {ev.image.provider for ev in seen.of(ImageWritten)} == {"backup"}
    assert tally.by_provider["backup"]["images"] == 2


def test_a_400_is_not_unavailable_and_never_reaches_the_next(
        pair: tuple[OpenAIFake, OpenAIFake]) -> None:
    a, b = pair
    a.server.script.append(error(400, "Invalid value for 'size'", "invalid_value", "size"))
    seen = Listener()
    tally = run.run(one(ImageOptions(prompt="x", provider="first,backup", output="r.png"),
                        seen), seen.frontend())
    assert (tally.done, tally.failed) == (0, 1)
    (_, failure), = tally.failures
    assert failure.exit_code == ExitCode.REFUSED
    assert seen.of(FellBack) == [] and seen.warnings == []
    assert b.server.requests == []
    assert not Path("r.png").exists()
