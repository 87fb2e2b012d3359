"""What the root command settles for every command of one run: whether --debug is
on, whether SIGTERM arrived. Commands read it here; app.py alone sets it."""

from __future__ import annotations

# The variable Click's completion protocol reads (`_IMAGEGEN_COMPLETE=bash_source`).
COMPLETE_VAR = "_IMAGEGEN_COMPLETE"

state = {"debug": False, "terminated": False}


def debug_enabled() -> bool:
    return state["debug"]
