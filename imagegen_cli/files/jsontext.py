"""JSON that someone else wrote: batch records, NDJSON manifests, the journal,
sidecars and the metadata in images.

`loads` is `json.loads` made strict where the standard library is lenient or
crashes: NaN, Infinity and -Infinity (no JSON, but Python reads them), a number
that overflows a float (1e400 reads as inf), an integer too long to convert
(CPython's 4300-digit limit raises a bare ValueError) and nesting deep enough to
exhaust the stack (RecursionError) are each a ValueError saying what was wrong.
Every caller already turns a ValueError into its own one-line error.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64  # arrays and objects inside each other; no record of ours nests past 4


def loads(text: str | bytes) -> Any:
    """TEXT as JSON; ValueError (a JSONDecodeError where the text is no JSON at all)
    for the shapes the module docstring names."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} deep") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # the integer digit limit, or ours below
        raise ValueError(_why(exc)) from None
    if _depth(value) > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} deep")
    return value


def why(exc: ValueError) -> str:
    """What a ValueError from `loads` says, as a message's clause."""
    return exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is no JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is out "
                         "of range")
    return value


def _why(exc: ValueError) -> str:
    text = str(exc)
    if "integer string conversion" in text:
        return "an integer with more than 4300 digits"
    return text


def _depth(value: Any) -> int:
    """How deep VALUE nests (without recursion: json.loads let it through)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            depth += 1
            if depth > MAX_DEPTH:
                return depth
            deepest = max(deepest, depth)
            stack.extend((x, depth) for x in (item.values() if isinstance(item, dict)
                                              else item))
    return deepest
