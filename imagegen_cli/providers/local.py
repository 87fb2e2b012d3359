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
import dataclasses
import inspect
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
from imagegen_cli.providers import local_lora
from imagegen_cli.providers.local_families import (
    FAST_VAE_FAMILIES,
    Model,
    check,
    identify,
    pipeline_class,
)

# `NAME`: re-exported, callers have always found these here.
from imagegen_cli.providers.local_load import (
    is_inpainting_model,
    load_fast_vae,
    load_pipeline,
    pick_device,
    pick_dtype,
    require_libraries,
)

DEFAULT_MODEL = "stabilityai/sd-turbo"
CAPS = api.Capabilities(
    options=api.opt("--seed", "--steps", "--guidance", "--negative-prompt", "--device", "--dtype",
                "--strength", "--fast-vae", "--lora"),
    values={"--device": ("auto", "cpu", "cuda", "mps"),
            "--dtype": ("auto", "float32", "float16", "bfloat16")},
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
        self._pipes: dict[tuple[Any, ...], Any] = {}
        self._models: dict[str, Model | None] = {}

    def family(self, model: str | None) -> Model | None:
        """MODEL's family, read once per command (its model_index.json, or the table
        of known ids)."""
        key = str(model or self.default_model())
        if key not in self._models:
            self._models[key] = identify(key)
        return self._models[key]

    def capabilities(self, model: str | None) -> api.Capabilities:
        found = self.family(model)
        if found is None:
            return CAPS
        fam = found.family
        return dataclasses.replace(
            CAPS, sizes=dataclasses.replace(CAPS.sizes or api.SizeRule(), multiple=fam.multiple,
                                            min_side=fam.multiple),
            edit=fam.reference_edit or fam.img2img is not None, inpaint=fam.inpaint is not None,
            multi_image=fam.reference_edit and fam.max_references > 1,
            max_images=fam.max_references if fam.reference_edit else 1,
            notes=(*CAPS.notes, f"a {fam.name} model"))

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
        req = self.resolve_model(req, inpaint=inpaint)
        found = self.family(req.model)
        if req.fast_vae and "--fast-vae" in req.origins and not (found and found.family.fast_vae):
            # A config default is for the models that have a tiny decoder, not an error
            # for those that have none.
            req = req.with_(fast_vae=False, notices=[*req.notices, (
                f"{req.origins['--fast-vae']} asks for --fast-vae: "
                f"{found.family.name if found else 'this model'} has no tiny decoder, "
                "decoding with its own")])
        if found is not None:
            where = self.public_model(str(req.model))
            check(found, mode=_mode(req, inpaint), negative=bool(req.negative_prompt),
                  guidance=req.guidance is not None, strength=req.strength is not None,
                  images=len(req.images), where=where,
                  sizes=tuple((i.url or i.path.name, i.width, i.height) for i in req.images),
                  fast_vae=req.fast_vae, params=req.params)
            reason = req.size and req.size != "auto" and self.capabilities(req.model).sizes
            if reason and (why := reason.check(req.size or "")):
                raise api.UsageError(f"{req.named('--size', req.size)} is not accepted by "
                                     f"{found.family.name} ({where}): {why}")
        elif req.fast_vae:
            raise api.UsageError(f"--fast-vae needs a model of a known family ({req.model} "
                                 f"is not one): there is a tiny decoder for "
                                 f"{FAST_VAE_FAMILIES}")
        req = super().validate(req, inpaint=inpaint)
        for spec in req.lora:
            local_lora.resolve(local_lora.parse(spec))
        self._validate_inpainting_model(req, inpaint)
        if req.edit and req.mask is None and not (found and found.family.reference_edit):
            # img2img runs int(steps * strength) denoising steps: none is an error.
            steps = int(_call_args(req, found).get("num_inference_steps") or 50)
            strength = req.strength if req.strength is not None else DEFAULT_STRENGTH
            if int(steps * strength) < 1:
                raise api.UsageError(f"--strength {strength:g} with {steps} steps runs no "
                                 "denoising step: raise --strength or --steps")
        return req

    def prepare(self, req: api.ImageRequest, key: str | None) -> list[api.HttpCall]:
        # Nothing goes over the network; --dry-run shows what would run.
        found = self.family(req.model)
        shown = _call_args(req, found)
        if req.edit and req.mask is None and not (found and found.family.reference_edit):
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
        found = self.family(req.model)
        device = pick_device(torch, req.device or "auto")
        dtype = pick_dtype(torch, req.dtype, device, found)
        inpaint = bool(req.images and req.mask)
        img2img = bool(req.images) and not inpaint  # `imagegen edit` without a mask
        mode = "inpaint" if inpaint else "edit" if img2img else "generate"
        cls_name = pipeline_class(found, mode) if found else None
        reference = bool(found and found.family.reference_edit and img2img)
        loras = tuple(local_lora.resolve(local_lora.parse(s)) for s in req.lora)
        family_name = found.family.name if found else f"model {req.model}"
        started = time.perf_counter()
        # Loaded once per distinct model and set of LoRAs for the whole command (a batch
        # shares this provider instance), then reused by every job.
        cache_key = (str(req.model), inpaint, img2img, str(dtype), device, req.fast_vae, loras)
        pipe = self._pipes.get(cache_key)
        if pipe is None:
            if cls_name:
                # Before any weight loads: what this call passes, against the class's
                # __call__ (no TypeError half way through a batch).
                import diffusers

                cls = getattr(diffusers, cls_name)
                _check_call(cls, _call_args(req, found), found, self.public_model(str(req.model)))
                if loras and not hasattr(cls, "load_lora_weights"):
                    raise api.UsageError(f"{family_name} takes no LoRA ({cls_name} loads "
                                         "none): drop --lora")
            reporter.status(f"loading {req.model}")
            pipe = load_pipeline(str(req.model), inpaint=inpaint, img2img=img2img,
                                 dtype=dtype, quiet=bool(getattr(reporter, "quiet", False)),
                                 cls_name=cls_name, family=found)
            unet = getattr(pipe, "unet", None)
            if not inpaint and getattr(getattr(unet, "config", None), "in_channels", 4) == 9:
                raise api.UsageError(f"{req.model} is an inpainting model: use `imagegen inpaint` "
                                 "with it, or pick a text-to-image model with -m")
            if req.fast_vae and found and found.family.fast_vae:
                pipe.vae = load_fast_vae(found.family.fast_vae, dtype=dtype)
            local_lora.load(pipe, loras, family=family_name)
            pipe.to(device)
            self._pipes[cache_key] = pipe
        # What ran, recorded with each image (`resolved` in its metadata and --json).
        used = {"device": device, "dtype": str(dtype).removeprefix("torch."),
                **({"family": found.family.name} if found else {}),
                **({"vae": found.family.fast_vae} if req.fast_vae and found else {}),
                # AUTOMATIC1111's spelling: the infotext carries them after the prompt.
                **({"loras": [lora.tag() for lora in loras]} if loras else {})}
        info = api.CallInfo(extra={**used, "load_s": round(time.perf_counter() - started, 3)})
        base_seed = req.seed if req.seed is not None else secrets.randbits(31)
        multiple = found.family.multiple if found else 8
        stop = _StopFlag()
        with stop.installed():
            for i in range(req.n):
                seed = base_seed + i
                reporter.status(f"image {i + 1}/{req.n}")
                args = _call_args(req, found)
                if inpaint:
                    args.update(_inpaint_args(req, multiple))
                elif reference:
                    args.update(_reference_args(req, found, multiple))
                elif img2img:
                    args.pop("width", None)  # img2img keeps the image's own size
                    args.pop("height", None)
                    args.update(_img2img_args(req, multiple))
                _check_call(type(pipe), args, found, self.public_model(str(req.model)))

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
                if req.images and not (reference and req.size and req.size != "auto"):
                    first = req.images[0]
                    if image.size != (first.width, first.height):
                        from PIL import Image

                        image = image.resize((first.width, first.height),
                                             Image.Resampling.LANCZOS)
                buf = io.BytesIO()
                image.save(buf, format="PNG", compress_level=4)
                yield api.GeneratedImage(index=i, data=buf.getvalue(), seed=seed, timings={
                    "inference_s": round(time.perf_counter() - t0, 3)},
                    settings=_used_settings(pipe, args, found), resolved=dict(used)), info


def _mode(req: api.ImageRequest, inpaint: bool) -> str:
    if inpaint or (req.edit and req.mask is not None):
        return "inpaint"
    return "edit" if req.edit else "generate"


def _call_args(req: api.ImageRequest, found: Model | None = None) -> dict[str, Any]:
    """The pipeline call's arguments from REQ, the family deciding their names and
    defaults (the known model's, else what the pipeline itself defaults to)."""
    args: dict[str, Any] = {"prompt": req.prompt}
    if req.size and req.size != "auto":
        w, h = (int(x) for x in req.size.split("x"))
        args.update(width=w, height=h)
    steps = req.steps if req.steps is not None else (found.steps if found else None)
    guidance = req.guidance if req.guidance is not None else (found.guidance if found else None)
    guidance_arg = found.family.guidance_arg if found else "guidance_scale"
    if steps is not None:
        args["num_inference_steps"] = steps
    if guidance is not None and guidance_arg:
        args[guidance_arg] = guidance
    if req.negative_prompt:
        args["negative_prompt"] = req.negative_prompt
    elif found and found.family.guidance_needs_negative and not (
            guidance is not None and guidance <= 1):
        # Qwen-Image runs true CFG only with a negative prompt; its model cards send " ".
        args["negative_prompt"] = " "
    args.update(req.params)
    return args


FLAG_OF_ARG = {"negative_prompt": "--negative-prompt", "guidance_scale": "--guidance",
               "true_cfg_scale": "--guidance", "num_inference_steps": "--steps",
               "strength": "--strength", "width": "--size", "height": "--size"}


def _check_call(cls: Any, args: dict[str, Any], found: Model | None, where: str) -> None:
    """Refuse (exit 2) an argument CLS.__call__ does not take, naming the family and
    the flag that set it: never a TypeError from inside the pipeline."""
    params = inspect.signature(cls.__call__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # takes anything (Stable Diffusion's deprecated callback kwargs)
    what = found.family.name if found else cls.__name__
    for arg in args:
        if arg not in params:
            flag = FLAG_OF_ARG.get(arg, f"--param {arg}")
            raise api.UsageError(f"{what} takes no {arg} ({where}, {cls.__name__}): drop "
                                 f"{flag}")


# diffusers scheduler classes by the sampler names AUTOMATIC1111 infotext uses.
A1111_SAMPLERS = {
    "DDIMScheduler": "DDIM", "PNDMScheduler": "PLMS", "LMSDiscreteScheduler": "LMS",
    "EulerDiscreteScheduler": "Euler", "EulerAncestralDiscreteScheduler": "Euler a",
    "HeunDiscreteScheduler": "Heun", "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DPMSolverSinglestepScheduler": "DPM++ SDE", "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a", "UniPCMultistepScheduler": "UniPC",
    "LCMScheduler": "LCM", "DDPMScheduler": "DDPM",
}


def _used_settings(pipe: Any, args: dict[str, Any], found: Model | None = None
                   ) -> dict[str, Any]:
    """The sampler the pipeline really ran, and the steps and guidance it used (those
    not passed: the pipeline's own defaults, read from its __call__)."""
    out: dict[str, Any] = {}
    scheduler = getattr(pipe, "scheduler", None)
    if scheduler is not None:
        name = type(scheduler).__name__
        out["sampler"] = A1111_SAMPLERS.get(name, name)
    try:
        params = inspect.signature(type(pipe).__call__).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]

    def used(arg: str) -> Any:
        if arg in args:
            return args[arg]
        default = params[arg].default if arg in params else None
        return None if default is inspect.Parameter.empty else default

    if (steps := used("num_inference_steps")) is not None:
        out["steps"] = steps
    guidance_arg = found.family.guidance_arg if found else "guidance_scale"
    if guidance_arg and (guidance := used(guidance_arg)) is not None:
        out["guidance"] = guidance
    return out


def _inpaint_args(req: api.ImageRequest, multiple: int = 8) -> dict[str, Any]:
    from PIL import Image

    first = req.images[0]
    image = Image.open(io.BytesIO(first.data)).convert("RGB")
    mask = load_area(req.mask)  # type: ignore[arg-type]
    # Sides must be multiples of the family's (8, 16): the pipeline works at the
    # rounded size and the result is resized back to the input's.
    w, h = _work_size(req, image.size, multiple)
    return {"image": image.resize((w, h)), "mask_image": mask.resize((w, h)), "width": w,
            "height": h}


def _work_size(req: api.ImageRequest, size: tuple[int, int], multiple: int) -> tuple[int, int]:
    if req.size and req.size != "auto":
        w, h = (int(x) for x in req.size.split("x"))
        return w, h
    w, h = (max(multiple, round(v / multiple) * multiple) for v in size)
    return w, h


def _reference_args(req: api.ImageRequest, found: Model | None, multiple: int
                    ) -> dict[str, Any]:
    """Every -i as a reference image (FLUX.2, klein, Qwen-Image-Edit), at the first's
    size rounded to the family's multiple unless --size says otherwise: Qwen-Image-Edit
    would otherwise pick about a megapixel whatever the input."""
    from PIL import Image

    images = [Image.open(io.BytesIO(i.data)).convert("RGB") for i in req.images]
    w, h = _work_size(req, images[0].size, multiple)
    one = found is not None and found.family.max_references == 1
    return {"image": images[0] if one else images, "width": w, "height": h}


DEFAULT_STRENGTH = 0.6  # a visible change that keeps the reference's layout


def _img2img_args(req: api.ImageRequest, multiple: int = 8) -> dict[str, Any]:
    """The first reference image, at sides rounded to the family's multiple (the result
    is resized back to the input's size), and how far to move from it."""
    from PIL import Image

    image = Image.open(io.BytesIO(req.images[0].data)).convert("RGB")
    w, h = _work_size(req, image.size, multiple)
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
