"""Shell completion: dynamic values, and the committed scripts in completions/.

Regenerate the scripts with `python -m imagegen_cli.cli.completion` (a test
fails when they are stale).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

SHELLS = {"bash": "imagegen.bash", "zsh": "_imagegen", "fish": "imagegen.fish",
          "powershell": "imagegen.ps1"}


def complete_provider(incomplete: str) -> list[str]:
    from imagegen_cli import config
    from imagegen_cli.errors import ImagegenError

    try:
        names = list(config.load().providers)
    except ImagegenError:
        return []
    return [n for n in names if n.startswith(incomplete)]


def complete_model(ctx: Any, incomplete: str) -> list[str]:
    """Models of the provider named on the line (or the default one); no network."""
    import os

    from imagegen_cli import config
    from imagegen_cli.errors import ImagegenError
    from imagegen_cli.providers.base import create

    try:
        cfg = config.load()
        pcfg, _ = config.resolve_provider(cfg, ctx.params.get("provider"), os.environ)
        models = create(pcfg, os.environ).known_models()
    except ImagegenError:
        return []
    return [m for m in models if m.startswith(incomplete)]


def script(shell: str) -> str:
    from typer._completion_shared import get_completion_script

    from imagegen_cli.cli.app import COMPLETE_VAR

    return get_completion_script(prog_name="imagegen", complete_var=COMPLETE_VAR,
                                 shell=shell) + "\n"


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("completions")
    folder.mkdir(exist_ok=True)
    for shell, name in SHELLS.items():
        (folder / name).write_text(script(shell))
        print(folder / name)


if __name__ == "__main__":
    main()
