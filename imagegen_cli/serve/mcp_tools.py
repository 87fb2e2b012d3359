"""The MCP tools (placeholder until written)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run(door: Any, folder: Path, cap: float | None) -> None:
    raise NotImplementedError
