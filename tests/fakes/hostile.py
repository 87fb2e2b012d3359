"""A hostile HTTP server on 127.0.0.1, driven per test.

Unlike the dialect fakes (tests/fakes/server.py), it works on the raw socket, so
a behaviour can do what no well-behaved server does: trickle bytes, stall
forever, reset the connection mid-body, declare a terabyte, never end a body,
cut an event stream in the middle of an event, redirect anywhere.

Each request is read (request line, headers, a Content-Length body), recorded,
and handed to the behaviour routed for its path (the first route whose prefix
matches; `Hostile.route`). API routes check the key the way the real services
do (`Bearer KEY`, 401 otherwise), so only the fault under test differs from a
good answer. Every answer closes its connection.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Self

from tests.fakes.server import png


@dataclass
class Req:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Conn:
    """One accepted connection, as a behaviour sees it."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self.stop = stop

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def head(self, status: int, headers: dict[str, str] | None = None,
             reason: str = "X") -> None:
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        lines.append("connection: close")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def respond(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.head(status, {"content-length": str(len(body)), **(headers or {})})
        self.send(body)

    def wait(self, seconds: float = 600.0) -> None:
        """Hold the connection open (until the server stops)."""
        self.stop.wait(seconds)

    def reset(self) -> None:
        """Close with a TCP RST instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


Behaviour = Callable[[Conn, Req], None]


class Hostile:
    def __init__(self, key: str = "sk-test-key-123") -> None:
        self.key = key
        self.requests: list[Req] = []
        self.routes: list[tuple[str, Behaviour, bool]] = []
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    # -- set-up --------------------------------------------------------
    def route(self, prefix: str, behaviour: Behaviour, *, auth: bool = True) -> Self:
        """Answer requests whose path starts with PREFIX; AUTH: refuse (401) any without
        `Authorization: Bearer KEY`, as the real API does."""
        self.routes.append((prefix, behaviour, auth))
        return self

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.close()
        self.listener.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def calls(self, prefix: str) -> list[Req]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    # -- serving -------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self._conns.append(sock)
            threading.Thread(target=self._handle, args=(sock,), daemon=True).start()

    def _handle(self, sock: socket.socket) -> None:
        conn = Conn(sock, self._stop)
        try:
            req = _read_request(sock)
            if req is None:
                return
            with self._lock:
                self.requests.append(req)
            for prefix, behaviour, auth in self.routes:
                if req.path.startswith(prefix):
                    if auth and req.headers.get("authorization") != f"Bearer {self.key}":
                        conn.respond(401, json.dumps({"error": {
                            "message": "Incorrect API key provided", "type":
                            "invalid_request_error", "code": "invalid_api_key"}}).encode(),
                            {"content-type": "application/json"})
                    else:
                        behaviour(conn, req)
                    break
            else:
                conn.respond(404, b'{"error": {"message": "no such route"}}',
                             {"content-type": "application/json"})
        except OSError:
            pass  # the client went away: that is its right
        finally:
            with contextlib.suppress(OSError):
                sock.close()


def _read_request(sock: socket.socket) -> Req | None:
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length") or 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Req(method, path, headers, body)


# ---------------------------------------------------------------- behaviours

JSON = {"content-type": "application/json"}


def answer(status: int, body: bytes | str, content_type: str = "application/json",
           **headers: str) -> Behaviour:
    raw = body.encode() if isinstance(body, str) else body

    def b(conn: Conn, req: Req) -> None:
        conn.respond(status, raw, {"content-type": content_type,
                                   **{k.replace("_", "-"): v for k, v in headers.items()}})
    return b


def json_answer(obj: Any, status: int = 200, **headers: str) -> Behaviour:
    return answer(status, json.dumps(obj), **headers)


def images_json(*images: bytes) -> bytes:
    import base64

    return json.dumps({"created": 1, "data": [
        {"b64_json": base64.b64encode(i).decode()} for i in images]}).encode()


def url_json(*urls: str) -> Behaviour:
    return json_answer({"created": 1, "data": [{"url": u} for u in urls]})


def sequence(*behaviours: Behaviour) -> Behaviour:
    """Successive requests get successive behaviours; the last one repeats."""
    lock = threading.Lock()
    queue = list(behaviours)

    def b(conn: Conn, req: Req) -> None:
        with lock:
            now = queue.pop(0) if len(queue) > 1 else queue[0]
        now(conn, req)
    return b


def retry_after(value: str, status: int = 429) -> Behaviour:
    return json_answer({"error": {"message": "Rate limit reached", "type": "requests",
                                  "code": "rate_limit_exceeded"}}, status,
                       retry_after=value)


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


def slowloris(body: bytes, every: float = 0.2, headers_too: bool = False) -> Behaviour:
    """A whole, valid answer, one byte every EVERY seconds (the headers as well with
    HEADERS_TOO): no single read ever waits long."""
    def b(conn: Conn, req: Req) -> None:
        head = (f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
        if not headers_too:
            conn.send(head)
            head = b""
        for i in range(len(head + body)):
            if conn.stop.wait(every):
                return
            conn.send((head + body)[i:i + 1])
    return b


def never_answer() -> Behaviour:
    def b(conn: Conn, req: Req) -> None:
        conn.wait()
    return b


def reset_mid_body(body: bytes, after: int) -> Behaviour:
    def b(conn: Conn, req: Req) -> None:
        conn.head(200, {"content-type": "application/json",
                        "content-length": str(len(body))})
        conn.send(body[:after])
        time.sleep(0.05)
        conn.reset()
    return b


def cut_after(body: bytes, after: int, content_type: str = "text/event-stream") -> Behaviour:
    """A close-delimited body (no length, as SSE is) that stops after AFTER bytes."""
    def b(conn: Conn, req: Req) -> None:
        conn.head(200, {"content-type": content_type, "cache-control": "no-cache"})
        conn.send(body[:after])
    return b


def redirect(location: str, status: int = 302) -> Behaviour:
    def b(conn: Conn, req: Req) -> None:
        conn.respond(status, b"", {"location": location})
    return b


def declares(length: int, send: bytes = b"\x89PNG\r\n\x1a\n",
             content_type: str = "image/png") -> Behaviour:
    """Declares LENGTH bytes, sends SEND, then holds the connection."""
    def b(conn: Conn, req: Req) -> None:
        conn.head(200, {"content-type": content_type, "content-length": str(length)})
        conn.send(send)
        conn.wait(30)
    return b


def endless(chunk: bytes = b"\0" * 65536, content_type: str = "image/png",
            prefix: bytes = b"\x89PNG\r\n\x1a\n") -> Behaviour:
    """A body that never ends (close-delimited), as fast as the client reads."""
    def b(conn: Conn, req: Req) -> None:
        conn.head(200, {"content-type": content_type})
        conn.send(prefix)
        while not conn.stop.is_set():
            conn.send(chunk)
    return b


def serve_bytes(data: bytes, content_type: str = "image/png") -> Behaviour:
    return answer(200, data, content_type)


def sse(events: Iterable[dict[str, Any]]) -> bytes:
    out = []
    for e in events:
        out.append(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n")
    return "".join(out).encode()


def stream_events(image: bytes, partials: int = 0) -> Iterator[dict[str, Any]]:
    import base64

    b64 = base64.b64encode(image).decode()
    for i in range(partials):
        yield {"type": "image_generation.partial_image", "partial_image_index": i,
               "b64_json": b64}
    yield {"type": "image_generation.completed", "b64_json": b64,
           "usage": {"total_tokens": 1}}


def image(w: int = 16, h: int = 16) -> bytes:
    return png(w, h)
