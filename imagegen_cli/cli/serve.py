"""`imagegen serve` (OpenAI's Images API over HTTP) and `imagegen mcp` (an MCP server
over stdio): the flags, the token, and the late reach into imagegen_cli.serve, whose
Starlette, uvicorn and MCP SDK (the `serve` extra) stay off every other command's path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from imagegen_cli.cli.console import err, note, warn
from imagegen_cli.errors import UsageError

ENV_TOKEN = "IMAGEGEN_SERVE_TOKEN"
EXTRA_HINT = ("imagegen serve and imagegen mcp need the `serve` extra: pip install "
              "'imagegen-cli[serve]' (from a checkout: pip install -e '.[serve]')")

Opt = typer.Option
Concurrency = Annotated[int, Opt("-j", "--concurrency", metavar="N",
                                 help="Requests in flight to each provider at once; the "
                                 "rest queue (default 4).")]
MaxCost = Annotated[str | None, Opt("--max-cost", metavar="USD",
                                    help="Refuse a request whose estimated cost is over "
                                    "USD or unknown (default: IMAGEGEN_MAX_COST, the "
                                    "config's max_cost).")]
PerDay = Annotated[float | None, Opt("--max-cost-per-day", metavar="USD",
                                     help="Refuse requests once today's spend (plus what "
                                     "is running) would pass USD.")]
Output = Annotated[Path | None, Opt("-o", "--output", metavar="DIR",
                                    help="Keep every image in DIR (default: a temporary "
                                    "folder, removed at exit).")]
Quiet = Annotated[bool, Opt("-q", "--quiet", help="No notices on stderr.")]


def serve(
    host: Annotated[str, Opt("--host", help="Interface to listen on; anything but "
                             "loopback needs a token.")] = "127.0.0.1",
    port: Annotated[int, Opt("--port", help="Port to listen on.")] = 8089,
    token: Annotated[str | None, Opt("--token", metavar="T",
                                     help=f"Bearer token clients must send (default: "
                                     f"{ENV_TOKEN}, else one is made and printed once).")
                     ] = None,
    concurrency: Concurrency = 4,
    max_cost: MaxCost = None,
    max_cost_per_day: PerDay = None,
    output: Output = None,
    url_ttl: Annotated[float, Opt("--url-ttl", metavar="SECONDS",
                                  help="How long response_format=url images are "
                                  "served.")] = 3600.0,
    max_body_mb: Annotated[float, Opt("--max-body-mb", metavar="MB",
                                      help="Largest request body.")] = 64.0,
    max_image_mb: Annotated[float, Opt("--max-image-mb", metavar="MB",
                                       help="Largest input image.")] = 25.0,
    grace: Annotated[float, Opt("--grace", metavar="SECONDS",
                                help="On SIGTERM: how long requests in flight may take "
                                "to finish.")] = 30.0,
    quiet: Quiet = False,
) -> None:
    """Serve OpenAI's Images API for every configured provider (POST
    /v1/images/generations and /v1/images/edits, GET /v1/models): point any
    OpenAI client at http://HOST:PORT/v1."""
    import secrets
    import tempfile

    door_mod, http = _server_modules()
    if concurrency < 1:
        raise UsageError(f"-j/--concurrency {concurrency}: pass 1 or more")
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port}: pass 1 to 65535")
    for flag, value in (("--url-ttl", url_ttl), ("--max-body-mb", max_body_mb),
                        ("--max-image-mb", max_image_mb), ("--grace", grace)):
        if not value > 0:
            raise UsageError(f"{flag} {value}: pass a number above 0")
    given = token or os.environ.get(ENV_TOKEN)
    if given is not None and len(given.strip()) < 8:
        raise UsageError("--token: pass at least 8 characters")
    if given is None and not _loopback(host):
        raise UsageError(f"--host {host} is not a loopback address: pass --token T (or set "
                         f"{ENV_TOKEN}) before serving other machines")
    if given is None:
        given = "ig-" + secrets.token_urlsafe(24)
        err(f"token (send as 'Authorization: Bearer ...'; shown once): {given}")
    owned = output is None
    folder = Path(tempfile.mkdtemp(prefix="imagegen-serve-")) if output is None else output
    folder.mkdir(parents=True, exist_ok=True)
    door = _door(door_mod, concurrency, max_cost, max_cost_per_day, folder, quiet, "serve")
    settings = http.Settings(host=host, port=port, token=given.strip(),
                             max_body=int(max_body_mb * http.MiB),
                             max_image=int(max_image_mb * http.MiB), url_ttl=url_ttl,
                             grace=grace)
    server = http.Server(door, settings, owned_output=owned,
                         log=lambda text: err(text, prefix="error"))
    shown = f"[{host}]" if ":" in host else host
    if not quiet:
        note(f"serving OpenAI's Images API on http://{shown}:{port}/v1 (-j {concurrency}; "
             f"images in {folder}{', removed at exit' if owned else ''})")
    try:
        http.run(server)
    finally:
        if owned:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    if not quiet:
        note("stopped")


def mcp(
    concurrency: Concurrency = 4,
    max_cost: MaxCost = None,
    output: Annotated[Path | None, Opt("-o", "--output", metavar="DIR",
                                       help="Folder the tools write images in; a call's "
                                       "`folder` stays inside it (default: "
                                       "./imagegen-mcp).")] = None,
    quiet: Quiet = False,
) -> None:
    """Run an MCP server on stdio: tools to generate, edit and inpaint images, read an
    image's settings, estimate a cost and list providers and models. --max-cost caps
    the whole session."""
    door_mod, _ = _server_modules()
    from imagegen_cli.serve import mcp_tools

    if concurrency < 1:
        raise UsageError(f"-j/--concurrency {concurrency}: pass 1 or more")
    folder = (output or Path("imagegen-mcp")).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    door = _door(door_mod, concurrency, None, None, folder, quiet, "mcp")
    session_cap = _max_cost(max_cost, door)
    mcp_tools.run(door, folder, session_cap)


def _door(door_mod: Any, concurrency: int, max_cost: str | None, per_day: float | None,
          folder: Path, quiet: bool, name: str) -> Any:
    if per_day is not None and not per_day >= 0:
        raise UsageError(f"--max-cost-per-day {per_day}: pass 0 or more")
    door = door_mod.Door(os.environ, folder, concurrency=concurrency,
                         max_cost_per_day=per_day, note=(lambda text: None) if quiet else note,
                         warn=warn, name=name)
    door.max_cost = _max_cost(max_cost, door) if name == "serve" else None
    return door


def _max_cost(value: str | None, door: Any) -> float | None:
    from imagegen_cli.cli.imageargs import max_cost_of

    found = max_cost_of({"max_cost": value}, door.ctx.cfg, door.ctx.env)
    return None if found is None else found[0]


def _server_modules() -> tuple[Any, Any]:
    try:
        from imagegen_cli.serve import bridge, http
    except ImportError as exc:
        raise UsageError(f"{EXTRA_HINT} ({exc})") from None
    return bridge, http


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("mcp")(mcp)
