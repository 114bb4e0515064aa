"""What the web endpoints share: bounded request bodies, a store per request, consent order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..config import LoadedConfig
from ..send_models import Subscriber, SubscriberStatus
from ..store import Store


class BodyTooLarge(Exception):
    """The request body is over the configured limit. The app answers it (413) for every
    endpoint alike, through ``too_large``."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


async def too_large(request: Request, exc: Exception) -> Response:
    """The app's answer to ``BodyTooLarge``, raised by ``read_body`` in any endpoint."""
    limit = exc.limit if isinstance(exc, BodyTooLarge) else 0
    return PlainTextResponse(
        f"request body too large (a body over {limit} bytes is refused)\n", status_code=413
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes.

    Content-Length is checked first so an honest client is turned away before it uploads;
    the stream is counted too, because a chunked body declares no length at all.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return bytes(body)


T = TypeVar("T")
STORE_THREADS = 4
"""Threads that run the endpoints' store work. SQLite takes one writer at a time, so more
threads only wait on its lock while contending for the interpreter; a few keep a reader's
click from queueing behind a slow one."""
_store_pool = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="store")


async def in_store_thread(function: Callable[..., T], *args: object) -> T:
    """``function`` run in one of the store's threads, so the event loop keeps answering.

    asyncio's own executor hand-off: Starlette's ``run_in_threadpool`` (anyio, with its
    capacity limiter and cancel scopes) cost more per request than a sign-up's writes.
    """
    return await asyncio.get_running_loop().run_in_executor(_store_pool, function, *args)


_locations: dict[int, tuple[LoadedConfig, Path | str]] = {}


def store_location(loaded: LoadedConfig) -> Path | str:
    """``loaded.store_location``, worked out once per config: it builds the path anew (or
    reads the environment for a PostgreSQL URL) on every call, a twentieth of a sign-up's
    CPU when each request asked for it twice. The config is kept with it, so its ``id``
    cannot be taken by another one."""
    kept = _locations.get(id(loaded))
    if kept is None or kept[0] is not loaded:
        kept = _locations[id(loaded)] = (loaded, loaded.store_location)
    return kept[1]


_threads = threading.local()
_shared: dict[Path | str, Store] = {}
_opening = threading.Lock()


@contextmanager
def store_for_request(loaded: LoadedConfig, *, writing: bool = False) -> Iterator[Store]:
    """The store, through a connection opened once and kept.

    A SQLite connection must not be shared between threads mid-statement, so each worker
    thread keeps its own; opening one (with its migration check) per request cost more than
    the request's own work, and ``create_app`` migrated the store already. A PostgreSQL
    store is one pool, shared by every thread. ``writing`` runs the block in one
    transaction that commits without waiting for the disk (``transaction(durable=False)``):
    a reader's sign-up or unsubscribe survives the server being killed at once, and a power
    cut can lose only the last moments of them, which is what lets one process answer
    a thousand a second where each commit's wait for the disk alone took 4 ms here.
    """
    location = store_location(loaded)
    kept = _shared if isinstance(location, str) else _threads.__dict__.setdefault("stores", {})
    store = kept.get(location)
    if store is None:
        with _opening:
            store = kept.get(location)
            if store is None:
                store = kept[location] = Store.open(location)
    if not writing:
        yield store
        return
    with store.db.transaction(durable=False):
        yield store


def escalate(
    store: Store, subscriber: Subscriber, status: SubscriberStatus, source: str, detail: str
) -> bool:
    """Move a subscriber to ``status`` only if it is stronger than the one they have
    (see ``SubscriberStatus.strength``)."""
    if status.strength <= subscriber.status.strength:
        return False
    store.set_status(subscriber.id, status, source, detail)
    return True
