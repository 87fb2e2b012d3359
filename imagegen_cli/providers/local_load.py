"""Loading a local model: the libraries, the device, and the diffusers pipeline.

Owns checking the `local` extra is installed, choosing the device (--device
auto: cuda, then mps, then cpu) and dtype, silencing the libraries' own bars and
warnings, loading a pipeline from a folder or a hub id (from the cache first,
downloading only when the hub can be reached, every failure one message, exit
3), and telling an inpainting-only model from its folder or name. torch and
diffusers are imported only inside these functions.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any

from imagegen_cli.providers import ConfigError, UsageError
from imagegen_cli.providers.local_families import Model, cuda_dtype
from imagegen_cli.settings.config import install_local


def require_libraries() -> Any:
    try:
        import diffusers  # noqa: F401
        import torch
    except ImportError:

        raise ConfigError(
            f"The local provider needs the 'local' extra: {install_local()}") from None
    return torch


def require_hub() -> None:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"The model cache needs the 'local' extra: {install_local()}") from None


def pick_device(torch: Any, wanted: str) -> str:
    if wanted == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if wanted == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here (try --device auto)")
    if wanted == "mps" and not (getattr(torch.backends, "mps", None)
                                and torch.backends.mps.is_available()):
        raise UsageError("--device mps: no Apple GPU is available here (try --device auto)")
    return wanted


def pick_dtype(torch: Any, wanted: str | None, device: str, family: Model | None = None) -> Any:
    """The dtype asked for. Unset: the family's on CUDA (bfloat16 for the DiT
    families, float16 for the UNet ones), float32 elsewhere. `auto`: as unset, but
    bfloat16 on a CPU with bf16 instructions (2.1-2.4x faster than float32 there) and
    for the DiT families on CUDA."""
    if wanted == "auto":
        if device == "cuda":
            return getattr(torch, cuda_dtype(family))
        if device == "cpu" and cpu_has_bf16():
            return torch.bfloat16
        return torch.float32
    if wanted is None:
        return getattr(torch, cuda_dtype(family)) if device == "cuda" else torch.float32
    return getattr(torch, wanted)


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX-BF16); without
    them torch emulates it, slower than float32. Linux only: elsewhere, no."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def hub_cache_dir() -> str | None:
    """The hub cache huggingface_hub uses, read now (its own constant is read once, at
    import): HF_HUB_CACHE, else HF_HOME/hub; None: the library's default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def load_fast_vae(repo: str, *, dtype: Any) -> Any:
    """The tiny decoder REPO (madebyollin/taesd...) from the hub cache, downloaded
    when the hub can be reached; ConfigError (exit 3) when neither."""
    from diffusers import AutoencoderTiny

    try:
        return AutoencoderTiny.from_pretrained(repo, torch_dtype=dtype, cache_dir=hub_cache_dir(),
                                               local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached: try the hub
        offline = hub_unreachable()
        if offline:
            raise ConfigError(
                f"--fast-vae: the tiny decoder {repo} is not on this machine and cannot be "
                f"downloaded: no network ({offline}). Fetch it with `hf download {repo}` "
                "where there is a network, or drop --fast-vae") from None
    try:
        return AutoencoderTiny.from_pretrained(repo, torch_dtype=dtype, cache_dir=hub_cache_dir())
    except Exception as exc:  # noqa: BLE001 - every loader failure becomes one message
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(
            exc).__name__
        raise ConfigError(f"--fast-vae: cannot load the tiny decoder {repo}: {reason}") from None


def _quiet_libraries(quiet: bool) -> None:
    """Silence the libraries' own bars and warnings: progress is ours. The one bar
    kept is huggingface_hub's for a model download (unless -q)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", module="diffusers")
    warnings.filterwarnings("ignore", module="transformers")
    warnings.filterwarnings("ignore", module="huggingface_hub")
    warnings.filterwarnings("ignore", category=FutureWarning)
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()  # this also turns off huggingface_hub's download bars...
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    (disable_progress_bars if quiet else enable_progress_bars)()  # ...so set them again
    # Its retry warnings ("Retrying in 1s [Retry 1/5]") are not for the user: a
    # download that cannot happen gets one message of ours instead.
    from huggingface_hub.utils import logging as hlog

    hlog.set_verbosity_error()


def hub_unreachable(env: Any = None) -> str | None:
    """Why the model hub cannot be reached, found in at most ~3 s, or None when it
    may be. A proxy in the environment is trusted (the library will use it)."""
    import socket
    from urllib.parse import urlsplit

    env = os.environ if env is None else env
    if str(env.get("HF_HUB_OFFLINE", "")).lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    if any(env.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    endpoint = urlsplit(env.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=3):
            return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, socket.gaierror):
            reason = "the name does not resolve"
        elif isinstance(exc, TimeoutError):
            reason = "no answer within 3 s"
        return f"{host} cannot be reached ({reason})"


def is_inpainting_model(model: str) -> bool:
    """A model that only repaints (its UNet takes the image and mask: 9 channels),
    judged from the folder on disk or, for a hub id, from its name."""
    import json

    path = Path(os.path.expanduser(model))
    if not path.exists():
        return "inpaint" in model.lower()
    try:
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
        if "Inpaint" in str(index.get("_class_name", "")):
            return True
        unet = json.loads((path / "unet" / "config.json").read_text(encoding="utf-8"))
        return bool(unet.get("in_channels") == 9)
    except (OSError, ValueError, AttributeError):
        return False


def load_pipeline(model: str, *, inpaint: bool, dtype: Any, quiet: bool = False,
                  img2img: bool = False, cls_name: str | None = None,
                  family: Model | None = None) -> Any:
    """A diffusers pipeline from a folder or a hub id; ConfigError (exit 3) when the
    model is neither on disk nor downloadable. CLS_NAME: the class FAMILY's table row
    names (local_families.py); without one, diffusers' AutoPipeline picks."""
    _quiet_libraries(quiet)
    import diffusers

    if cls_name:
        cls = getattr(diffusers, cls_name)
    else:
        cls = (diffusers.AutoPipelineForInpainting if inpaint else
               diffusers.AutoPipelineForImage2Image if img2img else
               diffusers.AutoPipelineForText2Image)
    what = f"{family.family.name} model {model}" if family else f"model {model}"
    path = Path(os.path.expanduser(model))
    # A hub id is ORG/NAME; anything else that is not on disk is a missing folder.
    hub_id = not path.exists() and not model.startswith((".", "/", "~")) \
        and model.count("/") == 1
    if path.exists():
        if not (path / "model_index.json").exists():
            raise ConfigError(f"{path} is not a diffusers model folder (no model_index.json)")
        missing = [c for c in (family.components() if family else [])
                   if not (path / c).is_dir()]
        if missing:
            raise ConfigError(
                f"The {what} is incomplete: model_index.json names "
                f"{', '.join(missing)}, which the folder lacks. Copy the whole model "
                "folder, or pass -m with a complete one")
        source, kwargs = str(path), {"local_files_only": True}
    elif not hub_id:
        raise ConfigError(f"Model folder {model} does not exist: pass -m with a diffusers "
                          "folder or a hub id like stabilityai/sd-turbo")
    else:
        source, kwargs = model, {}
    try:
        try:
            pipe = cls.from_pretrained(source, torch_dtype=dtype, local_files_only=True)
        except Exception:  # noqa: BLE001 - not cached: try the hub (progress bar shown)
            if kwargs.get("local_files_only"):
                raise
            offline = hub_unreachable()
            if offline:
                raise ConfigError(
                    f"Model {model} is not on this machine and cannot be downloaded: no "
                    f"network ({offline}). Fetch it with `hf download {model}` where there "
                    "is a network, or pass -m /path/to/a/diffusers/folder") from None
            pipe = cls.from_pretrained(source, torch_dtype=dtype)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - every loader failure becomes one message
        reason = str(exc).strip().splitlines()[0][:200].rstrip(".") if str(exc).strip() else type(
            exc).__name__
        # A folder is here already: downloading is no cure for it.
        cure = ("check the folder is a complete diffusers model" if path.exists() else
                f"fetch it with `hf download {model}` while online, or pass -m "
                "/path/to/a/diffusers/folder")
        piece = f" (loading it as {cls.__name__})" if cls_name else ""
        raise ConfigError(f"Cannot load the {what}{piece}: {reason}. {cure[0].upper()}"
                          f"{cure[1:]}") from None
    with contextlib.suppress(Exception):
        pipe.set_progress_bar_config(disable=True)
    return pipe
