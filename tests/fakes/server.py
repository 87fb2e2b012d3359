"""A tiny threaded HTTP server on 127.0.0.1 with a record of every request
and a script of canned answers that take precedence over the dialect."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Response:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def json(cls, obj: Any, status: int = 200, **headers: str) -> Response:
        return cls(status, json.dumps(obj).encode(), {"content-type": "application/json",
                                                      **headers})


Handler = Callable[[Request], Response]


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a client opening 16 connections at
    # once would see some of them wait for an accept, as no real API makes it wait.
    request_queue_size = 128


class FakeServer:
    def __init__(self, app: Handler) -> None:
        self.app = app
        self.requests: list[Request] = []
        self.script: deque[Response | Handler] = deque()
        self._lock = threading.Lock()
        server = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, self.path,
                              {k.lower(): v for k, v in self.headers.items()}, body)
                with server._lock:
                    server.requests.append(req)
                    scripted = server.script.popleft() if server.script else None
                if scripted is None:
                    resp = server.app(req)
                elif callable(scripted):
                    resp = scripted(req)
                else:
                    resp = scripted
                if resp.delay:
                    import time

                    time.sleep(resp.delay)
                self.send_response(resp.status)
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                if isinstance(resp.body, bytes):
                    self.send_header("content-length", str(len(resp.body)))
                    self.end_headers()
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self.wfile.write(resp.body)
                else:
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    try:
                        for chunk in resp.body:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            self.wfile.flush()
                        self.wfile.write(b"0\r\n\r\n")
                    except (BrokenPipeError, ConnectionResetError):
                        # A body generator raising this simulates a dropped connection.
                        self.close_connection = True
                        with contextlib.suppress(OSError):
                            self.connection.shutdown(socket.SHUT_RDWR)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.httpd = _Server(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)

    def start(self) -> FakeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def calls(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path.split("?")[0].endswith(path)]


class Dialect:
    """Base of the dialect fakes: owns a FakeServer that routes to `handle`."""

    path_prefix = ""

    def __init__(self) -> None:
        self.server = FakeServer(self.handle)

    def handle(self, req: Request) -> Response:
        raise NotImplementedError

    def start(self) -> Self:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url + self.path_prefix


def png(width: int, height: int, color: tuple[int, int, int] = (200, 80, 40),
        alpha: bool = False) -> bytes:
    """A valid PNG of any size, built with zlib alone (fast, no Pillow)."""
    channels = 4 if alpha else 3
    px = bytes(color) + (b"\xff" if alpha else b"")
    row = b"\x00" + px * width
    raw = zlib.compress(row * height, 1)

    def chunk(t: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + t + body + struct.pack(
            ">I", zlib.crc32(t + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6 if channels == 4 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw)
            + chunk(b"IEND", b""))


def color_for(text: str, index: int) -> tuple[int, int, int]:
    h = zlib.crc32(f"{text}/{index}".encode())
    return (h & 0xFF, (h >> 8) & 0xFF, (h >> 16) & 0xFF)


def reencode(data: bytes, fmt: str) -> bytes:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format=fmt.upper())
        return buf.getvalue()
