"""The model families the local provider knows, chosen by the model, not its name.

A diffusers model says what it is: `_class_name` in its model_index.json (a folder,
or the hub cache's copy for a hub id). `FAMILIES` is the one table read for
everything that differs between families: which pipeline class generates, edits
and inpaints, the size multiple, default steps and guidance, which call argument
the guidance goes to, whether a negative prompt is taken, the CUDA dtype and the
tiny decoder (AutoencoderTiny) where one exists. `check` refuses, before anything
loads, every option the family's pipeline cannot take, naming the family.

Read from diffusers 0.42.1 (src/diffusers/pipelines/*, `__call__` signatures and
`__init__` configs) and the models' cards; each row cites what it rests on. A
model whose family is unknown (a hub id neither cached nor in `KNOWN`) loads
through diffusers' AutoPipeline as before; its call is still checked against
the pipeline's `__call__` signature (local.py) before it runs.

Nothing here imports torch or diffusers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegen_cli.providers import UsageError


@dataclass(frozen=True)
class Family:
    name: str
    classes: tuple[str, ...]  # model_index.json `_class_name`s that are this family
    text2img: str | None  # None: the model only edits
    img2img: str | None = None  # `edit` from one image with --strength
    inpaint: str | None = None
    # `edit` hands every -i to the pipeline as references (`image=[...]`), no strength
    reference_edit: bool = False
    max_references: int = 1
    # Flux2ImageProcessor.check_image_input (flux2/image_processor.py): each reference
    # at least 64 px a side, at most 8:1.
    reference_min_side: int = 0
    reference_max_ratio: float = 0.0
    multiple: int = 8  # image sides: VAE scale x transformer patch
    guidance_arg: str | None = "guidance_scale"  # the call argument --guidance sets
    # Qwen-Image: true CFG runs only with a negative prompt; without one we send " ",
    # as the model cards' examples do.
    guidance_needs_negative: bool = False
    negative: bool = True
    # FLUX.1: the negative prompt is used only when `true_cfg_scale` > 1 (pipeline_flux.py
    # `do_true_cfg`), which --guidance does not set (it is the distilled guidance).
    negative_needs_true_cfg: bool = False
    cuda_dtype: str = "float16"
    dit: bool = False  # a transformer backbone (bf16 on CUDA under --dtype auto)
    fast_vae: str | None = None  # an AutoencoderTiny for its latents (a hub id)
    # When model_index.json says "is_distilled": true (FLUX.2 klein 4B/9B): the
    # model cards' steps and guidance.
    distilled_steps: int | None = None
    distilled_guidance: float | None = None


SD = Family(
    # pipelines/stable_diffusion/*: negative_prompt, guidance_scale, 8 px (VAE scale).
    "Stable Diffusion", ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline",
                         "StableDiffusionInpaintPipeline"),
    "StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline",
    "StableDiffusionInpaintPipeline", fast_vae="madebyollin/taesd")
SDXL = Family(
    "SDXL", ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline",
             "StableDiffusionXLInpaintPipeline"),
    "StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline",
    "StableDiffusionXLInpaintPipeline", fast_vae="madebyollin/taesdxl")
SD3 = Family(
    # SD3Transformer2DModel patch_size 2 on a VAE of scale 8: 16 px.
    "SD3", ("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline",
            "StableDiffusion3InpaintPipeline"),
    "StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline",
    "StableDiffusion3InpaintPipeline", multiple=16, cuda_dtype="bfloat16", dit=True,
    fast_vae="madebyollin/taesd3")
FLUX1 = Family(
    # pipeline_flux.py packs 2x2 latent patches: `vae_scale_factor * 2` = 16 px.
    # guidance_scale is the distilled guidance embedding; negative_prompt works
    # only with true_cfg_scale > 1.
    "FLUX.1", ("FluxPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline"),
    "FluxPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline", multiple=16,
    negative_needs_true_cfg=True, cuda_dtype="bfloat16", dit=True,
    fast_vae="madebyollin/taef1")
FLUX2 = Family(
    # pipeline_flux2.py: `image` is a list of references, no negative_prompt, no
    # inpaint class; Flux2ImageProcessor(vae_scale_factor * 2) = 16 px.
    "FLUX.2", ("Flux2Pipeline",), "Flux2Pipeline", reference_edit=True, max_references=10,
    reference_min_side=64, reference_max_ratio=8,
    multiple=16, negative=False, cuda_dtype="bfloat16", dit=True)
KLEIN = Family(
    # pipeline_flux2_klein.py: `is_distilled` in its config, guidance ignored when
    # distilled (`do_classifier_free_guidance`), no negative_prompt;
    # pipeline_flux2_klein_inpaint.py: Flux2KleinInpaintPipeline (no AutoPipeline
    # maps it). Model card (black-forest-labs/FLUX.2-klein-4B): 4 steps, guidance 1.
    "FLUX.2 klein", ("Flux2KleinPipeline", "Flux2KleinInpaintPipeline"),
    "Flux2KleinPipeline", inpaint="Flux2KleinInpaintPipeline", reference_edit=True,
    max_references=10, reference_min_side=64, reference_max_ratio=8, multiple=16,
    negative=False, cuda_dtype="bfloat16", dit=True, distilled_steps=4, distilled_guidance=1.0)
ZIMAGE = Family(
    # pipelines/z_image: all_patch_size 2 on a VAE of scale 8 = 16 px (the pipeline
    # raises otherwise); CFG when guidance_scale > 0.
    "Z-Image", ("ZImagePipeline", "ZImageImg2ImgPipeline", "ZImageInpaintPipeline"),
    # Its VAE is FLUX.1's (16 latent channels, scaling 0.3611, shift 0.1159 in
    # Tongyi-MAI/Z-Image-Turbo vae/config.json), so TAEF1 decodes it.
    "ZImagePipeline", "ZImageImg2ImgPipeline", "ZImageInpaintPipeline", multiple=16,
    cuda_dtype="bfloat16", dit=True, fast_vae="madebyollin/taef1")
QWEN = Family(
    # pipeline_qwenimage.py: `do_true_cfg = true_cfg_scale > 1 and has_neg_prompt`;
    # guidance_scale is for guidance-distilled checkpoints only (None by default).
    "Qwen-Image", ("QwenImagePipeline", "QwenImageImg2ImgPipeline", "QwenImageInpaintPipeline"),
    "QwenImagePipeline", "QwenImageImg2ImgPipeline", "QwenImageInpaintPipeline", multiple=16,
    guidance_arg="true_cfg_scale", guidance_needs_negative=True, cuda_dtype="bfloat16",
    dit=True)
QWEN_EDIT = Family(
    # pipeline_qwenimage_edit.py: one reference image; its inpaint sibling
    # QwenImageEditInpaintPipeline. No text-to-image.
    "Qwen-Image-Edit", ("QwenImageEditPipeline", "QwenImageEditInpaintPipeline"),
    None, inpaint="QwenImageEditInpaintPipeline", reference_edit=True, multiple=16,
    guidance_arg="true_cfg_scale", guidance_needs_negative=True, cuda_dtype="bfloat16",
    dit=True)
QWEN_EDIT_PLUS = Family(
    # pipeline_qwenimage_edit_plus.py (Edit-2509, -2511): several references (the
    # model card: 1 to 3 work best).
    "Qwen-Image-Edit-Plus", ("QwenImageEditPlusPipeline",), None, reference_edit=True,
    max_references=3, multiple=16, guidance_arg="true_cfg_scale",
    guidance_needs_negative=True, cuda_dtype="bfloat16", dit=True)

FAMILIES: tuple[Family, ...] = (SD, SDXL, SD3, FLUX1, FLUX2, KLEIN, ZIMAGE, QWEN, QWEN_EDIT,
                                QWEN_EDIT_PLUS)
BY_CLASS = {c: f for f in FAMILIES for c in f.classes}


@dataclass(frozen=True)
class Known:
    """A hub id whose family and defaults are known without its files."""

    family: Family
    steps: int | None = None
    guidance: float | None = None
    distilled: bool = False


# The model cards' settings. Turbo SD models: 2 steps so that an img2img at the
# default strength still runs one (int(2 * 0.6) = 1).
KNOWN: dict[str, Known] = {
    "stabilityai/sd-turbo": Known(SD, 2, 0.0),
    "stabilityai/sdxl-turbo": Known(SDXL, 2, 0.0),
    "idkiro/sdxs-512-0.9": Known(SD, 1, 0.0),
    "idkiro/sdxs-512-dreamshaper": Known(SD, 1, 0.0),
    "stabilityai/stable-diffusion-xl-base-1.0": Known(SDXL),
    "stabilityai/stable-diffusion-3.5-medium": Known(SD3, 40, 4.5),
    "stabilityai/stable-diffusion-3.5-large-turbo": Known(SD3, 4, 0.0),
    "black-forest-labs/flux.1-schnell": Known(FLUX1, 4, 0.0),
    "black-forest-labs/flux.1-dev": Known(FLUX1),
    "black-forest-labs/flux.2-dev": Known(FLUX2),
    "black-forest-labs/flux.2-klein-4b": Known(KLEIN, 4, 1.0, distilled=True),
    "black-forest-labs/flux.2-klein-9b": Known(KLEIN, 4, 1.0, distilled=True),
    "black-forest-labs/flux.2-klein-base-4b": Known(KLEIN),
    "black-forest-labs/flux.2-klein-base-9b": Known(KLEIN),
    # Model card: "num_inference_steps=9 (results in 8 DiT forwards)", guidance 0.
    "tongyi-mai/z-image-turbo": Known(ZIMAGE, 9, 0.0),
    "qwen/qwen-image": Known(QWEN),
    "qwen/qwen-image-edit": Known(QWEN_EDIT),
    "qwen/qwen-image-edit-2509": Known(QWEN_EDIT_PLUS),
    "qwen/qwen-image-edit-2511": Known(QWEN_EDIT_PLUS, 40),
}


@dataclass(frozen=True)
class Model:
    """What the local provider knows of one model before loading it."""

    family: Family
    distilled: bool = False
    steps: int | None = None  # None: the pipeline's own default
    guidance: float | None = None
    index: dict[str, Any] | None = None  # its model_index.json, when read

    def components(self) -> list[str]:
        """The sub-folders model_index.json names (components set to null excepted)."""
        if not self.index:
            return []
        return [k for k, v in self.index.items()
                if not k.startswith("_") and isinstance(v, list) and v and v[0] is not None]


def read_index(model: str) -> dict[str, Any] | None:
    """MODEL's model_index.json: from its folder, or from the hub cache for a hub id
    (never downloaded here); None when neither has it."""
    path = Path(os.path.expanduser(model))
    found: Path | None = path / "model_index.json" if path.is_dir() else None
    if found is None and model.count("/") == 1 and not model.startswith((".", "/", "~")):
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(model, "model_index.json")
        except Exception:  # noqa: BLE001 - a cache we cannot read is no cache
            hit = None
        found = Path(hit) if isinstance(hit, str) else None
    if found is None:
        return None
    try:
        index = json.loads(found.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) else None


def identify(model: str) -> Model | None:
    """MODEL's family (None: not known before loading). The model's own
    model_index.json decides; the table of known ids fills in the model cards'
    defaults, and stands in when the files are not here yet."""
    index = read_index(model)
    name = model.strip().lower()
    known = KNOWN.get(name)
    if known is None and index is not None:
        # A folder downloaded from a known id keeps that id's defaults when its own
        # files agree on the family (`hf download Tongyi-MAI/Z-Image-Turbo --local-dir
        # z-image-turbo`).
        tail = Path(os.path.expanduser(model)).name.lower()
        known = next((k for i, k in KNOWN.items() if i.split("/")[1] == tail), None)
    if index is not None:
        family = BY_CLASS.get(str(index.get("_class_name", "")))
        if family is None:
            return None
        distilled = bool(index.get("is_distilled", False))
        if known is not None and known.family is family:
            return Model(family, distilled or known.distilled, known.steps, known.guidance,
                         index)
        if distilled:
            return Model(family, True, family.distilled_steps, family.distilled_guidance,
                         index)
        return Model(family, index=index)
    if known is not None:
        return Model(known.family, known.distilled, known.steps, known.guidance)
    return None


def pipeline_class(model: Model, mode: str) -> str:
    """The diffusers class for MODE (generate, edit, inpaint); check() has refused
    the modes the family has none for."""
    fam = model.family
    if mode == "inpaint":
        return fam.inpaint or ""
    if mode == "edit":
        return (fam.text2img if fam.reference_edit and fam.text2img else
                fam.classes[0] if fam.reference_edit else fam.img2img) or ""
    return fam.text2img or ""


FAST_VAE_FAMILIES = ", ".join(f.name for f in FAMILIES if f.fast_vae)


def check(model: Model, *, mode: str, negative: bool, guidance: bool, strength: bool,
          images: int, where: str, sizes: tuple[tuple[str, int, int], ...] = (),
          fast_vae: bool = False, params: dict[str, Any] | None = None) -> None:
    """Refuse, before loading, what MODEL's pipeline cannot take (exit 2). SIZES: each
    input image's name, width and height."""
    fam = model.family
    name = fam.name + (" (distilled)" if model.distilled else "")
    if mode == "generate" and fam.text2img is None:
        raise UsageError(f"{where} is a {fam.name} model: it only edits images; use "
                         "`imagegen edit PROMPT -i IMG`")
    if mode == "edit":
        if fam.reference_edit and strength:
            raise UsageError(f"{fam.name} edits from reference images and takes no "
                             f"--strength ({where}): drop --strength")
        if fam.reference_edit and images > fam.max_references:
            raise UsageError(f"{fam.name} takes at most {fam.max_references} reference "
                             f"image{'s' if fam.max_references > 1 else ''} ({where}): pass "
                             "fewer -i")
        for name, w, h in sizes if fam.reference_edit else ():
            if min(w, h) < fam.reference_min_side:
                raise UsageError(f"{fam.name} takes reference images of at least "
                                 f"{fam.reference_min_side} px a side; {name} is {w}x{h}")
            if fam.reference_max_ratio and max(w, h) / min(w, h) > fam.reference_max_ratio:
                raise UsageError(f"{fam.name} takes reference images of at most "
                                 f"{fam.reference_max_ratio:g}:1; {name} is {w}x{h}")
        if not fam.reference_edit and fam.img2img is None:
            raise UsageError(f"{fam.name} has no image-to-image pipeline ({where})")
    if mode == "inpaint" and fam.inpaint is None:
        raise UsageError(f"{fam.name} has no inpainting pipeline in diffusers ({where}): "
                         "use `imagegen edit` with reference images, or pick another model "
                         "with -m")
    if negative and not fam.negative:
        raise UsageError(f"{fam.name} takes no negative prompt ({where}): drop "
                         "--negative-prompt")
    if negative and fam.negative_needs_true_cfg:
        true_cfg = (params or {}).get("true_cfg_scale")
        if not isinstance(true_cfg, (int, float)) or true_cfg <= 1:
            raise UsageError(f"{fam.name} uses a negative prompt only with true CFG ({where}): "
                             "add --param true_cfg_scale=4 (each step then runs twice), or "
                             "drop --negative-prompt")
    if guidance and fam.guidance_arg is None:
        raise UsageError(f"{fam.name} takes no guidance ({where}): drop --guidance")
    if fast_vae and not fam.fast_vae:
        raise UsageError(f"{fam.name} has no tiny decoder for --fast-vae ({where}): there is "
                         f"one for {FAST_VAE_FAMILIES}; drop --fast-vae")
    if guidance and model.distilled and fam.distilled_guidance is not None:
        raise UsageError(f"{name} ignores guidance: it is step-distilled ({where}); drop "
                         "--guidance, or use its base model")


def cuda_dtype(model: Model | None) -> str:
    return model.family.cuda_dtype if model else "float16"
