"""A local diffusers pipeline: no key, no account (the `local` extra).

torch and diffusers are imported only inside `run`, never on other paths.
The model (a folder or a hub id) loads once per command, whatever -n is, and
once per distinct model for a whole batch.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen_cli.errors import ConfigError, UsageError
from imagegen_cli.http import HttpCall
from imagegen_cli.providers.base import Capabilities, Provider, SizeRule, opt
from imagegen_cli.requests import CallInfo, GeneratedImage, ImageRequest, Reporter

if TYPE_CHECKING:
    from imagegen_cli.http import Transport

DEFAULT_MODEL = "stabilityai/sd-turbo"
INSTALL = "pip install 'imagegen-cli[local]'"
CAPS = Capabilities(
    options=opt("--seed", "--steps", "--guidance", "--negative-prompt", "--device", "--dtype"),
    values={"--device": ("auto", "cpu", "cuda", "mps"),
            "--dtype": ("float32", "float16", "bfloat16")},
    ranges={"--steps": (1, 1000)},
    sizes=SizeRule(min_side=8, max_side=4096, multiple=8),
    max_n=64, max_count=64, inpaint=True,
    notes=("runs on this machine: the model loads once per command",),
)


class LocalProvider(Provider):
    type_name = "local"
    needs_key = False
    max_concurrency = 1  # one model on one device: jobs run back to back

    def __init__(self, cfg: Any, env: Any) -> None:
        super().__init__(cfg, env)
        self._pipes: dict[tuple[str, bool, str, str], Any] = {}

    def capabilities(self, model: str | None) -> Capabilities:
        return CAPS

    def default_model(self) -> str | None:
        return self.cfg.model or DEFAULT_MODEL

    def known_models(self) -> list[str]:
        return [self.default_model() or DEFAULT_MODEL]

    def prepare(self, req: ImageRequest, key: str | None) -> list[HttpCall]:
        # Nothing goes over the network; --dry-run shows what would run.
        shown = _call_args(req)
        if req.seed is not None:
            shown["seed"] = req.seed
        return [HttpCall("LOCAL", str(req.model), json=shown)]

    def check(self, key: str | None, transport: Transport) -> str:
        _require_libraries()
        return "diffusers is installed"

    def run(
        self, req: ImageRequest, key: str | None, transport: Transport, reporter: Reporter
    ) -> Iterator[tuple[GeneratedImage, CallInfo]]:
        torch = _require_libraries()
        device = _device(torch, req.device or "auto")
        dtype = _dtype(torch, req.dtype, device)
        inpaint = bool(req.images and req.mask)
        started = time.perf_counter()
        # Loaded once per distinct model for the whole command (a batch shares this
        # provider instance), then reused by every job.
        cache_key = (str(req.model), inpaint, str(dtype), device)
        pipe = self._pipes.get(cache_key)
        if pipe is None:
            reporter.status(f"loading {req.model}")
            pipe = load_pipeline(str(req.model), inpaint=inpaint, dtype=dtype,
                                 quiet=bool(getattr(reporter, "quiet", False)))
            pipe.to(device)
            self._pipes[cache_key] = pipe
        info = CallInfo(extra={"device": device, "load_s": round(time.perf_counter() - started,
                                                                  3)})
        base_seed = req.seed if req.seed is not None else secrets.randbits(31)
        stop = _StopFlag()
        with stop.installed():
            for i in range(req.n):
                seed = base_seed + i
                reporter.status(f"image {i + 1}/{req.n}")
                args = _call_args(req)
                if inpaint:
                    args.update(_inpaint_args(req))

                def on_step(p: Any, step: int, timestep: Any, kw: dict[str, Any]) -> Any:
                    # The total comes from the pipeline (strength and schedulers change it).
                    reporter.step(step + 1, int(getattr(p, "num_timesteps", 0) or 0))
                    if stop.requested:
                        raise KeyboardInterrupt
                    return kw

                t0 = time.perf_counter()
                generator = torch.Generator(device="cpu").manual_seed(seed)
                image = pipe(**args, generator=generator, callback_on_step_end=on_step,
                             output_type="pil").images[0]
                if inpaint:
                    first = req.images[0]
                    if image.size != (first.width, first.height):
                        from PIL import Image

                        image = image.resize((first.width, first.height),
                                             Image.Resampling.LANCZOS)
                buf = io.BytesIO()
                image.save(buf, format="PNG", compress_level=4)
                yield GeneratedImage(index=i, data=buf.getvalue(), seed=seed, timings={
                    "inference_s": round(time.perf_counter() - t0, 3)}), info


def _call_args(req: ImageRequest) -> dict[str, Any]:
    args: dict[str, Any] = {"prompt": req.prompt}
    if req.size and req.size != "auto":
        w, h = (int(x) for x in req.size.split("x"))
        args.update(width=w, height=h)
    turbo = "turbo" in str(req.model).lower()
    # Turbo models are distilled for a few steps without guidance.
    steps = req.steps if req.steps is not None else (2 if turbo else None)
    guidance = req.guidance if req.guidance is not None else (0.0 if turbo else None)
    if steps is not None:
        args["num_inference_steps"] = steps
    if guidance is not None:
        args["guidance_scale"] = guidance
    if req.negative_prompt:
        args["negative_prompt"] = req.negative_prompt
    args.update(req.params)
    return args


def _inpaint_args(req: ImageRequest) -> dict[str, Any]:
    from PIL import Image

    from imagegen_cli.masks import load_area

    first = req.images[0]
    image = Image.open(io.BytesIO(first.data)).convert("RGB")
    mask = load_area(req.mask)  # type: ignore[arg-type]
    # Sides must be multiples of 8: the pipeline works at the rounded size and the
    # result is resized back to the input's.
    if req.size and req.size != "auto":
        w, h = (int(x) for x in req.size.split("x"))
    else:
        w, h = (max(8, round(v / 8) * 8) for v in image.size)
    return {"image": image.resize((w, h)), "mask_image": mask.resize((w, h)), "width": w,
            "height": h}


def _require_libraries() -> Any:
    try:
        import diffusers  # noqa: F401
        import torch
    except ImportError:
        raise ConfigError(f"The local provider needs the 'local' extra: {INSTALL}") from None
    return torch


def _device(torch: Any, wanted: str) -> str:
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


def _dtype(torch: Any, wanted: str | None, device: str) -> Any:
    if wanted is None:
        return torch.float16 if device == "cuda" else torch.float32
    return getattr(torch, wanted)


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


def load_pipeline(model: str, *, inpaint: bool, dtype: Any, quiet: bool = False) -> Any:
    """A diffusers pipeline from a folder or a hub id; ConfigError (exit 3) when the
    model is neither on disk nor downloadable."""
    _quiet_libraries(quiet)
    from diffusers import AutoPipelineForInpainting, AutoPipelineForText2Image

    cls = AutoPipelineForInpainting if inpaint else AutoPipelineForText2Image
    path = Path(model).expanduser()
    # A hub id is ORG/NAME; anything else that is not on disk is a missing folder.
    hub_id = not path.exists() and not model.startswith((".", "/", "~")) \
        and model.count("/") == 1
    if path.exists():
        if not (path / "model_index.json").exists():
            raise ConfigError(f"{path} is not a diffusers model folder (no model_index.json)")
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
            pipe = cls.from_pretrained(source, torch_dtype=dtype)
    except Exception as exc:  # noqa: BLE001 - every loader failure becomes one message
        reason = str(exc).strip().splitlines()[0][:200].rstrip(".") if str(exc).strip() else type(
            exc).__name__
        raise ConfigError(
            f"Cannot load model {model}: {reason}. Fetch it with `hf download {model}` "
            "while online, or pass -m /path/to/a/diffusers/folder") from None
    with contextlib.suppress(Exception):
        pipe.set_progress_bar_config(disable=True)
    return pipe


class _StopFlag:
    """Ctrl-C asks the denoising loop to stop at the next step (main thread only)."""

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.requested:  # a second Ctrl-C: stop now
                raise KeyboardInterrupt
            self.requested = True

        old = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, old)
