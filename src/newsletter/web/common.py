"""What the web endpoints share: bounded request bodies, a store per request, consent order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from starlette.requests import Request

from ..config import LoadedConfig
from ..models import Subscriber, SubscriberStatus
from ..store import Store


class BodyTooLarge(Exception):
    """The request body is over the configured limit."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes.

    Content-Length is checked first so an honest client is turned away before it uploads;
    the stream is counted too, because a chunked body declares no length at all.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


@contextmanager
def store_for_request(loaded: LoadedConfig) -> Iterator[Store]:
    """A connection of its own for each request: SQLite connections are cheap to open and
    this keeps worker threads from sharing one."""
    store = Store.open(loaded.store_location)
    try:
        yield store
    finally:
        store.close()


def escalate(
    store: Store, subscriber: Subscriber, status: SubscriberStatus, source: str, detail: str
) -> bool:
    """Move a subscriber to ``status`` only if it is stronger than the one they have
    (see ``SubscriberStatus.strength``)."""
    if status.strength <= subscriber.status.strength:
        return False
    store.set_status(subscriber.id, status, source, detail)
    return True
