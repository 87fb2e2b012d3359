"""The options `generate` and `inpaint` share, declared once.

Typer reads a command's parameters from its signature; `image_command`
builds that signature from these lists so the two commands cannot drift.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from imagegen_cli.cli.completion import complete_model, complete_path, complete_provider, values

P = inspect.Parameter
Opt = typer.Option

PROVIDER_HELP = "Provider"
IMAGE_HELP = "Image"
OUTPUT_HELP = "Output"
RUN_HELP = "Run"


def option_param(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    return P(name, P.KEYWORD_ONLY, default=default, annotation=annotation)


COMMON: list[inspect.Parameter] = [
    option_param("provider", Annotated[str | None, Opt("-p", "--provider", metavar="NAME", help="Provider name (see `imagegen providers list`); a,b,c: on to b, then c, when a is unavailable.", rich_help_panel=PROVIDER_HELP, autocompletion=complete_provider)]),
    option_param("model", Annotated[str | None, Opt("-m", "--model", metavar="MODEL", help="Model id; default: the provider's.", rich_help_panel=PROVIDER_HELP, autocompletion=complete_model)]),
    option_param("count", Annotated[int | None, Opt("-n", "--count", metavar="N", help="Number of images (default 1).", rich_help_panel=IMAGE_HELP)]),
    option_param("size", Annotated[str | None, Opt("-s", "--size", metavar="WxH", help="WIDTHxHEIGHT, or auto.", rich_help_panel=IMAGE_HELP)]),
    option_param("aspect", Annotated[str | None, Opt("--aspect", metavar="W:H", help="W:H, e.g. 16:9: the closest size the model accepts.", rich_help_panel=IMAGE_HELP)]),
    option_param("quality", Annotated[str | None, Opt("--quality", metavar="Q", help="e.g. low|medium|high|auto (gpt-image; xhigh|max on 2.5 and 2.6), standard|hd (dall-e-3).", rich_help_panel=IMAGE_HELP, autocompletion=values("quality"))]),
    option_param("style", Annotated[str | None, Opt("--style", metavar="S", help="vivid|natural (dall-e-3).", rich_help_panel=IMAGE_HELP, autocompletion=values("style"))]),
    option_param("background", Annotated[str | None, Opt("--background", metavar="B", help="transparent|opaque|auto (gpt-image).", rich_help_panel=IMAGE_HELP, autocompletion=values("background"))]),
    option_param("moderation", Annotated[str | None, Opt("--moderation", metavar="M", help="low|auto (gpt-image).", rich_help_panel=IMAGE_HELP, autocompletion=values("moderation"))]),
    option_param("complexity", Annotated[str | None, Opt("--complexity", metavar="C", help="low|medium|high (gpt-image-2.6).", rich_help_panel=IMAGE_HELP, autocompletion=values("complexity"))]),
    option_param("output_compression", Annotated[int | None, Opt("--output-compression", metavar="0-100", help="Compression of jpeg/webp output made by the provider (gpt-image).", rich_help_panel=OUTPUT_HELP)]),
    option_param("user", Annotated[str | None, Opt("--user", metavar="ID", help="Your end-user's id, sent for abuse monitoring (OpenAI).", rich_help_panel=PROVIDER_HELP)]),
    option_param("seed", Annotated[int | None, Opt("--seed", metavar="N", help="Random seed, where the provider takes one.", rich_help_panel=IMAGE_HELP)]),
    option_param("steps", Annotated[int | None, Opt("--steps", metavar="N", help="Denoising steps.", rich_help_panel=IMAGE_HELP)]),
    option_param("guidance", Annotated[float | None, Opt("--guidance", metavar="G", help="Guidance (CFG) scale.", rich_help_panel=IMAGE_HELP)]),
    option_param("negative_prompt", Annotated[str | None, Opt("--negative-prompt", metavar="TEXT", help="What to keep out of the image.", rich_help_panel=IMAGE_HELP)]),
    option_param("param", Annotated[list[str] | None, Opt("--param", metavar="KEY=VALUE", help="KEY=VALUE raw request field (repeatable; VALUE parsed as JSON when it parses).", rich_help_panel=IMAGE_HELP)]),
    option_param("output", Annotated[str | None, Opt("-o", "--output", metavar="PATH", help="File, folder/, template with {prompt} {index} {count} {id} {seed} {model} {provider} {date} {time} {ext}, or - for stdout.", rich_help_panel=OUTPUT_HELP, autocompletion=complete_path)]),
    option_param("format", Annotated[str | None, Opt("-f", "--format", metavar="FMT", help="png|jpeg|webp; gif|svg as drawn by gpt-image-2.6 (generate).", rich_help_panel=OUTPUT_HELP, autocompletion=values("format"))]),
    option_param("overwrite", Annotated[bool, Opt("--overwrite", help="Replace existing files instead of adding -1, -2...", rich_help_panel=OUTPUT_HELP)], False),
    option_param("no_metadata", Annotated[bool, Opt("--no-metadata", help="Do not embed prompt and parameters in the image.", rich_help_panel=OUTPUT_HELP)], False),
    option_param("sidecar", Annotated[bool, Opt("--sidecar", help="Write NAME.json beside each image.", rich_help_panel=OUTPUT_HELP)], False),
    option_param("preview", Annotated[bool, Opt("--preview", help="Show each image in the terminal after writing it (kitty, iTerm2 or sixel graphics, else coloured half-blocks); only when stdout is a terminal.", rich_help_panel=OUTPUT_HELP)], False),
    option_param("json_out", Annotated[bool, Opt("--json", help="Print one JSON object (paths, sizes, hashes, timings) instead of paths.", rich_help_panel=OUTPUT_HELP)], False),
    option_param("jsonl", Annotated[bool, Opt("--jsonl", help="Print one JSON object per line per image (NDJSON, as `batch --json`).", rich_help_panel=OUTPUT_HELP)], False),
    option_param("concurrency", Annotated[int | None, Opt("-j", "--concurrency", metavar="N", help="Requests in flight at once (default 4).", rich_help_panel=RUN_HELP)]),
    option_param("stream", Annotated[bool, Opt("--stream", help="Stream partial images while generating (gpt-image).", rich_help_panel=RUN_HELP)], False),
    option_param("partial_images", Annotated[int | None, Opt("--partial-images", metavar="0-3", help="Partial frames to stream, 0-3.", rich_help_panel=RUN_HELP)]),
    option_param("keep_partials", Annotated[bool, Opt("--keep-partials", help="Save streamed partial frames as NAME.partial-K.EXT.", rich_help_panel=RUN_HELP)], False),
    option_param("dry_run", Annotated[bool, Opt("--dry-run", help="Print the exact request (secrets redacted) and its estimated cost; send nothing.", rich_help_panel=RUN_HELP)], False),
    option_param("max_cost", Annotated[str | None, Opt("--max-cost", metavar="USD", help="Cap the estimated cost: over USD or unknown, exit 2 before sending (batch: jobs that would cross it are not started, exit 8).", rich_help_panel=RUN_HELP)]),
    option_param("timeout", Annotated[float | None, Opt("--timeout", metavar="SECONDS", help="Seconds to wait for the provider (default 300).", rich_help_panel=RUN_HELP)]),
    option_param("retries", Annotated[int | None, Opt("--retries", metavar="N", help="Retries on 408/409/429/5xx and network errors (default 2).", rich_help_panel=RUN_HELP)]),
    option_param("device", Annotated[str | None, Opt("--device", metavar="DEVICE", help="local: auto|cpu|cuda|mps.", rich_help_panel=RUN_HELP, autocompletion=values("device"))]),
    option_param("dtype", Annotated[str | None, Opt("--dtype", metavar="DTYPE", help="local: float32|float16|bfloat16.", rich_help_panel=RUN_HELP, autocompletion=values("dtype"))]),
    option_param("quiet", Annotated[bool, Opt("-q", "--quiet", help="No progress or notices on stderr.", rich_help_panel=RUN_HELP)], False),
]

PROMPT = P("prompt", P.POSITIONAL_OR_KEYWORD, default=None, annotation=Annotated[
    str | None, typer.Argument(help="The prompt text; - reads stdin; @FILE reads a file.", show_default=False)])

FROM: list[inspect.Parameter] = [
    option_param("from_file", Annotated[Path | None, Opt("--from", metavar="FILE", help="Take prompt and settings from an image imagegen (or AUTOMATIC1111) wrote, or its sidecar .json; flags given beside it win.", rich_help_panel=IMAGE_HELP, autocompletion=complete_path)]),
]

INPAINT: list[inspect.Parameter] = [
    option_param("image", Annotated[list[Path], Opt("-i", "--image", metavar="IMG", help="The image to repaint (repeatable for gpt-image).", rich_help_panel=IMAGE_HELP)], P.empty),
    option_param("mask", Annotated[Path | None, Opt("--mask", metavar="MASK", help="Mask image, same size: white (or transparent) marks the area to repaint.", rich_help_panel=IMAGE_HELP)]),
    option_param("invert_mask", Annotated[bool, Opt("--invert-mask", help="Repaint the black (or opaque) area instead.", rich_help_panel=IMAGE_HELP)], False),
    option_param("input_fidelity", Annotated[str | None, Opt("--input-fidelity", metavar="F", help="high|low: how closely to keep the input's features (gpt-image).", rich_help_panel=IMAGE_HELP, autocompletion=values("input_fidelity"))]),
]

EDIT: list[inspect.Parameter] = [
    option_param("image", Annotated[list[str], Opt("-i", "--image", metavar="IMG", help="A reference image: a file or an https:// URL (repeatable, up to 16 with gpt-image).", rich_help_panel=IMAGE_HELP)], P.empty),
    option_param("mask", Annotated[Path | None, Opt("--mask", metavar="MASK", help="Optional mask for the first image: white (or transparent) marks the area to change.", rich_help_panel=IMAGE_HELP)]),
    option_param("invert_mask", Annotated[bool, Opt("--invert-mask", help="With --mask: change the black (or opaque) area instead.", rich_help_panel=IMAGE_HELP)], False),
    option_param("input_fidelity", Annotated[str | None, Opt("--input-fidelity", metavar="F", help="high|low: how closely to keep the inputs' features (gpt-image).", rich_help_panel=IMAGE_HELP, autocompletion=values("input_fidelity"))]),
    option_param("strength", Annotated[float | None, Opt("--strength", metavar="0..1", help="local: how far to move from the image (img2img; default 0.6).", rich_help_panel=IMAGE_HELP)]),
]


def image_command(
    extra: list[inspect.Parameter],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give FUNC(**kwargs) the signature PROMPT + EXTRA + COMMON for typer."""

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        params = [PROMPT, *extra, *COMMON]
        func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        func.__annotations__ = {p.name: p.annotation for p in params}
        return func

    return wrap
