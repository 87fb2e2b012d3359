"""Every option of the image commands, declared once.

One row per option: its flags, value type, help, the commands that take it, its
`[defaults]` config key, its batch record field and the capability name
providers declare it by. The Typer parameters (cli/options.py), the config keys
and their checks (schema.py, rules.py), the batch record fields (records.py),
the flags messages name (engine/settle.py `flag_of`), the built-in defaults `config get
--effective` reports (effective.py) and the shell completions are all built from
`OPTIONS`; adding an option is adding a row, its `ImageOptions` and
`ImageRequest` fields, and the code that honours it (settle, a provider).

Plain data that imports nothing of ours: `imagegen --help` builds this table, so
it must stay cheap. Readers look rows up at the time they need them (never a copy made
at import), so a test may swap `OPTIONS` for a longer table and see the extra
row everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

GENERATE, INPAINT, EDIT, BATCH = "generate", "inpaint", "edit", "batch"

# Help panels (Typer's rich_help_panel).
PROVIDER_HELP = "Provider"
IMAGE_HELP = "Image"
OUTPUT_HELP = "Output"
RUN_HELP = "Run"

# A config value's type when its flag's is float: TOML writes 300 for 300.0.
NUMBER = (int, float)

# Named checks of a [defaults] value (settings/rules.py applies them, as `config set`
# does before it writes):
ONE_OF = "one-of"  # one of the row's `values`
ACCEPTED = "accepted"  # accepted by some model of some provider (or of the one named)
NOT_EMPTY = "not-empty"
# ...and parsed as the flag's own value would be:
SIZE, ASPECT, FORMAT, OUTPUT, PROVIDER = "size", "aspect", "format", "output", "provider"


@dataclass(frozen=True)
class Use:
    """How one command takes an option, where it differs from the row."""

    help: str | None = None
    value: type | None = None  # edit's -i takes URLs too: str, where inpaint's is a Path
    required: bool = False


@dataclass(frozen=True)
class Bounds:
    """The numbers a value may take: LOW or more (more than LOW when `above`), up to
    HIGH when given."""

    low: int
    high: int | None = None
    above: bool = False
    unit: str = ""

    def holds(self, value: float) -> bool:
        if not finite(value) or value < self.low or (self.above and value == self.low):
            return False
        return self.high is None or value <= self.high

    def __str__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.high is not None:
            return f"{self.low} to {self.high}{unit}"
        return f"more than {self.low}{unit}" if self.above else f"{self.low} or more{unit}"


@dataclass(frozen=True)
class Option:
    """One option of the image commands.

    `name` is Typer's keyword for it, the `ImageOptions` field (when the options
    carry it) and the record field (when `record`)."""

    name: str
    flags: tuple[str, ...]
    help: str
    panel: str
    commands: Mapping[str, Use]
    value: type = str  # one value's type; bool: a switch
    many: bool = False  # repeatable
    pairs: bool = False  # KEY=VALUE items: a mapping in the options, an object in a record
    metavar: str | None = None
    said: str | None = None  # how messages name it, when not by its long flag
    from_file: bool = False  # `generate --from` fills it from the image's settings
    config: str | None = None  # its [defaults] key
    per_provider: bool = True  # [providers.NAME.defaults] may set it too
    config_value: type | tuple[type, ...] | None = None  # when not the flag's type
    builtin: object = None  # the value in force when nothing sets it
    unset: str = "the provider decides"  # ...or who decides, when no value is built in
    record: bool = False  # a batch record may set it
    aliases: tuple[str, ...] = ()  # other record spellings
    request: str | None = None  # the `ImageRequest` field it becomes
    capability: bool = False  # providers declare support by its long flag
    values: tuple[str, ...] = ()  # what it completes to
    complete: str | None = None  # "path", "provider" or "model": completed by lookup
    check: str | None = None  # a config value's rule (ONE_OF, ACCEPTED, SIZE...)
    bounds: Bounds | None = None

    @property
    def long(self) -> str:
        """The --flag: what providers declare and most messages say."""
        return next(f for f in self.flags if f.startswith("--"))

    @property
    def flag(self) -> str:
        """The flag messages name it by."""
        return self.said or self.long

    @property
    def config_type(self) -> type | tuple[type, ...]:
        if self.config_value is not None:
            return self.config_value
        return NUMBER if self.value is float else self.value

    def help_for(self, command: str) -> str:
        return self.commands[command].help or self.help


def on(*commands: str, **uses: Use) -> dict[str, Use]:
    """The commands that take an option, with USES where one takes it differently."""
    return {c: uses.get(c, Use()) for c in (*commands, *uses)}


ALL = (GENERATE, INPAINT, EDIT, BATCH)

# Table order is --help order: each command takes its rows in this order.
OPTIONS: tuple[Option, ...] = (
    Option("from_file", ("--from",), "Take prompt and settings from an image imagegen (or "
           "AUTOMATIC1111) wrote, its sidecar .json, or an `imagegen history` ID; flags "
           "given beside it win.",
           IMAGE_HELP, on(GENERATE), value=Path, metavar="FILE", complete="path"),
    Option("image", ("-i", "--image"), "The image to repaint (repeatable for gpt-image).",
           IMAGE_HELP, on(inpaint=Use(required=True),
                          edit=Use(help="A reference image: a file or an https:// URL "
                                   "(repeatable, up to 16 with gpt-image).",
                                   value=str, required=True),
                          batch=Use(help="Inpaint every record's image IMG (a record's "
                                    "'image' wins).")),
           value=Path, many=True, metavar="IMG", record=True),
    Option("mask", ("--mask",), "Mask image, same size: white (or transparent) marks the "
           "area to repaint.", IMAGE_HELP,
           on(INPAINT, edit=Use(help="Optional mask for the first image: white (or "
                                "transparent) marks the area to change."),
              batch=Use(help="Mask for --image.")),
           value=Path, metavar="MASK", record=True),
    Option("invert_mask", ("--invert-mask",), "Repaint the black (or opaque) area instead.",
           IMAGE_HELP, on(INPAINT, BATCH, edit=Use(help="With --mask: change the black (or "
                                                   "opaque) area instead.")),
           value=bool, record=True),
    Option("input_fidelity", ("--input-fidelity",), "high|low: how closely to keep the "
           "input's features (gpt-image).", IMAGE_HELP,
           on(INPAINT, edit=Use(help="high|low: how closely to keep the inputs' features "
                                "(gpt-image).")),
           metavar="F", values=("high", "low"), check=ONE_OF, record=True,
           config="input_fidelity", request="input_fidelity", capability=True),
    Option("strength", ("--strength",), "local: how far to move from the image (img2img; "
           "default 0.6).", IMAGE_HELP, on(EDIT), value=float, metavar="0..1", record=True,
           request="strength", capability=True),
    Option("edit_body", ("--edit-body",), "How -i URL goes (OpenAI): json (the URL), "
           "multipart (downloaded first), auto (json; multipart once if refused).",
           IMAGE_HELP, on(EDIT), metavar="B", values=("auto", "json", "multipart"),
           check=ONE_OF, config="edit_body", request="edit_body",
           unset="auto: the JSON body, then multipart once when a 400 refuses it"),
    Option("provider", ("-p", "--provider"), "Provider name (see `imagegen providers list`); "
           "a,b,c: on to b, then c, when a is unavailable.", PROVIDER_HELP, on(*ALL),
           metavar="NAME", said="-p", complete="provider", from_file=True, record=True,
           config="provider", per_provider=False, check=PROVIDER,
           unset="the first preset whose key is set, else local"),
    Option("model", ("-m", "--model"), "Model id; default: the provider's.", PROVIDER_HELP,
           on(*ALL), metavar="MODEL", said="-m", complete="model", from_file=True,
           record=True, config="model", unset="the provider's default model",
           request="model"),
    Option("count", ("-n", "--count"), "Number of images (default 1).", IMAGE_HELP, on(*ALL),
           value=int, metavar="N", said="-n", record=True, aliases=("n",), config="count",
           builtin=1, bounds=Bounds(1), request="n"),
    Option("size", ("-s", "--size"), "WIDTHxHEIGHT, or auto.", IMAGE_HELP, on(*ALL),
           metavar="WxH", from_file=True, record=True, config="size", check=SIZE,
           unset="the provider's default size", request="size"),
    Option("aspect", ("--aspect",), "W:H, e.g. 16:9: the closest size the model accepts.",
           IMAGE_HELP, on(*ALL), metavar="W:H", record=True, config="aspect", check=ASPECT),
    Option("resolution", ("--resolution",), "Image size tier where a model takes one: "
           "1K|2K|4K (Gemini), 1k|2k (xAI).", IMAGE_HELP, on(*ALL), metavar="R",
           values=("1K", "2K", "4K", "1k", "2k"), from_file=True, record=True,
           config="resolution", check=ONE_OF, request="resolution", capability=True),
    Option("quality", ("--quality",), "e.g. low|medium|high|auto (gpt-image; xhigh|max on "
           "2.5 and 2.6), standard|hd (dall-e-3).", IMAGE_HELP, on(*ALL), metavar="Q",
           values=("low", "medium", "high", "xhigh", "max", "auto", "standard", "hd"),
           from_file=True, record=True, config="quality", check=ACCEPTED, request="quality",
           capability=True),
    Option("style", ("--style",), "vivid|natural (dall-e-3).", IMAGE_HELP, on(*ALL),
           metavar="S", values=("vivid", "natural"), from_file=True, record=True,
           config="style", check=ACCEPTED, request="style", capability=True),
    Option("background", ("--background",), "transparent|opaque|auto (gpt-image).",
           IMAGE_HELP, on(*ALL), metavar="B", values=("transparent", "opaque", "auto"),
           from_file=True, record=True, config="background", check=ACCEPTED,
           request="background", capability=True),
    Option("moderation", ("--moderation",), "low|auto (gpt-image).", IMAGE_HELP, on(*ALL),
           metavar="M", values=("low", "auto"), from_file=True, record=True,
           config="moderation", check=ACCEPTED, request="moderation", capability=True),
    Option("complexity", ("--complexity",), "low|medium|high (gpt-image-2.6).", IMAGE_HELP,
           on(*ALL), metavar="C", values=("low", "medium", "high"), record=True,
           config="complexity", check=ONE_OF, request="complexity", capability=True),
    Option("output_compression", ("--output-compression",), "Compression of jpeg/webp "
           "output made by the provider (gpt-image).", OUTPUT_HELP, on(*ALL), value=int,
           metavar="0-100", record=True, config="output_compression", bounds=Bounds(0, 100),
           request="output_compression", capability=True),
    Option("user", ("--user",), "Your end-user's id, sent for abuse monitoring (OpenAI).",
           PROVIDER_HELP, on(*ALL), metavar="ID", record=True, config="user",
           check=NOT_EMPTY, request="user", capability=True),
    Option("seed", ("--seed",), "Random seed, where the provider takes one.", IMAGE_HELP,
           on(*ALL), value=int, metavar="N", from_file=True, record=True, request="seed",
           capability=True),
    Option("no_seed", ("--no-seed",), "Send no seed: with --from, a new image rather than "
           "the recorded one.", IMAGE_HELP, on(GENERATE), value=bool),
    Option("steps", ("--steps",), "Denoising steps.", IMAGE_HELP, on(*ALL), value=int,
           metavar="N", from_file=True, record=True, config="steps", bounds=Bounds(1),
           request="steps", capability=True),
    Option("guidance", ("--guidance",), "Guidance (CFG) scale.", IMAGE_HELP, on(*ALL),
           value=float, metavar="G", from_file=True, record=True, config="guidance",
           bounds=Bounds(0), request="guidance", capability=True),
    Option("negative_prompt", ("--negative-prompt",), "What to keep out of the image.",
           IMAGE_HELP, on(*ALL), metavar="TEXT", from_file=True, record=True,
           config="negative_prompt", request="negative_prompt", capability=True),
    # --from reads an image's params too, as a whole: flags' --param items win outright.
    Option("params", ("--param",), "KEY=VALUE raw request field (repeatable; VALUE parsed "
           "as JSON when it parses).", IMAGE_HELP, on(*ALL), many=True, pairs=True,
           metavar="KEY=VALUE", from_file=True, record=True),
    Option("output", ("-o", "--output"), "File, folder/, template with {prompt} {index} "
           "{count} {id} {seed} {model} {provider} {date} {time} {ext}, or - for stdout.",
           OUTPUT_HELP, on(GENERATE, INPAINT, EDIT, **{BATCH: Use(
               "Folder (made if need be), or template with {id} {prompt} {index} {count} "
               "{seed} {model} {provider} {date} {time} {ext}; default: the current folder.")}),
           metavar="PATH", said="-o", complete="path", record=True,
           config="output", check=OUTPUT,
           unset="{date}-{time}-{prompt}-{index}.{ext} in the current folder"),
    Option("format", ("-f", "--format"), "png|jpeg|webp; gif|svg as drawn by gpt-image-2.6 "
           "(generate).", OUTPUT_HELP, on(*ALL), metavar="FMT", said="-f",
           values=("png", "jpeg", "webp", "gif", "svg"), record=True, config="format",
           check=FORMAT, unset="the output name's extension, else what the provider sends",
           request="output_format"),
    Option("overwrite", ("--overwrite",), "Replace existing files instead of adding -1, "
           "-2...", OUTPUT_HELP, on(*ALL), value=bool, record=True),
    Option("no_metadata", ("--no-metadata",), "Do not embed prompt and parameters in the "
           "image.", OUTPUT_HELP, on(*ALL), value=bool, record=True, config="metadata",
           builtin=True),
    Option("sidecar", ("--sidecar",), "Write NAME.json beside each image.", OUTPUT_HELP,
           on(*ALL), value=bool, record=True, config="sidecar", builtin=False),
    Option("preview", ("--preview",), "Show each image in the terminal after writing it "
           "(kitty, iTerm2 or sixel graphics, else coloured half-blocks); only when stdout "
           "is a terminal.", OUTPUT_HELP, on(*ALL), value=bool, config="preview"),
    Option("json_out", ("--json",), "Print one JSON object (paths, sizes, hashes, timings) "
           "instead of paths.", OUTPUT_HELP,
           on(GENERATE, INPAINT, EDIT, batch=Use(help="Print one JSON object per line per "
                                                 "image and per failed job (NDJSON) "
                                                 "instead of paths.")),
           value=bool),
    Option("jsonl", ("--jsonl",), "Print one JSON object per line per image (NDJSON, as "
           "`batch --json`).", OUTPUT_HELP,
           on(GENERATE, INPAINT, EDIT, batch=Use(help="Same as --json (as `generate "
                                                 "--jsonl`).")),
           value=bool),
    Option("concurrency", ("-j", "--concurrency"), "Requests in flight at once (default 4).",
           RUN_HELP, on(*ALL), value=int, metavar="N"),
    Option("stream", ("--stream",), "Stream partial images while generating (gpt-image).",
           RUN_HELP, on(*ALL), value=bool, record=True, request="stream", capability=True),
    Option("partial_images", ("--partial-images",), "Partial frames to stream, 0-3.",
           RUN_HELP, on(*ALL), value=int, metavar="0-3", record=True,
           request="partial_images", capability=True),
    Option("keep_partials", ("--keep-partials",), "Save streamed partial frames as "
           "NAME.partial-K.EXT.", RUN_HELP, on(*ALL), value=bool, record=True),
    Option("dry_run", ("--dry-run",), "Print the exact request (secrets redacted) and its "
           "estimated cost; send nothing.", RUN_HELP, on(*ALL), value=bool),
    # A number in the config file; the flag's text is parsed with the environment's.
    Option("max_cost", ("--max-cost",), "Cap the estimated cost: over USD or unknown, exit 2 "
           "before sending (batch: the whole batch's, earlier runs of it included; jobs that "
           "would cross it are not started, exit 8).",
           RUN_HELP, on(*ALL), metavar="USD", config="max_cost", per_provider=False,
           config_value=NUMBER),
    Option("timeout", ("--timeout",), "Seconds to wait for the provider (default 300).",
           RUN_HELP, on(*ALL), value=float, metavar="SECONDS", record=True, config="timeout",
           builtin=300.0, bounds=Bounds(0, above=True, unit="seconds")),
    Option("retries", ("--retries",), "Retries on 408/409/429/5xx and network errors "
           "(default 2).", RUN_HELP, on(*ALL), value=int, metavar="N", record=True,
           config="retries", builtin=2, bounds=Bounds(0)),
    Option("device", ("--device",), "local: auto|cpu|cuda|mps.", RUN_HELP, on(*ALL),
           metavar="DEVICE", values=("auto", "cpu", "cuda", "mps"), record=True,
           request="device", capability=True),
    Option("dtype", ("--dtype",), "local: auto|float32|float16|bfloat16 (auto: bfloat16 "
           "where the CPU has bf16 instructions, or on CUDA for DiT models).", RUN_HELP,
           on(*ALL), metavar="DTYPE", values=("auto", "float32", "float16", "bfloat16"),
           record=True, request="dtype", capability=True),
    Option("lora", ("--lora",), "local: a LoRA (.safetensors file, folder or hub id) and its "
           "weight (default 1); repeatable.", IMAGE_HELP, on(*ALL), many=True,
           metavar="PATH[:WEIGHT]", from_file=True, record=True, request="lora",
           capability=True),
    Option("fast_vae", ("--fast-vae",), "local: decode with the tiny AutoencoderTiny (TAESD, "
           "TAESDXL, TAESD3, TAEF1): much faster, slightly softer.", RUN_HELP, on(*ALL),
           value=bool, record=True, config="fast_vae", request="fast_vae", capability=True),
    Option("quiet", ("-q", "--quiet"), "No progress or notices on stderr.", RUN_HELP,
           on(*ALL), value=bool),
)


# The largest integer any option takes (a seed is at most 64 bits anywhere): a longer
# one would crash float() in a range check, or be sent on to fail at the provider.
MAX_INT = 2**64 - 1


class Wrong(ValueError):
    """A value that is not what its option takes; `want` says what it must be."""

    def __init__(self, want: str) -> None:
        super().__init__(want)
        self.want = want


def finite(value: float) -> bool:
    """A number that is neither NaN nor infinite, nor an int too large for a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def typed(row: Option, value: object) -> object:
    """VALUE for ROW's option, wherever it came from (a flag, a batch record, a `--from`
    file), as the options hold it: true or false, an integer up to MAX_INT, a finite
    number (NaN and infinity are no setting), or a string (ROW's type: a mask's Path).
    The one type check of all three; Wrong says what the value must be."""
    kind = row.value
    if kind is bool:
        if not isinstance(value, bool):
            raise Wrong("true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Wrong("an integer")
        if abs(value) > MAX_INT:
            raise Wrong(f"an integer of at most {len(str(MAX_INT))} digits")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Wrong("a number")
        if not finite(value):
            raise Wrong("a finite number")
        return float(value)
    if not isinstance(value, (str, Path)):
        raise Wrong("a string")
    return kind(value)


# Lookups read OPTIONS when called, so a replaced table is seen at once.

def for_command(command: str) -> list[Option]:
    """COMMAND's options, in --help order."""
    return [o for o in OPTIONS if command in o.commands]


def option(name: str) -> Option:
    found = by_name(name)
    if found is None:
        raise KeyError(name)
    return found


def by_name(name: str) -> Option | None:
    return next((o for o in OPTIONS if o.name == name), None)


def by_config(key: str) -> Option | None:
    return next((o for o in OPTIONS if o.config == key), None)


def config_keys(*, per_provider: bool = False) -> Iterator[Option]:
    """The rows with a [defaults] key (only those [providers.NAME.defaults] may hold,
    with PER_PROVIDER)."""
    return (o for o in OPTIONS if o.config and (o.per_provider or not per_provider))


def by_record(name: str) -> Option | None:
    """The row a batch record's field NAME (or one of its aliases) sets."""
    return next((o for o in OPTIONS if o.record and (o.name == name or name in o.aliases)),
                None)


def record_fields() -> set[str]:
    return {n for o in OPTIONS if o.record for n in (o.name, *o.aliases)}


def by_request(name: str) -> Option | None:
    return next((o for o in OPTIONS if o.request == name), None)
