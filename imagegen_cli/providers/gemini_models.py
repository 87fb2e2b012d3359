"""The Gemini dialect's model table: what each image model takes, and where each model
is in its lifecycle.

Owns each model's `Capabilities` (named aspect ratios, imageSize tiers, the WxH outputs
`-s` may name, reference images), `size_of`/`ratio_tier_of` (between a documented
WxH and its aspectRatio + imageSize), and the lifecycle read from
data/gemini_models.json (`lookup`, `current`, `check`). Sources and the day each was
read are next to each fact; docs/providers/gemini.md gathers them and says what could
not be confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from imagegen_cli.providers import Capabilities, Entry, Lifecycle, SizeRule, opt

GOOGLE_HOST = "generativelanguage.googleapis.com"

# The recommended model: Google's changelog of 2026-10-06 (read 2026-12-05) releases
# gemini-nano-banana-2.1 as GA and deprecates gemini-3.1-flash-image in its favour
# ("migrate to gemini-nano-banana-2.1"); Firebase's Imagen migration guide (read
# 2026-12-05) names it the replacement for imagen-4.0-generate-001 and -fast. It is also
# the cheapest of the current models at 1K after 2.1 Lite, which draws 1K only.
DEFAULT_MODEL = "gemini-nano-banana-2.1"

# google-genai types.py ImageConfig.aspect_ratio (googleapis/python-genai at 6680718,
# read 2026-12-05): "1:1", "2:3", "3:2", "3:4", "4:3", "9:16", "16:9", "21:9"; the
# image-generation guide adds 4:5 and 5:4 for the Gemini 3 image models.
RATIOS_10 = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
# gemini-nano-banana-2.1: "1:4, 4:1, 1:8, 8:1" on top (changelog 2026-10-06, read
# 2026-12-05: "wide and panoramic aspect ratios (1:4, 4:1, 1:8, 8:1) ... 1K, 2K and 4K").
RATIOS_14 = RATIOS_10 + ("1:4", "4:1", "1:8", "8:1")
TIERS = ("1K", "2K", "4K")  # types.py ImageConfig.image_size: "1K, 2K, 4K ... default 1K"

# Output size by ratio and imageSize for the Gemini 3 image models, from the resolution
# table of the image-generation guide (https://ai.google.dev/gemini-api/docs/
# image-generation, as quoted for gemini-3-pro-image; read 2026-12-05). Not confirmed
# for gemini-nano-banana-2.1, whose outputs for 1:4, 4:1, 1:8 and 8:1 we could not read:
# those ratios go by --aspect only (see docs/providers/gemini.md).
GEMINI3_SIZES: dict[str, tuple[str, str, str]] = {
    "1:1": ("1024x1024", "2048x2048", "4096x4096"),
    "2:3": ("848x1264", "1696x2528", "3392x5056"),
    "3:2": ("1264x848", "2528x1696", "5056x3392"),
    "3:4": ("896x1200", "1792x2400", "3584x4800"),
    "4:3": ("1200x896", "2400x1792", "4800x3584"),
    "4:5": ("928x1152", "1856x2304", "3712x4608"),
    "5:4": ("1152x928", "2304x1856", "4608x3712"),
    "9:16": ("768x1376", "1536x2752", "3072x5504"),
    "16:9": ("1376x768", "2752x1536", "5504x3072"),
    "21:9": ("1584x672", "3168x1344", "6336x2688"),
}
# Reference images a request takes: "up to 14" for Gemini 3 Pro Image and Nano Banana
# 2.1 (the image-generation guide as quoted by docs.laozhang.ai's Nano Banana 2.1 page,
# read 2026-12-05). 2.1 Lite's card gives no number: the same cap, the API has the last
# word.
MAX_REFERENCES = 14


@dataclass(frozen=True)
class Model:
    caps: Capabilities
    tiers: tuple[str, ...]  # imageSize values the model takes; () sends none
    outputs: dict[str, tuple[str, str]] = field(default_factory=dict)  # WxH -> (ratio, tier)


def _model(ratios: tuple[str, ...], tiers: tuple[str, ...], *, notes: tuple[str, ...] = ()
           ) -> Model:
    outputs = {sizes[TIERS.index(t)]: (r, t) for r, sizes in GEMINI3_SIZES.items()
               if r in ratios for t in tiers}
    options = ["--seed"] + (["--resolution"] if tiers else [])
    caps = Capabilities(
        options=opt(*options), values={"--resolution": tiers} if tiers else {},
        sizes=SizeRule(sizes=tuple(outputs)) if outputs else None,
        # One image per call (candidateCount is not taken by the image models): -n N
        # makes N calls.
        max_n=1, edit=True, multi_image=True, max_images=MAX_REFERENCES,
        aspect_ratios=ratios, notes=notes)
    return Model(caps, tiers, outputs)


MODELS: dict[str, Model] = {
    DEFAULT_MODEL: _model(RATIOS_14, TIERS, notes=(
        "-s takes the documented sizes of the 10 standard ratios; 1:4, 4:1, 1:8 and 8:1 "
        "by --aspect",)),
    # Gemini 3 Pro Image: 10 ratios, 1K/2K/4K (types.py ImageConfig; guide's table).
    "gemini-3-pro-image": _model(RATIOS_10, TIERS),
    # 2.1 Lite's model card (read 2026-12-05): ratios 1:1, 3:2, 2:3, 3:4, 4:3, 4:5, 5:4,
    # 9:16, 16:9, 21:9 (the card also says "14 aspect ratios" but lists these ten), and
    # "supported image_size values: 1024px (1K). (2K and 4K are not supported)".
    "gemini-3.1-flash-lite-image": _model(RATIOS_10, ("1K",)),
}
# gemini-3.1-flash-image: deprecated, shut down 2026-10-29 (see the lifecycle data);
# its rules, for a gateway that still serves it: 14 ratios at 1K/2K/4K (changelog).
MODELS["gemini-3.1-flash-image"] = _model(RATIOS_14, TIERS)
# A model not in the table (a newer one): the newest rules, no -s (its outputs are not
# known); the API has the last word.
UNKNOWN = Model(Capabilities(
    options=opt("--seed", "--resolution"), values={"--resolution": TIERS}, max_n=1,
    edit=True, multi_image=True, max_images=MAX_REFERENCES, aspect_ratios=RATIOS_14,
    notes=("model not in imagegen's table: sized by --aspect and --resolution; the API "
           "has the last word",)), TIERS)


def model(name: str | None) -> Model:
    return MODELS.get(_bare(name), UNKNOWN)


def _bare(name: str | None) -> str:
    """'models/gemini-3-pro-image' (the API's resource name) -> 'gemini-3-pro-image'."""
    return (name or "").strip().removeprefix("models/").lower()


def describe_outputs(m: Model) -> str:
    return ", ".join(f"{s} ({r} {t})" for s, (r, t) in m.outputs.items())


# ------------------------------------------------------------------ lifecycle

LIFECYCLE = Lifecycle("gemini_models.json", "Google", "gemini", bare=lambda m: _bare(m))


def table() -> dict[str, Entry]:
    return LIFECYCLE.table


def read_on() -> str:
    return LIFECYCLE.read_on()


def lookup(name: str | None) -> Entry | None:
    return LIFECYCLE.lookup(name)


def current(today: date | None = None) -> list[str]:
    """Models one can still call: active first, then deprecated (the file's order)."""
    return LIFECYCLE.current(today)


def check(name: str | None, host: str, provider: str = "gemini") -> str | None:
    """A warning for a deprecated model; UsageError (exit 2) for a shut-down one on
    Google's own API (a proxy may still serve it: there it only warns)."""
    return LIFECYCLE.check(name, first_party=host == GOOGLE_HOST, provider=provider)
