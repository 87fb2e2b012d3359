"""Request options with provenance: which flag, variable or config key set each one,
and [defaults] values a provider cannot honour dropped with a note, not an error.

`config.pick_from` decides precedence; this module carries its answers into an
`ImageRequest` (`origins`, for messages) and settles the global defaults against
the provider's declared capabilities (`Provider.validate`, the one declaration).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from imagegen_cli.errors import UsageError
from imagegen_cli.settings import options
from imagegen_cli.settings.precedence import Picked, Source

if TYPE_CHECKING:
    from imagegen_cli.providers.base import Provider
    from imagegen_cli.types import ImageRequest

def flag_of(field: str) -> str:
    """The flag an `ImageRequest` FIELD stands for, as messages name it (the option
    table's `said`, else its long flag); FIELD itself when no option sets it."""
    row = options.by_request(field)
    return row.flag if row is not None else field


def origins(picked: Mapping[str, Picked]) -> dict[str, str]:
    """flag -> where its value came from, for the values not typed as flags."""
    out = {}
    for name, p in picked.items():
        if p.source is not None and p.source.kind in ("env", "config") and p.value is not None:
            out[flag_of(name)] = p.source.describe()
    return out


def blame(exc: UsageError, source: Source | None) -> UsageError:
    """EXC with where the offending value was set, when that was not a flag."""
    if source is not None and source.kind in ("env", "config"):
        return UsageError(f"{exc.message} (set by {source.describe()})")
    return exc


def settle_global_defaults(
    provider: Provider,
    req: ImageRequest,
    skippable: Mapping[str, Source],
    *,
    inpaint: bool = False,
) -> tuple[ImageRequest, list[str]]:
    """REQ without the [defaults] values (fields in SKIPPABLE) that PROVIDER cannot
    honour, and a note for each one dropped. Each value is tried on its own against
    `provider.validate`, so the reasons are the provider's declared ones."""
    base = req.with_(**{f: _unset(f) for f in skippable}, notices=[])
    base = provider.validate(base, inpaint=inpaint)
    notes: list[str] = []
    kept: dict[str, Any] = {}
    for field, source in skippable.items():
        value = getattr(req, field)
        trial = base.with_(**kept, **{field: value}, notices=[], origins={})
        try:
            provider.validate(trial, inpaint=inpaint)
        except UsageError as exc:
            reason = exc.message
            notes.append(f"{source.name} = {_show(value)} (in {source.path}) is not used with "
                         f"{provider.name}: {reason}; set it per provider in "
                         f"[providers.{provider.name}.defaults] instead")
            continue
        kept[field] = value
    return req.with_(**{f: (kept[f] if f in kept else _unset(f)) for f in skippable}), notes


def _unset(field: str) -> Any:
    return 1 if field == "n" else None


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)
