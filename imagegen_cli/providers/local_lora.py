"""LoRA adapters for the local provider: `--lora PATH_OR_REPO[:WEIGHT]`, repeatable.

A spec is a .safetensors file, a folder holding one, or a hub id, with an optional
weight after the last colon (default 1; a colon not followed by a number is part
of the path). Each is loaded with diffusers' `load_lora_weights` under its own
adapter name and weighted with `set_adapters` (diffusers' LoRA loading goes
through peft). Images record each as AUTOMATIC1111 does, `<lora:NAME:WEIGHT>`
(NAME: a file's stem, a folder's name, or a hub id), and `--from` reads that
back: NAME is found as given, or as NAME.safetensors.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegen_cli.providers import ConfigError, UsageError
from imagegen_cli.settings.config import install_local

HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class Lora:
    source: str  # as given: a path or a hub id
    weight: float

    @property
    def name(self) -> str:
        """How an image records it: never the user's full path."""
        if HUB_ID.match(self.source) and not Path(os.path.expanduser(self.source)).exists():
            return self.source
        path = Path(os.path.expanduser(self.source))
        return path.stem if path.suffix == ".safetensors" else path.name

    def tag(self) -> str:
        return f"<lora:{self.name}:{self.weight:g}>"


def parse(spec: str) -> Lora:
    source, _, tail = spec.rpartition(":")
    if source and not tail.startswith(("/", "\\")):
        try:
            weight = float(tail)
        except ValueError:
            return Lora(spec, 1.0)
        if not math.isfinite(weight):
            raise UsageError(f"--lora {spec}: the weight must be a finite number")
        return Lora(source, weight)
    return Lora(spec, 1.0)


def resolve(lora: Lora) -> Lora:
    """LORA with a source that exists here (NAME as recorded -> NAME.safetensors), or
    a hub id; UsageError (exit 2) otherwise."""
    path = Path(os.path.expanduser(lora.source))
    if path.exists():
        return lora
    recorded = path.with_name(path.name + ".safetensors")
    if recorded.exists():
        return Lora(str(recorded), lora.weight)
    if HUB_ID.match(lora.source) and not lora.source.startswith((".", "~")):
        return lora
    raise UsageError(f"--lora {lora.source}: no such file or folder (nor "
                     f"{path.name}.safetensors); pass a .safetensors file, a folder or a hub "
                     "id like ORG/NAME")


def load(pipe: Any, loras: tuple[Lora, ...], *, family: str) -> None:
    """Load LORAS into PIPE and weight them; ConfigError (exit 3) naming the one that
    failed."""
    if not loras:
        return
    try:
        import peft  # noqa: F401
    except ImportError:
        raise ConfigError(f"--lora needs peft (in the 'local' extra): {install_local()}") \
            from None
    if not hasattr(pipe, "load_lora_weights"):
        raise UsageError(f"{family} takes no LoRA (its pipeline, {type(pipe).__name__}, "
                         "loads none): drop --lora")
    names = []
    for i, lora in enumerate(loras):
        name = f"lora{i}"
        path = Path(os.path.expanduser(lora.source))
        kwargs: dict[str, Any] = {"adapter_name": name}
        if path.is_file():
            source, kwargs["weight_name"] = str(path.parent), path.name
        else:
            source = str(path) if path.exists() else lora.source
        try:
            pipe.load_lora_weights(source, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every loader failure becomes one message
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(
                exc).__name__
            raise ConfigError(f"Cannot load LoRA {lora.source} into the {family} model: "
                              f"{reason}") from None
        names.append(name)
    pipe.set_adapters(names, adapter_weights=[lora.weight for lora in loras])
