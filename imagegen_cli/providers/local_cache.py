"""The local models on this machine: huggingface_hub's cache, listed, filled, emptied.

`imagegen models list|pull|rm` (cli/models.py) speak to these functions only.
They use huggingface_hub's own cache functions (`scan_cache_dir`,
`snapshot_download`, `delete_revisions`) on the cache the library itself uses
(HF_HUB_CACHE, else HF_HOME/hub, read at call time). `pull` fetches only what a
diffusers pipeline loads: model_index.json, then each component folder it names,
safetensors weights only (no .bin/.ckpt duplicates, no fp16 variants, no
single-file checkpoints at the top). Every failure is one ConfigError (exit 3) or
UsageError (exit 2).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagegen_cli.providers import ConfigError, UsageError
from imagegen_cli.providers.local_load import hub_cache_dir, hub_unreachable, require_hub

# Weights a pipeline never loads when safetensors are there.
SKIP = ["*.bin", "*.ckpt", "*.pt", "*.pth", "*.onnx", "*.onnx_data", "*.msgpack", "*.h5",
        "*.fp16.*", "*.non_ema.*", "*.ema.*"]
LICENSE = re.compile(r"^license:\s*(\S.*?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class CachedModel:
    repo: str
    size: int  # bytes on disk
    files: int
    last_used: datetime | None
    license: str | None
    path: str

    def to_json(self) -> dict[str, Any]:
        return {"model": self.repo, "size_bytes": self.size, "files": self.files,
                "last_used": self.last_used.isoformat() if self.last_used else None,
                "license": self.license, "path": self.path}


def _scan() -> Any:
    require_hub()
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        return scan_cache_dir(hub_cache_dir())
    except CacheNotFound:
        return None
    except OSError as exc:
        raise ConfigError(f"Cannot read the model cache: {exc.strerror or exc}") from None


def _license(repo: Any) -> str | None:
    """The model card's `license:` (its README front matter), where it was downloaded."""
    for rev in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
        for f in rev.files:
            if f.file_name == "README.md":
                try:
                    text = Path(f.file_path).read_text(encoding="utf-8", errors="replace")
                except OSError:
                    return None
                front = text.split("---", 2)[1] if text.startswith("---") else ""
                m = LICENSE.search(front)
                return m.group(1).strip("'\"") if m else None
    return None


def list_models() -> list[CachedModel]:
    """The models in the cache, most recently used first."""
    info = _scan()
    if info is None:
        return []
    out = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        used = max(repo.last_accessed, repo.last_modified)
        out.append(CachedModel(repo.repo_id, repo.size_on_disk, repo.nb_files,
                               datetime.fromtimestamp(used, UTC) if used else None,
                               _license(repo), str(repo.repo_path)))
    return sorted(out, key=lambda m: m.last_used or datetime.min.replace(tzinfo=UTC),
                  reverse=True)


def find(model: str) -> CachedModel:
    for m in list_models():
        if m.repo.lower() == model.lower():
            return m
    raise UsageError(f"{model} is not in the model cache ({hub_cache_dir() or 'the default'}):"
                     " `imagegen models list` shows what is")


def remove(model: str) -> CachedModel:
    """Delete every revision of MODEL from the cache; what was removed."""
    found = find(model)
    info = _scan()
    repo = next(r for r in info.repos if r.repo_id == found.repo and r.repo_type == "model")
    try:
        info.delete_revisions(*(r.commit_hash for r in repo.revisions)).execute()
    except OSError as exc:
        raise ConfigError(f"Cannot remove {model} from the cache: {exc.strerror or exc}") \
            from None
    return found


def patterns(index: dict[str, Any]) -> list[str]:
    """The files of a pipeline with model_index.json INDEX: the index, the card, and
    each component folder it names (components set to null excepted)."""
    allow = ["model_index.json", "README.md", "LICENSE*"]
    for key, value in index.items():
        if not key.startswith("_") and isinstance(value, list) and value and value[0]:
            allow.append(f"{key}/*")
    return allow


def pull(model: str, *, quiet: bool = False) -> Path:
    """Download what MODEL's pipeline loads into the cache; its snapshot folder."""
    require_hub()
    if model.count("/") != 1 or Path(model).exists():
        raise UsageError(f"{model}: pass a hub id like stabilityai/sd-turbo (a folder is "
                         "used as it is, with -m)")
    offline = hub_unreachable()
    if offline:
        raise ConfigError(f"Cannot download {model}: no network ({offline}). Run `imagegen "
                          f"models pull {model}` where there is a network")
    import os

    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    (disable_progress_bars if quiet else enable_progress_bars)()
    endpoint = os.environ.get("HF_ENDPOINT") or None  # read now, not at import
    try:
        index_path = hf_hub_download(model, "model_index.json", cache_dir=hub_cache_dir(),
                                     endpoint=endpoint)
        index = json.loads(Path(index_path).read_text(encoding="utf-8"))
        folder = snapshot_download(model, cache_dir=hub_cache_dir(), endpoint=endpoint,
                                   allow_patterns=patterns(index), ignore_patterns=SKIP)
    except Exception as exc:  # noqa: BLE001 - every download failure becomes one message
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(
            exc).__name__
        raise ConfigError(f"Cannot download {model}: {reason}") from None
    return Path(folder)
