"""The OpenAI dialect's model table: which models it knows and what each accepts.

Owns each model family's `Capabilities` (sizes, counts, options and their values,
formats, edits, streaming) with where each limit comes from, `family` (which
family a model id belongs to, gateways' account prefixes and dated ids included)
and YEScale's own sizes. `OpenAIProvider.capabilities` reads `FAMILY_CAPS`.
"""

from __future__ import annotations

import dataclasses
import re

from imagegen_cli.providers import Capabilities, SizeRule, opt

YESCALE_SIZES = (
    "1024x1024", "1024x576", "1024x768", "1024x512", "512x1024", "512x768", "1280x960",
    "960x1280", "768x1366", "768x512", "1366x768", "1344x576",
)

DALLE2 = Capabilities(
    options=opt("--quality", "--user"),
    values={"--quality": ("standard",)},
    sizes=SizeRule(sizes=("256x256", "512x512", "1024x1024")),
    max_n=10, max_count=10, prompt_max=1000, inpaint=True,
)
DALLE3 = Capabilities(
    options=opt("--quality", "--style", "--user"),
    values={"--quality": ("standard", "hd"), "--style": ("vivid", "natural")},
    sizes=SizeRule(sizes=("1024x1024", "1792x1024", "1024x1792")),
    max_n=1, max_count=10, prompt_max=4000,
)
# Where each limit comes from: openai-python's types (image_generate_params.py,
# image_edit_params.py, images_response.py; read 2026-11-23 at commit e43b422) for
# gpt-image-1/1.5/mini and gpt-image-2; OpenAI's model pages for the 2.5 and 2.6
# families (released 2026-09-08 and 2026-11-04, after that SDK snapshot), as
# summarised in PROVIDERS.md.
_GPT_BASE_OPTIONS = ("--quality", "--background", "--moderation", "--stream",
                     "--partial-images", "--output-compression", "--user")
_GPT_VALUES = {
    "--quality": ("low", "medium", "high", "auto"),
    "--background": ("transparent", "opaque", "auto"),
    "--moderation": ("low", "auto"),
    "--input-fidelity": ("high", "low"),  # edits only (image_edit_params.py)
}
# partial_images 0-3 and output_compression 0-100: image_generate_params.py.
_GPT_RANGES = {"--partial-images": (0.0, 3.0), "--output-compression": (0.0, 100.0)}
# image_edit_params.py: "You can provide up to 16 images", each "less than 50MB".
MAX_EDIT_IMAGES = 16
STILL_FORMATS = ("png", "jpeg", "webp")  # image_generate_params.py output_format
# gpt-image-2 and later: "Width and height must both be divisible by 16 and the requested
# aspect ratio must be between 1:3 and 3:1 ... the maximum supported resolution is
# 3840x2160" (image_generate_params.py, size).
FREE_SIZES = SizeRule(min_side=16, max_side=3840, multiple=16, max_ratio=3.0,
                      max_pixels=3840 * 2160, allow_auto=True)


def _gpt_image(
    sizes: SizeRule, *, quality: tuple[str, ...] = (), complexity: bool = False,
    fidelity: bool = True, formats: tuple[str, ...] = STILL_FORMATS,
    notes: tuple[str, ...] = (),
) -> Capabilities:
    values = dict(_GPT_VALUES)
    values["--quality"] = ("low", "medium", "high") + quality + ("auto",)
    options = list(_GPT_BASE_OPTIONS)
    if fidelity:
        options.append("--input-fidelity")
    if complexity:
        options.append("--complexity")
        values["--complexity"] = ("low", "medium", "high")
    return Capabilities(
        options=opt(*options), values=values, ranges=_GPT_RANGES, sizes=sizes,
        max_n=10, max_count=10, prompt_max=32000, formats=formats,
        inpaint=True, multi_image=True, edit=True, max_images=MAX_EDIT_IMAGES,
        image_urls=True, stream=True, notes=notes,
        # image_edit_params.py has no `moderation` (nor the spec's edit bodies).
        generate_only=opt("--moderation"))


_FIXED_SIZES = SizeRule(sizes=("1024x1024", "1536x1024", "1024x1536"), allow_auto=True)
# gpt-image-1, gpt-image-1.5, chatgpt-image-latest.
GPT_IMAGE = _gpt_image(_FIXED_SIZES)
# input_fidelity: "unsupported for gpt-image-1-mini" (image_edit_params.py).
GPT_IMAGE_MINI = _gpt_image(_FIXED_SIZES, fidelity=False)
GPT_IMAGE_2 = _gpt_image(FREE_SIZES)
# 2.5 adds quality xhigh and max; 2.6 keeps them, adds complexity and, for
# generations only, SVG and animated GIF output.
GPT_IMAGE_2_5 = _gpt_image(FREE_SIZES, quality=("xhigh", "max"))
GPT_IMAGE_2_6 = _gpt_image(FREE_SIZES, quality=("xhigh", "max"), complexity=True,
                           formats=STILL_FORMATS + ("gif", "svg"),
                           notes=("gif and svg output on generations only",))
NEWEST = "gpt-image-2.6"
GPT_IMAGE_NEXT = dataclasses.replace(
    GPT_IMAGE_2_6, notes=(f"model not in imagegen's table: checked by {NEWEST}'s rules",))
GENERATION_ONLY_FORMATS = ("gif", "svg")
YESCALE_FLUX = Capabilities(
    sizes=SizeRule(sizes=YESCALE_SIZES), max_n=1, max_count=10,
    notes=("YEScale answers with image URLs",),
)
# A model this dialect does not know (a gateway's own): pass the OpenAI fields
# through and let the gateway judge; we cannot know its limits.
UNKNOWN = Capabilities(
    options=opt("--quality", "--style", "--background", "--moderation", "--user"),
    max_n=10, max_count=10,
    notes=("model limits unknown: options are passed through",),
)


def family(model: str | None) -> str:
    """'dall-e-2' | 'dall-e-3' | 'gpt-image' | 'gpt-image-mini' | 'gpt-image-2' |
    'gpt-image-2.5' | 'gpt-image-2.6' | 'gpt-image-next' | 'other'.

    Gateways prefix ids with an account ('openai-main/gpt-image-1'): judge the last part.
    An unknown gpt-image-* id ('gpt-image-3') is 'gpt-image-next': the newest rules.
    """
    name = (model or "").rsplit("/", 1)[-1].lower()
    if name.startswith("dall-e-2"):
        return "dall-e-2"
    if name.startswith("dall-e-3"):
        return "dall-e-3"
    if name.startswith("gpt-image-2.6"):
        return "gpt-image-2.6"
    if name.startswith("gpt-image-2.5"):
        return "gpt-image-2.5"
    if re.fullmatch(r"gpt-image-2(-\d{4}-\d{2}-\d{2})?", name):
        return "gpt-image-2"
    if name.startswith("gpt-image-1-mini"):
        return "gpt-image-mini"
    if re.fullmatch(r"gpt-image-1(\.5)?(-\d{4}-\d{2}-\d{2})?", name) or \
            name.startswith("chatgpt-image"):
        return "gpt-image"
    if name.startswith("gpt-image"):
        return "gpt-image-next"
    return "other"


def is_gpt_image(fam: str) -> bool:
    return fam.startswith("gpt-image")


FAMILY_CAPS = {
    "dall-e-2": DALLE2, "dall-e-3": DALLE3, "gpt-image": GPT_IMAGE,
    "gpt-image-mini": GPT_IMAGE_MINI, "gpt-image-2": GPT_IMAGE_2,
    "gpt-image-2.5": GPT_IMAGE_2_5, "gpt-image-2.6": GPT_IMAGE_2_6,
    "gpt-image-next": GPT_IMAGE_NEXT,
}
