"""A local diffusers pipeline: no key, no account (the `local` extra).

torch and diffusers are imported only inside `run`, never on other paths.
The model (a folder or a hub id) loads once per command, whatever -n is, and
once per distinct model for a whole batch.

This module owns `LocalProvider` (validating, running the pipeline image by
image with its progress and Ctrl-C, the arguments each call takes) and what it
reports it used. Loading the libraries and the model lives in local_load.py; its
names are re-exported here (`load_pipeline` is looked up here when `run` calls
it, so patching `local.load_pipeline` still takes effect).
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imagegen_cli import providers as api
from imagegen_cli.files.masks import load_area

# `NAME`: re-exported, callers have always found these here.
from imagegen_cli.providers.local_load import (
    is_inpainting_model,
    load_pipeline,
    pick_device,
    pick_dtype,
    require_libraries,
)

DEFAULT_MODEL = "stabilityai/sd-turbo"
CAPS = api.Capabilities(
    options=api.opt("--seed", "--steps", "--guidance", "--negative-prompt", "--device", "--dtype",
                "--strength"),
    values={"--device": ("auto", "cpu", "cuda", "mps"),
            "--dtype": ("float32", "float16", "bfloat16")},
    ranges={"--steps": (1, 1000), "--strength": (0.0, 1.0)},
    sizes=api.SizeRule(min_side=8, max_side=4096, multiple=8),
    max_n=64, max_count=64, inpaint=True, edit=True,
    notes=("runs on this machine: the model loads once per command",),
)


class LocalProvider(api.Provider):
    type_name = "local"
    needs_key = False
    max_concurrency = 1  # one model on one device: jobs run back to back
    in_process = True

    def __init__(self, cfg: Any, env: Any) -> None:
        super().__init__(cfg, env)
        self._pipes: dict[tuple[str, bool, bool, str, str], Any] = {}

    def capabilities(self, model: str | None) -> api.Capabilities:
        return CAPS

    def default_model(self) -> str | None:
        return self.cfg.model or DEFAULT_MODEL

    def known_models(self) -> list[str]:
        return [self.default_model() or DEFAULT_MODEL]

    def public_model(self, model: str) -> str:
        # A folder is recorded by its name: an absolute path would tell every reader
        # of the image the user's name and disk layout.
        path = Path(os.path.expanduser(model))
        if path.exists() or model.startswith((".", "/", "~")) or model.count("/") != 1:
            return path.name or model
        return model

    def validate(self, req: api.ImageRequest, *, inpaint: bool = False) -> api.ImageRequest:
        req = super().validate(req, inpaint=inpaint)
        self._validate_inpainting_model(req, inpaint)
        if req.edit and req.mask is None:
            # img2img runs int(steps * strength) denoising steps: none is an error.
            steps = int(_call_args(req).get("num_inference_steps") or 50)
            strength = req.strength if req.strength is not None else DEFAULT_STRENGTH
            if int(steps * strength) < 1:
                raise api.UsageError(f"--strength {strength:g} with {steps} steps runs no "
                                 "denoising step: raise --strength or --steps")
        return req

    def prepare(self, req: api.ImageRequest, key: str | None) -> list[api.HttpCall]:
        # Nothing goes over the network; --dry-run shows what would run.
        shown = _call_args(req)
        if req.edit and req.mask is None:
            shown["strength"] = req.strength if req.strength is not None else DEFAULT_STRENGTH
        if req.seed is not None:
            shown["seed"] = req.seed
        return [api.HttpCall("LOCAL", str(req.model), json=shown)]

    def _validate_inpainting_model(self, req: api.ImageRequest, inpaint: bool) -> None:
        masked = inpaint or (req.edit and req.mask is not None)
        if not masked and is_inpainting_model(str(req.model)):
            raise api.UsageError(f"{req.model} is an inpainting model: use `imagegen inpaint "
                             "PROMPT --image IMG --mask MASK` with it, or pick a text-to-image "
                             "model with -m")

    def check(self, key: str | None, transport: api.Transport) -> str:
        require_libraries()
        return "diffusers is installed"

    def run(
        self, req: api.ImageRequest, key: str | None, transport: api.Transport,
        reporter: api.Reporter,
    ) -> Iterator[tuple[api.GeneratedImage, api.CallInfo]]:
        torch = require_libraries()
        device = pick_device(torch, req.device or "auto")
        dtype = pick_dtype(torch, req.dtype, device)
        inpaint = bool(req.images and req.mask)
        img2img = bool(req.images) and not inpaint  # `imagegen edit` without a mask
        started = time.perf_counter()
        # Loaded once per distinct model for the whole command (a batch shares this
        # provider instance), then reused by every job.
        cache_key = (str(req.model), inpaint, img2img, str(dtype), device)
        pipe = self._pipes.get(cache_key)
        if pipe is None:
            reporter.status(f"loading {req.model}")
            pipe = load_pipeline(str(req.model), inpaint=inpaint, img2img=img2img,
                                 dtype=dtype, quiet=bool(getattr(reporter, "quiet", False)))
            unet = getattr(pipe, "unet", None)
            if not inpaint and getattr(getattr(unet, "config", None), "in_channels", 4) == 9:
                raise api.UsageError(f"{req.model} is an inpainting model: use `imagegen inpaint` "
                                 "with it, or pick a text-to-image model with -m")
            pipe.to(device)
            self._pipes[cache_key] = pipe
        info = api.CallInfo(extra={"device": device, "load_s": round(time.perf_counter() - started,
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
                elif img2img:
                    args.pop("width", None)  # img2img keeps the image's own size
                    args.pop("height", None)
                    args.update(_img2img_args(req))

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
                if req.images:
                    first = req.images[0]
                    if image.size != (first.width, first.height):
                        from PIL import Image

                        image = image.resize((first.width, first.height),
                                             Image.Resampling.LANCZOS)
                buf = io.BytesIO()
                image.save(buf, format="PNG", compress_level=4)
                yield api.GeneratedImage(index=i, data=buf.getvalue(), seed=seed, timings={
                    "inference_s": round(time.perf_counter() - t0, 3)},
                    settings=_used_settings(pipe, args)), info


def _call_args(req: api.ImageRequest) -> dict[str, Any]:
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


# diffusers scheduler classes by the sampler names AUTOMATIC1111 infotext uses.
A1111_SAMPLERS = {
    "DDIMScheduler": "DDIM", "PNDMScheduler": "PLMS", "LMSDiscreteScheduler": "LMS",
    "EulerDiscreteScheduler": "Euler", "EulerAncestralDiscreteScheduler": "Euler a",
    "HeunDiscreteScheduler": "Heun", "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DPMSolverSinglestepScheduler": "DPM++ SDE", "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a", "UniPCMultistepScheduler": "UniPC",
    "LCMScheduler": "LCM", "DDPMScheduler": "DDPM",
}


def _used_settings(pipe: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The sampler the pipeline really ran, and the steps and guidance it used."""
    out: dict[str, Any] = {}
    scheduler = getattr(pipe, "scheduler", None)
    if scheduler is not None:
        name = type(scheduler).__name__
        out["sampler"] = A1111_SAMPLERS.get(name, name)
    if "num_inference_steps" in args:
        out["steps"] = args["num_inference_steps"]
    if "guidance_scale" in args:
        out["guidance"] = args["guidance_scale"]
    return out


def _inpaint_args(req: api.ImageRequest) -> dict[str, Any]:
    from PIL import Image

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


DEFAULT_STRENGTH = 0.6  # a visible change that keeps the reference's layout


def _img2img_args(req: api.ImageRequest) -> dict[str, Any]:
    """The first reference image, at sides rounded to multiples of 8 (the result is
    resized back to the input's size), and how far to move from it."""
    from PIL import Image

    image = Image.open(io.BytesIO(req.images[0].data)).convert("RGB")
    if req.size and req.size != "auto":
        w, h = (int(x) for x in req.size.split("x"))
    else:
        w, h = (max(8, round(v / 8) * 8) for v in image.size)
    args: dict[str, Any] = {"image": image.resize((w, h)),
                            "strength": req.strength if req.strength is not None
                            else DEFAULT_STRENGTH}
    return args


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
