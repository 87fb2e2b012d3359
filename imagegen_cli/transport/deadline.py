"""A deadline for a whole HTTP call: connect, send, headers and every body read.

httpx's timeouts bound each socket operation, so a server that trickles a
byte every 0.2 s never trips a 4 s read timeout and can hold a call for hours.
Here every network operation of the calling thread is bounded by the time
left until its deadline (`start`), so `--timeout` is the most one call takes
from connecting to the last byte. Imported only when a request is made.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any

import httpcore

_local = threading.local()


def start(seconds: float) -> None:
    """The calls this thread makes from now on must end within SECONDS."""
    _local.at = time.monotonic() + seconds


def clear() -> None:
    _local.at = None


def expired() -> bool:
    at = getattr(_local, "at", None)
    return at is not None and time.monotonic() >= at


def _bound(timeout: float | None, exc: type[Exception]) -> float | None:
    at: float | None = getattr(_local, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise exc("the call's deadline passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, _bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, _bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return DeadlineStream(self.inner.start_tls(
            ssl_context, server_hostname, _bound(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self.inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return DeadlineStream(self.inner.connect_tcp(
            host, port, _bound(timeout, httpcore.ConnectTimeout), local_address,
            socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        return DeadlineStream(self.inner.connect_unix_socket(
            path, _bound(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def install(client: Any) -> bool:
    """Route CLIENT's connections (direct and through proxies) through deadline-bound
    streams. httpx has no public hook for a network backend: this wraps the one its
    connection pools hold, and reports False where a pool does not have one."""
    done = True
    transports = [getattr(client, "_transport", None)]
    transports += list(getattr(client, "_mounts", {}).values())
    for tr in transports:
        pool = getattr(tr, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is None:
            done = tr is None
            continue
        if not isinstance(backend, DeadlineBackend):
            pool._network_backend = DeadlineBackend(backend)  # type: ignore[union-attr]
    return done
