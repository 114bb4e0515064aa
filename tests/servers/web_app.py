"""The real `newsletter serve` app under uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from newsletter.config import load_config
from newsletter.send import unsubscribe_secret
from newsletter.store import open_store
from newsletter.tokens import make_token
from newsletter.web import create_app
from newsletter.web.server import LoopbackServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_app(config_path: Path) -> Iterator[httpx.Client]:
    """An HTTP client aimed at the app for ``config_path``; the server stops on exit."""
    server = LoopbackServer(create_app(load_config(config_path)))
    with server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def first_answer(server: subprocess.Popen[str], url: str, timeout: float = 15) -> httpx.Response:
    """GET ``url`` from a server started as a command, once it listens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, f"nothing answered at {url}"
            time.sleep(0.05)


def add_subscriber(config_path: Path, email: str, name: str = "") -> tuple[int, str]:
    """Put someone on the 'members' list; their id and a genuine unsubscribe token."""
    loaded = load_config(config_path)
    with open_store(loaded) as store:
        subscriber = store.add(email, name, list_name="members")
        secret = unsubscribe_secret(loaded, store)
        token = make_token(secret, subscriber.id, subscriber.email, store.list_id("members"))
    return subscriber.id, token
