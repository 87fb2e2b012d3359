"""The typed options of one image command, and what settling reads besides them.

`ImageOptions` holds what a user asked for, unresolved: every field of
`generate`/`inpaint`/`edit` (a flag or a batch record's field), None where unset.
`Context` carries the config, the environment, where notices go and the providers
created so far (one per name, shared by every job). `parse_params` turns
`--param KEY=VALUE` items into the options' `params`. Nothing here resolves or
validates: `settle` does that.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen_cli.errors import UsageError
from imagegen_cli.registry import create
from imagegen_cli.secrets import register_params
from imagegen_cli.settings import config as cfgmod
from imagegen_cli.types import ImageSettings

if TYPE_CHECKING:
    from imagegen_cli.providers.base import Provider
    from imagegen_cli.settings.provider import ProviderConfig
    from imagegen_cli.settings.schema import Config


@dataclass(frozen=True, kw_only=True)
class ImageOptions(ImageSettings):
    """One image command's options, as given (None: not given): the image settings a
    provider reads (types.ImageSettings, shared with the request) and the rest.

    Written out, not built from the option table (settings/options.py), so that it
    stays typed; tests/test_option_table.py holds the two together."""

    prompt: str | None = None
    provider: str | None = None
    model: str | None = None
    count: int | None = None
    aspect: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    output: str | None = None
    format: str | None = None
    overwrite: bool = False
    no_metadata: bool = False
    sidecar: bool = False
    keep_partials: bool = False
    timeout: float | None = None
    retries: int | None = None
    image: tuple[Path | str, ...] = ()  # edit: a file or an http(s) URL
    mask: Path | None = None
    invert_mask: bool = False
    # providers to try, in turn, when the first is unavailable (a batch record's
    # `fallback`; fallback.settle_chain reads it)
    fallback: tuple[str, ...] = ()
    dry_run: bool = False  # nothing is fetched either (edit's -i URLs)
    # `generate --from FILE`: the file, and the fields its values filled (no flag given):
    # a value the provider cannot take is dropped with a note naming the file.
    from_file: Path | None = None
    recorded: frozenset[str] = frozenset()

    def with_(self, **changes: Any) -> ImageOptions:
        return dataclasses.replace(self, **changes)


@dataclass
class Context:
    """What settling reads besides the options: config, environment, and where
    notices go. Providers are created once per name and shared by all jobs (the
    local provider keeps its loaded model)."""

    cfg: Config
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    note: Callable[[str], None] = lambda text: None
    # What must be seen even with -q (a deprecated model); shown once each.
    warn: Callable[[str], None] = lambda text: None
    default_template: str | None = None
    providers: dict[str | None, tuple[Provider, ProviderConfig]] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)

    def notice(self, text: str) -> None:
        """Each distinct notice once (a batch of 200 says it once, not 200 times)."""
        if text not in self._seen:
            self._seen.add(text)
            self.note(text)

    def warn_once(self, text: str) -> None:
        """Each distinct warning once; shown even with -q."""
        if text not in self._seen:
            self._seen.add(text)
            self.warn(text)

    def provider(self, name: str | None) -> tuple[Provider, ProviderConfig]:
        if name not in self.providers:

            pcfg, auto_note = cfgmod.resolve_provider(self.cfg, name, self.env)
            if auto_note:
                self.notice(auto_note)
            self.providers[name] = (create(pcfg, self.env), pcfg)
        return self.providers[name]


def parse_params(items: list[str] | None) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param '{item}' is not KEY=VALUE")
        try:
            value: Any = json.loads(raw, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            value = raw  # not JSON (or NaN, Infinity, 1e999, too deep): the text itself
        if isinstance(value, float) and not math.isfinite(value):
            value = raw
        out[key.strip()] = value

    register_params(out)  # --param api_key=... is never printed
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(name)
