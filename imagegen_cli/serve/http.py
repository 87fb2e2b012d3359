"""`imagegen serve`: OpenAI's Images API over HTTP, in front of a `Door`.

Starlette routes on uvicorn (the `serve` extra). Every route but /health and the
served image URLs needs `Authorization: Bearer TOKEN`. Bodies are capped before they
are parsed (413), uploaded images each on their own; settling and running happen on
worker threads (the engine is synchronous), a bounded number at once, the rest
waiting here as coroutines; the provider Gates shared by the Door decide what
reaches a provider. SIGTERM (uvicorn's own handling): no new connection is taken,
requests in flight finish within --grace seconds, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import re
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegen_cli import __version__
from imagegen_cli.engine.events import Event, ImageWritten, JobFinished, PartialWritten
from imagegen_cli.errors import ImagegenError, UsageError
from imagegen_cli.serve import openai_api as api
from imagegen_cli.serve.bridge import Door, Prepared, Served
from imagegen_cli.serve.openai_api import ApiError

MiB = 1 << 20


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8089
    token: str = ""
    max_body: int = 64 * MiB  # a request body, before it is parsed
    max_image: int = 25 * MiB  # each input image (OpenAI's gpt-image limit is 50 MB a request)
    url_ttl: float = 3600.0  # how long a response_format=url image is served
    grace: float = 30.0  # SIGTERM: seconds for requests in flight to finish
    workers: int = 0  # engine threads at once (0: 2 x -j + 8)


class _TooLarge(Exception):
    pass


class BodyCap:
    """ASGI middleware: a body over LIMIT bytes is a 413, by its Content-Length before
    anything is read, else as it streams in."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _send_error(send, ApiError(413, f"Request body over {self.limit} bytes",
                                             code="request_too_large"))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return msg

        await self.app(scope, counted, send)


async def _send_error(send: Send, err: ApiError) -> None:
    body = json.dumps(err.body()).encode()
    await send({"type": "http.response.start", "status": err.status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@dataclass
class ServedFiles:
    """Images answered as URLs: a random name each, served for a while, then gone (the
    file too when the folder is the server's own temporary one)."""

    ttl: float
    owned: bool
    names: dict[str, tuple[Path, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: Path) -> str:
        import secrets

        name = secrets.token_urlsafe(24) + path.suffix
        now = time.monotonic()
        with self.lock:
            self._expire(now)
            self.names[name] = (path, now + self.ttl)
        return name

    def get(self, name: str) -> Path | None:
        with self.lock:
            self._expire(time.monotonic())
            found = self.names.get(name)
        return found[0] if found else None

    def _expire(self, now: float) -> None:
        for name, (path, until) in list(self.names.items()):
            if until < now:
                del self.names[name]
                if self.owned:
                    path.unlink(missing_ok=True)


class Server:
    """The routes, over one Door."""

    def __init__(self, door: Door, settings: Settings, *, owned_output: bool = False,
                 log: Callable[[str], None] = lambda text: None) -> None:
        self.door = door
        self.settings = settings
        self.log = log
        self.files = ServedFiles(settings.url_ttl, owned_output)
        self.limiter = anyio.CapacityLimiter(settings.workers or 2 * door.concurrency + 8)
        self.uploads = Path(tempfile.mkdtemp(prefix="imagegen-serve-in-"))
        self.token = settings.token.encode()
        routes = [
            Route("/health", self.health, methods=["GET"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/images/generations", self.generations, methods=["POST"]),
            Route("/v1/images/edits", self.edits, methods=["POST"]),
            Route("/v1/files/{name}", self.file, methods=["GET"]),
        ]
        self.app = Starlette(routes=routes)

    def asgi(self) -> ASGIApp:
        return BodyCap(self.app, self.settings.max_body)

    def close(self) -> None:
        shutil.rmtree(self.uploads, ignore_errors=True)
        self.door.close()

    # ------------------------------------------------------------ plumbing

    def _auth(self, request: Request) -> None:
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(),
                                                                 self.token):
            raise ApiError(401, "Incorrect API key provided: pass the server's token as "
                           "'Authorization: Bearer TOKEN'.", code="invalid_api_key")

    async def _guard(self, request: Request,
                     handler: Callable[[], Awaitable[Response]]) -> Response:
        try:
            self._auth(request)
            return await handler()
        except _TooLarge:
            return self._error(ApiError(413, f"Request body over {self.settings.max_body} "
                                        "bytes", code="request_too_large"))
        except ApiError as exc:
            return self._error(exc)
        except ImagegenError as exc:
            return self._error(self._mapped(exc))

    def _mapped(self, exc: BaseException) -> ApiError:
        wait = None
        if getattr(exc, "status", None) == 429:
            name = getattr(exc, "provider", None)
            gates = self.door.gates.table
            gate = gates.get(name) if name else (next(iter(gates.values())) if len(gates) == 1
                                                 else None)
            if gate is not None:
                wait = gate.paused_until - time.monotonic()
            asked = re.search(r"asks to wait (\d+) s", str(exc))
            if asked:  # more than the engine waits out itself
                wait = max(wait or 0.0, float(asked.group(1)))
        return api.error_of(exc, retry_after=wait if wait and wait > 0 else None)

    def _error(self, err: ApiError) -> Response:
        if err.status >= 500:
            self.log(f"{err.status}: {err.message}")
        return JSONResponse(err.body(), err.status, headers=err.headers)

    async def _thread(self, func: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(func, *args, limiter=self.limiter)

    # ------------------------------------------------------------ routes

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def models(self, request: Request) -> Response:
        async def go() -> Response:
            pairs = await self._thread(self.door.routable)
            created = int(time.time())
            data = [{"id": p if m is None else f"{p}/{m}", "object": "model",
                     "created": created, "owned_by": p} for p, m in pairs]
            return JSONResponse({"object": "list", "data": data})

        return await self._guard(request, go)

    async def file(self, request: Request) -> Response:
        path = self.files.get(request.path_params["name"])
        if path is None or not path.is_file():
            return self._error(ApiError(404, "No such image (URLs expire)", code="not_found"))
        return FileResponse(path)

    async def generations(self, request: Request) -> Response:
        async def go() -> Response:
            body = await self._json(request)
            call = api.parse(body, edit=False, route=self.door.route)
            return await self._images(request, call, tempdir=None)

        return await self._guard(request, go)

    async def edits(self, request: Request) -> Response:
        async def go() -> Response:
            folder = self.uploads / f"in-{time.monotonic_ns()}-{id(request)}"
            folder.mkdir()
            try:
                if request.headers.get("content-type", "").startswith("application/json"):
                    call = await self._json_edit(request, folder)
                else:
                    call = await self._form_edit(request, folder)
                return await self._images(request, call, tempdir=folder)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise

        return await self._guard(request, go)

    # ------------------------------------------------------------ bodies

    async def _json(self, request: Request) -> dict[str, Any]:
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise api.bad_request("Content-Type must be application/json", None,
                                  "invalid_request")
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise api.bad_request("We could not parse the JSON body of your request.",
                                  None, "invalid_json") from None
        if not isinstance(body, dict):
            raise api.bad_request("The body must be a JSON object", None, "invalid_json")
        return body

    async def _form_edit(self, request: Request, folder: Path) -> api.ImagesCall:
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            raise api.bad_request("Edits take multipart/form-data or a JSON body", None,
                                  "invalid_request")
        try:
            form = await request.form(max_files=17, max_fields=64, max_part_size=MiB)
        except _TooLarge:
            raise
        except Exception as exc:  # noqa: BLE001 - python-multipart's errors vary
            raise api.bad_request(f"Bad multipart body: {exc}", None,
                                  "invalid_request") from None
        try:
            fields: dict[str, Any] = {}
            images: list[Path] = []
            mask: Path | None = None
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if key not in ("image", "image[]", "mask"):
                        raise api.bad_request(f"Unrecognized file field: {key}", key,
                                              "unknown_parameter")
                    path = await self._upload(value, folder, key, len(images))
                    if key == "mask":
                        mask = path
                    else:
                        images.append(path)
                elif key in fields:
                    raise api.bad_request(f"'{key}' is given twice", key)
                else:
                    fields[key] = value
        finally:
            await form.close()
        if not images:
            raise api.bad_request("Missing required parameter: 'image'.", "image",
                                  "missing_required_parameter")
        return api.parse(fields, edit=True, route=self.door.route, form=True,
                         images=tuple(images), mask=mask)

    async def _upload(self, up: UploadFile, folder: Path, key: str, index: int) -> Path:
        if up.size is not None and up.size > self.settings.max_image:
            raise ApiError(413, f"'{key}' is over {self.settings.max_image} bytes",
                           param=key, code="image_too_large")
        path = folder / (f"mask{_suffix(up.filename)}" if key == "mask"
                         else f"image-{index}{_suffix(up.filename)}")
        data = await up.read(self.settings.max_image + 1)
        if len(data) > self.settings.max_image:
            raise ApiError(413, f"'{key}' is over {self.settings.max_image} bytes",
                           param=key, code="image_too_large")
        path.write_bytes(data)
        return path

    async def _json_edit(self, request: Request, folder: Path) -> api.ImagesCall:
        body = await self._json(request)
        refs = body.pop("images", None)
        if not isinstance(refs, list) or not refs:
            raise api.bad_request("Missing required parameter: 'images'.", "images",
                                  "missing_required_parameter")
        images = tuple(self._reference(ref, folder, f"image-{i}", "images")
                       for i, ref in enumerate(refs))
        mask_ref = body.pop("mask", None)
        mask = None
        if mask_ref is not None:
            mask = self._reference(mask_ref, folder, "mask", "mask")
            if not isinstance(mask, Path):
                raise api.bad_request("'mask' must be a data: URL here", "mask")
        return api.parse(body, edit=True, route=self.door.route, images=images, mask=mask)

    def _reference(self, ref: Any, folder: Path, name: str, param: str) -> Path | str:
        """{"image_url": "data:...;base64,..." | "https://..."}: a data URL is written
        to FOLDER; an https URL goes on as `edit -i URL` takes it. file_id: not here."""
        if not isinstance(ref, dict) or len(ref) != 1 or not set(ref) <= {"image_url",
                                                                         "file_id"}:
            raise api.bad_request("Each image must be {\"image_url\": ...}", param)
        if "file_id" in ref:
            raise api.bad_request("file_id references are not supported by this server: "
                                  "send the image as a data: URL", param, "unsupported_value")
        url = ref["image_url"]
        if not isinstance(url, str):
            raise api.bad_request("'image_url' must be a string", param)
        if url.startswith("https://"):
            return url
        head, sep, data = url.partition(",")
        if not (url.startswith("data:image/") and sep and head.endswith(";base64")):
            raise api.bad_request("'image_url' must be an https:// URL or a base64 data: URL",
                                  param)
        if len(data) > self.settings.max_image * 4 // 3 + 4:
            raise ApiError(413, f"'{param}' is over {self.settings.max_image} bytes",
                           param=param, code="image_too_large")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise api.bad_request("'image_url' holds invalid base64", param) from None
        path = folder / f"{name}.{head[len('data:image/'):].split(';')[0] or 'png'}"
        path.write_bytes(raw)
        return path

    # ------------------------------------------------------------ running

    async def _images(self, request: Request, call: api.ImagesCall,
                      tempdir: Path | None) -> Response:
        client_id = (request.headers.get("x-client-request-id")
                     or request.headers.get("x-request-id"))
        door = self.door

        def prepare() -> Prepared:
            opts = call.options
            if call.stream and call.partial_images:
                opts = api.with_streaming(call, self._streams(call))
            return door.prepare(opts, edit=call.edit, client_request_id=client_id)

        try:
            prepared: Prepared = await self._thread(prepare)
        except BaseException:
            if tempdir is not None:
                shutil.rmtree(tempdir, ignore_errors=True)
            raise
        headers = {"x-request-id": prepared.request_id}
        if call.stream:
            kind = "image_edit" if call.edit else "image_generation"
            return StreamingResponse(self._events(prepared, kind, tempdir),
                                     media_type="text/event-stream",
                                     headers={**headers, "cache-control": "no-cache"})
        try:
            served: Served = await self._thread(door.execute, prepared)
        finally:
            if tempdir is not None:
                shutil.rmtree(tempdir, ignore_errors=True)
        if not served.images:
            err = self._mapped(served.failures[0]) if served.failures else ApiError(
                502, "the provider sent no image", type="server_error")
            err.headers.update(headers)
            raise err
        items = [api.image_item(img, *self._payload(request, img, call.response_format))
                 for img in served.images]
        if served.cost_usd is not None:
            headers["x-imagegen-cost-usd"] = f"{served.cost_usd:.6f}"
        return JSONResponse(api.images_response(served.images, items, served.usage),
                            headers=headers)

    def _streams(self, call: api.ImagesCall) -> bool:
        """Whether the provider the request goes to streams partial frames itself."""
        try:
            with self.door.settling:
                provider, _ = self.door.ctx.provider(call.options.provider)
            caps = provider.capabilities(call.options.model)
            return caps.stream or "--stream" in caps.options
        except (ImagegenError, AttributeError, TypeError):
            return False

    def _payload(self, request: Request, img: Any, fmt: str) -> tuple[str | None, str | None]:
        path = Path(img.path)
        if fmt == "url":
            name = self.files.add(path)
            return None, f"{str(request.base_url).rstrip('/')}/v1/files/{name}"
        return base64.b64encode(path.read_bytes()).decode(), None

    async def _events(self, prepared: Prepared, kind: str,
                      tempdir: Path | None) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | None] = asyncio.Queue()

        def on_event(ev: Event) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, ev)

        task = asyncio.ensure_future(self._thread(self.door.execute, prepared, on_event))
        task.add_done_callback(lambda t: queue.put_nowait(None))
        held: ImageWritten | None = None  # the last image waits for the job's usage
        try:
            while (ev := await queue.get()) is not None:
                if isinstance(ev, PartialWritten):
                    data = _b64(ev.image.path)
                    frame = (ev.image.partial or 1) - 1
                    yield _sse(api.stream_event(kind, ev.image, data, partial=frame))
                elif isinstance(ev, ImageWritten):
                    if held is not None:
                        yield _sse(api.stream_event(kind, held.image, _b64(held.image.path)))
                    held = ev
                elif isinstance(ev, JobFinished) and held is not None:
                    yield _sse(api.stream_event(kind, held.image, _b64(held.image.path),
                                                usage=ev.outcome.usage))
                    held = None
            served: Served = task.result()
            if not served.images and served.failures:
                raise served.failures[0]
        except (ImagegenError, ApiError) as exc:
            err = self._mapped(exc)
            yield _sse({"type": "error", "error": err.body()["error"]}, event="error")
        finally:
            if tempdir is not None:
                shutil.rmtree(tempdir, ignore_errors=True)


def _b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    return (f"event: {event or data['type']}\ndata: {json.dumps(data)}\n\n").encode()


def _suffix(filename: str | None) -> str:
    suffix = Path(filename or "").suffix.lower()
    return suffix if suffix in (".png", ".jpg", ".jpeg", ".webp", ".gif") else ".png"


def uvicorn_server(server: Server) -> Any:
    """A uvicorn Server for SERVER's app (HTTP/1.1 with keep-alive; httptools parses)."""
    import uvicorn

    s = server.settings
    config = uvicorn.Config(server.asgi(), host=s.host, port=s.port, log_level="warning",
                            access_log=False, lifespan="off", server_header=False,
                            timeout_graceful_shutdown=max(1, round(s.grace)),
                            timeout_keep_alive=30)
    return uvicorn.Server(config)


def run(server: Server) -> None:
    """Serve until SIGTERM or Ctrl-C: stop taking connections, let requests in flight
    finish (--grace seconds at most), return."""
    import signal

    us = uvicorn_server(server)
    # uvicorn re-raises the signal that stopped it once it has shut down: by then the
    # stop is done and clean, so it must not turn into the CLI's exit 130/143.
    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if main:
        for sig in previous:
            signal.signal(sig, _stopped)
    try:
        us.run()
    except SystemExit:
        if us.started:
            raise
        # uvicorn exits 1 when it cannot bind: said below as a usage error instead
    finally:
        if main:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        server.close()
    if not us.started:
        s = server.settings
        raise UsageError(f"could not listen on {s.host}:{s.port} (in use, or not an "
                         "address of this machine): pass another --port or --host")


def _stopped(signum: int, frame: Any) -> None:
    """The stop signal, after uvicorn handled it: nothing left to do."""
