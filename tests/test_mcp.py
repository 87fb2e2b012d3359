"""`imagegen mcp`: the MCP server over stdio, driven by the official SDK's own stdio
client (`mcp.Client` with StdioServerParameters): list the tools, call each, check the
files written and the content returned."""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.server import png

pytest.importorskip("mcp")

TOOLS = {"generate", "edit", "inpaint", "info", "estimate_cost", "list_providers",
         "list_models"}


def _with_client(out: Path, body: Callable[[Any], Awaitable[None]], *args: str) -> None:
    import anyio
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "imagegen_cli", "mcp", "-o", str(out), *args],
        env={k: v for k, v in os.environ.items()}, cwd=os.getcwd())

    async def main() -> None:
        async with Client(params, read_timeout_seconds=60) as client:
            await body(client)

    anyio.run(main)


def _text(result: Any) -> str:
    return next(c.text for c in result.content if c.type == "text")


def test_tools_over_stdio(fake: OpenAIFake, tmp_path: Path) -> None:
    out = tmp_path / "mcp-out"
    src = tmp_path / "in.png"
    src.write_bytes(png(64, 64))
    mask = tmp_path / "mask.png"
    mask.write_bytes(png(64, 64, (255, 255, 255)))
    seen: dict[str, Any] = {}

    async def body(client: Any) -> None:
        tools = await client.list_tools()
        seen["tools"] = {t.name for t in tools.tools}
        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append((done, total, message))

        seen["generate"] = await client.call_tool(
            "generate", {"prompt": "a red fox", "provider": "openai", "model": "gpt-image-1",
                         "n": 2, "folder": "foxes"}, progress_callback=on_progress)
        seen["progress"] = progress
        seen["edit"] = await client.call_tool(
            "edit", {"prompt": "make it blue", "images": [str(src)], "model": "gpt-image-1"})
        seen["inpaint"] = await client.call_tool(
            "inpaint", {"prompt": "a hat", "image": str(src), "mask": str(mask),
                        "model": "gpt-image-1"})
        seen["outside"] = await client.call_tool(
            "generate", {"prompt": "x", "folder": "../../escape"})
        seen["estimate"] = await client.call_tool(
            "estimate_cost", {"prompt": "x", "model": "gpt-image-1", "n": 3,
                              "settings": {"quality": "low"}})
        seen["providers"] = await client.call_tool("list_providers", {})
        seen["models"] = await client.call_tool("list_models", {"provider": "openai"})
        first = json.loads(_text(seen["generate"]))["paths"][0]
        seen["info"] = await client.call_tool("info", {"path": first})
        seen["bad_setting"] = await client.call_tool(
            "generate", {"prompt": "x", "settings": {"sampler": "euler"}})

    _with_client(out, body)
    assert seen["tools"] >= TOOLS

    gen = seen["generate"]
    assert not gen.is_error
    summary = json.loads(_text(gen))
    assert len(summary["paths"]) == 2 and summary["cost_usd"] > 0
    for p in summary["paths"]:
        assert Path(p).is_file() and Path(p).parent == (out / "foxes").resolve()
    pictures = [c for c in gen.content if c.type == "image"]
    assert len(pictures) == 2
    assert base64.b64decode(pictures[0].data)[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0")
    assert seen["progress"] and seen["progress"][-1][0] == 2

    for name in ("edit", "inpaint"):
        assert not seen[name].is_error, _text(seen[name])
        assert Path(json.loads(_text(seen[name]))["paths"][0]).is_file()

    assert seen["outside"].is_error and "outside" in _text(seen["outside"])
    assert not (tmp_path / "escape").exists()
    assert seen["bad_setting"].is_error and "sampler" in _text(seen["bad_setting"])

    est = json.loads(_text(seen["estimate"]))
    assert est["estimates"][0]["images"] == 3 and est["estimates"][0]["known"]
    providers = json.loads(_text(seen["providers"]))["providers"]
    assert any(p["name"] == "openai" and p["ready"] for p in providers)
    assert "gpt-image-2" in json.loads(_text(seen["models"]))["models"]
    info = json.loads(_text(seen["info"]))
    assert info["settings"]["prompt"] == "a red fox"
    assert fake.server.calls("/v1/images/generations")


def test_session_max_cost_holds(fake: OpenAIFake, tmp_path: Path) -> None:
    seen: list[Any] = []

    async def body(client: Any) -> None:
        for _ in range(6):
            seen.append(await client.call_tool(
                "generate", {"prompt": "x", "model": "gpt-image-1",
                             "settings": {"quality": "low"}}))

    _with_client(tmp_path / "o", body, "--max-cost", "0.03")
    errors = [r for r in seen if r.is_error]
    assert errors and not seen[0].is_error
    assert "--max-cost" in _text(errors[0])
    done = len(seen) - len(errors)
    assert len(fake.server.calls("/v1/images/generations")) == done
