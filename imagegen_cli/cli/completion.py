"""Shell completion: what each option completes to, the scripts we ship, and
`imagegen completion SHELL [--install]`.

The scripts live in the package (imagegen_cli/completions/) so an installed
imagegen can print or install them; regenerate them with
`python -m imagegen_cli.cli.completion` (a test fails when they are stale).

The shell side speaks typer's protocol, with three fixes of ours:
- value options complete to their values, and only file-taking ones fall back to
  file names (typer answers `_files` whenever it has nothing);
- `--opt=VALUE` completes like `--opt VALUE` (bash splits the word at `=`; zsh
  and fish want the whole word back);
- zsh: the script autoloaded from $fpath completes on the very first Tab
  (pallets/click#2344, fixed in click by commit aa4a38e "fix zsh completion
  loaded from fpath"; typer's script still lacks it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from imagegen_cli.cli.console import note, out, warn
from imagegen_cli.cli.state import COMPLETE_VAR
from imagegen_cli.errors import ImagegenError, OutputError, UsageError
from imagegen_cli.settings import options as option_table

SHELLS = {"bash": "imagegen.bash", "zsh": "_imagegen", "fish": "imagegen.fish",
          "powershell": "imagegen.ps1"}
PACKAGE_DIR = Path(__file__).resolve().parent.parent / "completions"

# Provider keys that take one of a few words (the image options' words are in
# settings/options.py).
PROVIDER_VALUES: dict[str, tuple[str, ...]] = {"mode": ("sync", "async")}


def values(name: str) -> Callable[[str], list[str]]:
    """A completer offering the words option NAME takes."""

    def complete(incomplete: str) -> list[str]:
        return [v for v in option_table.option(name).values if v.startswith(incomplete)]

    return complete


def complete_path(incomplete: str) -> list[Any]:
    """File names, completed by the shell itself."""
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="file")]


def complete_provider(incomplete: str) -> list[str]:
    from imagegen_cli.settings import config

    try:
        names = list(config.load().providers)
    except ImagegenError:
        return []
    return [n for n in names if n.startswith(incomplete)]


def complete_model(ctx: Any, incomplete: str) -> list[str]:
    """Models of the provider named on the line (or the default one); no network."""
    from imagegen_cli.registry import create
    from imagegen_cli.settings import config

    try:
        cfg = config.load()
        pcfg, _ = config.resolve_provider(cfg, ctx.params.get("provider"), os.environ)
        models = create(pcfg, os.environ).known_models()
    except ImagegenError:
        return []
    return [m for m in models if m.startswith(incomplete)]


def complete_config_key(incomplete: str) -> list[str]:
    """Every dotted key `config set` takes, providers by their configured names."""
    from imagegen_cli.settings import config, schema

    try:
        names = list(config.load().providers)
    except ImagegenError:
        names = []
    keys = ["default_provider", *(f"defaults.{k}" for k in sorted(schema.default_keys()))]
    keys += [f"providers.{n}.{k}" for n in names for k in sorted(schema.PROVIDER_KEYS)
             if k != "defaults"]
    keys += [f"providers.{n}.defaults.{k}" for n in names
             for k in sorted(schema.default_keys(per_provider=True))]
    return [k for k in keys if k.startswith(incomplete)]


def complete_config_value(ctx: Any, incomplete: str) -> list[str]:
    """Values for the key named before: choices, true/false, provider names, types."""
    from imagegen_cli.settings import schema

    key = str(ctx.params.get("key") or "")
    last = key.rsplit(".", 1)[-1]
    if key in ("default_provider", "defaults.provider"):
        return complete_provider(incomplete)
    if key.startswith("providers.") and last == "type":
        from imagegen_cli.registry import dialect_names

        options: list[str] = list(dialect_names())
    elif words_of(last):
        options = list(words_of(last))
    elif (key.startswith("defaults.") or ".defaults." in key) \
            and schema.default_keys().get(last) is bool:
        options = ["true", "false"]
    else:
        return []
    return [o for o in options if o.startswith(incomplete)]


def words_of(key: str) -> tuple[str, ...]:
    """The words config KEY (the last part of a dotted key) takes, if a few."""
    row = option_table.by_config(key) or option_table.by_name(key)
    return row.values if row is not None and row.values else PROVIDER_VALUES.get(key, ())


# ------------------------------------------------------- the shell protocol


def _rejoin_equals(args: list[str], incomplete: str) -> tuple[list[str], str]:
    """bash hands `--opt=val` over as `--opt`, `=`, `val` (`=` breaks words there)."""
    out: list[str] = []
    for word in args:
        if word == "=" and out and out[-1].startswith("-"):
            continue
        out.append(word)
    if incomplete == "=" and out and out[-1].startswith("-"):
        incomplete = ""
    return out, incomplete


def _split_prefix(incomplete: str) -> str:
    """`--opt=` when INCOMPLETE is `--opt=partial`: zsh and fish want it back."""
    if incomplete.startswith("-") and "=" in incomplete:
        return incomplete.partition("=")[0] + "="
    return ""


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _classes() -> dict[str, type]:
    from typer import _completion_classes as tc

    class Bash(tc.BashComplete):
        def get_completion_args(self) -> tuple[list[str], str]:
            return _rejoin_equals(*super().get_completion_args())

        def complete(self) -> str:
            args, incomplete = self.get_completion_args()
            items = self.get_completions(args, incomplete)
            if any(i.type in ("file", "dir") for i in items):
                return ""  # the script's `-o default` then completes file names
            return "\n".join(i.value for i in items)

    class Zsh(tc.ZshComplete):
        def complete(self) -> str:
            args, incomplete = self.get_completion_args()
            prefix = _split_prefix(incomplete)
            items = self.get_completions(args, incomplete)
            if any(i.type in ("file", "dir") for i in items):
                return "_files -/" if items[0].type == "dir" else "_files"
            if not items:
                return "return 1"  # nothing to offer: never file names for a value
            if prefix or not any(i.help for i in items):
                words = " ".join(_zsh_quote(i.value) for i in items)
                head = "compset -P '*='; " if prefix else ""
                return f"{head}compadd -V unsorted -- {words}"
            return str(super().complete())

    class Fish(tc.FishComplete):
        def complete(self) -> str:
            action = os.getenv("_TYPER_COMPLETE_FISH_ACTION", "")
            args, incomplete = self.get_completion_args()
            prefix = _split_prefix(incomplete)
            items = self.get_completions(args, incomplete)
            files = any(i.type in ("file", "dir") for i in items)
            if action == "is-args":
                sys.exit(0 if items and not files else 1)
            if files:
                return ""
            return "\n".join(prefix + self.format_completion(i) for i in items)

    return {"bash": Bash, "zsh": Zsh, "fish": Fish,
            "powershell": tc.PowerShellComplete, "pwsh": tc.PowerShellComplete}


def init() -> None:
    """Register our completion classes with click (called when a script asks)."""
    import click.shell_completion

    for name, cls in _classes().items():
        click.shell_completion.add_completion_class(cls, name)


ZSH_FIX_OLD = "compdef _imagegen_completion imagegen"
ZSH_FIX_NEW = """\
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  # autoloaded from $fpath: this is the first Tab, so complete it now
  _imagegen_completion "$@"
else
  # sourced or eval'ed: register the function for later
  compdef _imagegen_completion imagegen
fi"""


def script(shell: str) -> str:
    from typer._completion_shared import get_completion_script

    text = get_completion_script(prog_name="imagegen", complete_var=COMPLETE_VAR,
                                 shell=shell).strip("\n") + "\n"
    if shell == "zsh":
        text = text.replace(ZSH_FIX_OLD, ZSH_FIX_NEW)
    return text


def shipped(shell: str) -> str:
    """The script installed with the package."""
    return (PACKAGE_DIR / SHELLS[shell]).read_text(encoding="utf-8")


def install_path(shell: str, env: Any) -> Path:
    home = Path(env.get("HOME") or Path.home())
    if shell == "bash":
        data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
        return data / "bash-completion" / "completions" / "imagegen"
    if shell == "zsh":
        return Path(env.get("ZDOTDIR") or home) / ".zfunc" / "_imagegen"
    if shell == "fish":
        conf = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        return conf / "fish" / "completions" / "imagegen.fish"

    raise UsageError(f"--install knows bash, zsh and fish; for {shell}, add "
                     "`imagegen completion powershell | Out-String | Invoke-Expression` "
                     "to your $PROFILE")


ZSHRC_LINES = "fpath+=(${ZDOTDIR:-$HOME}/.zfunc)\nautoload -Uz compinit && compinit\n"


def install(shell: str, env: Any) -> list[Path]:
    """Write SHELL's script where that shell looks; return the files written."""
    from imagegen_cli.files.atomic import rewrite

    path = install_path(shell, env)
    rc_text: bytes | None = None  # what .zshrc gets, read and checked before any write
    rc = Path(env.get("ZDOTDIR") or env.get("HOME") or Path.home()) / ".zshrc"
    if shell == "zsh":
        old = _read_rc(rc)
        if b".zfunc" not in old:
            rc_text = old + ("\n# imagegen completion\n" + ZSHRC_LINES).encode()
    # Through symlinks (dotfiles managers link these), modes kept, atomically.
    rewrite(path, shipped(shell).encode())
    if rc_text is None:
        return [path]
    rewrite(rc, rc_text)
    return [path, rc]


def _read_rc(rc: Path) -> bytes:
    """RC's bytes (none when it does not exist yet); OutputError (exit 7), before
    anything is written, for one that is not UTF-8 or cannot be read."""
    try:
        data = rc.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise OutputError(f"Cannot read {rc}: {exc.strerror or exc}; nothing installed") from None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OutputError(
            f"{rc} is not UTF-8 text ({exc.reason} at byte {exc.start}); nothing installed: "
            "save it as UTF-8, or add `fpath+=(${ZDOTDIR:-$HOME}/.zfunc)` and "
            "`autoload -Uz compinit && compinit` to it yourself") from None
    return data


def _detect(env: Any) -> str | None:
    name = Path(env.get("SHELL") or "").name
    return {"pwsh": "powershell"}.get(name, name) if name else None


def completion(
    shell: Annotated[str | None, typer.Argument(
        help="bash, zsh, fish or powershell (default: your $SHELL).", metavar="[SHELL]",
        autocompletion=lambda incomplete: [s for s in SHELLS if s.startswith(incomplete)],
        show_default=False)] = None,
    do_install: Annotated[bool, typer.Option(
        "--install", help="Put the script where the shell looks for it, and say where.")]
    = False,
) -> None:
    """Print the completion script for SHELL, or install it with --install."""

    name = shell or _detect(os.environ)
    if name not in SHELLS:
        what = f"'{name}' is not a shell imagegen completes" if name else "No SHELL given"
        raise UsageError(f"{what}: pass one of {', '.join(SHELLS)}")
    if not do_install:
        sys.stdout.write(shipped(name))
        return
    written = install(name, os.environ)
    for path in written:
        out(str(path))
    how = {"bash": "loaded on demand by the bash-completion package",
           "zsh": "fpath set in ~/.zshrc", "fish": "loaded by fish on demand"}[name]
    note(f"{name} completion installed in {written[0]} ({how}); open a new shell to use it")
    if name == "bash" and not bash_completion_found():
        warn("the bash-completion package, which loads that file, was not found: install "
             "it (apt install bash-completion, dnf install bash-completion, brew install "
             "bash-completion@2), or instead add this line to ~/.bashrc: "
             "source <(imagegen completion bash)")


# Where distributions and Homebrew put bash-completion's loader.
BASH_COMPLETION = ("/usr/share/bash-completion/bash_completion", "/etc/bash_completion",
                   "/usr/local/share/bash-completion/bash_completion",
                   "/usr/local/etc/profile.d/bash_completion.sh",
                   "/opt/homebrew/etc/profile.d/bash_completion.sh",
                   "/opt/homebrew/share/bash-completion/bash_completion",
                   "/data/data/com.termux/files/usr/share/bash-completion/bash_completion")


def bash_completion_found() -> bool:
    return any(Path(p).is_file() for p in BASH_COMPLETION)


def register(app: typer.Typer) -> None:
    app.command("completion")(completion)


def main() -> None:
    """Regenerate the shipped scripts (and the checkout's copies in completions/)."""
    if len(sys.argv) > 1:
        folders = [Path(sys.argv[1])]
    else:
        checkout = PACKAGE_DIR.parent.parent / "completions"
        folders = [PACKAGE_DIR] + ([checkout] if checkout.is_dir() else [])
    for folder in folders:
        folder.mkdir(exist_ok=True)
        for shell, name in SHELLS.items():
            (folder / name).write_text(script(shell), encoding="utf-8")
            print(folder / name)


if __name__ == "__main__":
    main()
