"""`imagegen serve` in this process, on a free loopback port, for tests and the bench."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKEN = "test-token-123456"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    url: str  # http://127.0.0.1:PORT
    token: str
    door: Any
    server: Any
    output: Path

    @property
    def base(self) -> str:
        return self.url + "/v1"

    def client(self, **kw: Any) -> Any:
        from openai import OpenAI

        return OpenAI(**{"base_url": self.base, "api_key": self.token, **kw})

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


@contextmanager
def serving(output: Path, *, concurrency: int = 4, max_cost: float | None = None,
            per_day: float | None = None, **settings: Any) -> Iterator[Running]:
    from imagegen_cli.serve import http
    from imagegen_cli.serve.bridge import Door

    output.mkdir(parents=True, exist_ok=True)
    door = Door(dict(os.environ), output, concurrency=concurrency, max_cost=max_cost,
                max_cost_per_day=per_day)
    port = free_port()
    server = http.Server(door, http.Settings(port=port, token=TOKEN, **settings))
    us = http.uvicorn_server(server)
    thread = threading.Thread(target=us.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not us.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield Running(f"http://127.0.0.1:{port}", TOKEN, door, server, output)
    finally:
        us.should_exit = True
        thread.join(10)
        server.close()
