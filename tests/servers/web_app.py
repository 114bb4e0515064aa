"""The real `newsletter serve` app under uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from newsletter.config import load_config
from newsletter.send import unsubscribe_secret
from newsletter.store import open_store
from newsletter.tokens import make_token
from newsletter.web import create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_app(config_path: Path) -> Iterator[httpx.Client]:
    """An HTTP client aimed at the app for ``config_path``; the server stops on exit."""
    app = create_app(load_config(config_path))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the web app did not start")
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{config.port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def add_subscriber(config_path: Path, email: str, name: str = "") -> tuple[int, str]:
    """Put someone on the 'members' list; their id and a genuine unsubscribe token."""
    loaded = load_config(config_path)
    with open_store(loaded) as store:
        subscriber = store.add(email, name, list_name="members")
        secret = unsubscribe_secret(loaded, store)
        token = make_token(secret, subscriber.id, subscriber.email, store.list_id("members"))
    return subscriber.id, token
