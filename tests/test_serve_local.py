"""`imagegen serve` in front of the local provider: the pipeline loads once for every
request (the point of a server), concurrent requests take turns on it, and the extra
body fields (seed, steps, guidance) reach it."""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("torch")
pytest.importorskip("openai")
pytest.importorskip("starlette")

from tests.serve_helpers import serving  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.tiny_pipelines import build

    return build(tmp_path_factory.mktemp("models"))


def test_local_model_stays_loaded_across_requests(tiny: tuple[Path, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.tiny_pipelines import count_loads

    loads = count_loads(monkeypatch)
    results: list[Any] = []
    with serving(tmp_path / "out") as running:
        client = running.client(timeout=120)

        def one(seed: int) -> None:
            results.append(client.images.generate(
                model=f"local/{tiny[0]}", prompt="a fox", size="32x32",
                extra_body={"seed": seed, "steps": 1, "guidance": 1.5}))

        threads = [threading.Thread(target=one, args=(s,)) for s in (1, 2, 3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        again = client.images.generate(model=f"local/{tiny[0]}", prompt="a fox",
                                       size="32x32", extra_body={"seed": 1, "steps": 1,
                                                                 "guidance": 1.5})
    assert len(results) == 3 and len(loads) == 1
    first = next(r for r in results if r.data)
    assert base64.b64decode((first.data or [])[0].b64_json or "").startswith(b"\x89PNG")
    assert (again.data or [])[0].b64_json  # same seed: the same pixels (local's own test)
