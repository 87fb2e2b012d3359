"""Where a setting comes from, and precedence, written once.

Owns `Source` (a flag, a variable, a config key with its line, a default) and
`Picked` (a value with its source), and `pick_from`, the one place precedence
lives: flag > environment > config file > built-in default. `setting` applies it
to one option of a command (the flag, its variable, [providers.NAME.defaults],
[defaults], the default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagegen_cli.settings.schema import Config


@dataclass(frozen=True)
class Source:
    """Where a setting's value came from, so every message about it can say so.

    kind: "flag" (name is the flag), "env" (the variable), "config" (the dotted key,
    with the file and line), "from" (a field a `--from` file recorded, with the file),
    or "default" (built in).
    """

    kind: str
    name: str = ""
    path: Path | None = None
    line: int | None = None

    def describe(self) -> str:
        if self.kind == "flag":
            return f"flag {self.name}"
        if self.kind == "env":
            return f"environment variable {self.name}"
        if self.kind == "config":
            shown = _home_short(self.path) if self.path is not None else "the config file"
            where = f"{shown}, line {self.line}" if self.line else shown
            return f"{self.name} in {where}"
        if self.kind == "from":
            return f"{self.name} in --from {self.path}"
        return "the built-in default"

    @property
    def global_default(self) -> bool:
        """A [defaults] value: meant for every provider, so skippable for one."""
        return self.kind == "config" and self.name.startswith("defaults.")


def _home_short(path: Path) -> str:
    """PATH as a user reads it: ~/.config/imagegen/config.toml under the home folder."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except (ValueError, RuntimeError, KeyError):  # elsewhere, or no home to be found
        return str(path)


@dataclass(frozen=True)
class Picked:
    """A resolved setting: its value and where it came from (None: nowhere)."""

    value: Any
    source: Source | None = None

    @property
    def is_set(self) -> bool:
        return self.source is not None and self.source.kind != "default"


def flag(name: str) -> Source:
    return Source("flag", name)


def env_source(name: str) -> Source:
    return Source("env", name)


def pick_from(*candidates: Picked, default: Any = None) -> Picked:
    """Precedence, written once: the first candidate that is set wins. Callers pass
    them in the order flag > environment > config file; DEFAULT comes last."""
    for c in candidates:
        if c.value is not None and c.value != "":
            return c
    return Picked(default, Source("default") if default is not None else None)


def pick(flag: Any, env_value: Any, config_value: Any, default: Any) -> Any:
    """`pick_from` for plain values, when the source is not needed."""
    return pick_from(Picked(flag), Picked(env_value), Picked(config_value),
                     default=default).value


def setting(
    cfg: Config,
    key: str,
    flag_value: Any,
    flag_name: str,
    env: Mapping[str, str] | None = None,
    env_var: str | None = None,
    *,
    provider: str | None = None,
    default: Any = None,
) -> Picked:
    """One option's value and source: the flag, then ENV_VAR, then
    [providers.PROVIDER.defaults], then [defaults], then DEFAULT."""
    env_value = env.get(env_var) if env is not None and env_var else None
    return pick_from(
        Picked(flag_value, flag(flag_name)),
        Picked(env_value, env_source(env_var) if env_var else None),
        cfg.default(key, provider),
        default=default,
    )
