"""Readers' writes (sign-ups, one-click unsubscribes) gathered into one transaction each
few milliseconds, and answered once it is committed.

A SQLite store takes one writer at a time, and a send running on it holds that lock for
each of its own commits. A request that takes the lock on its own waits behind the send
with SQLite's back-off (sleeps of up to 100 ms), then pays a whole transaction for a few
rows. Here one thread takes every write queued meanwhile and runs them in one
transaction, each inside a savepoint of its own: a write that fails is rolled back alone
and its request gets the error, the others are committed together. No answer is given
before its write is committed, so "you are unsubscribed" is never said of a change the
store could still lose to a crash of this process.

A PostgreSQL store lets writers run side by side, so its writes run in the store's
threads one transaction each, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..config import LoadedConfig
from .common import in_store_thread, store_for_request, store_location

T = TypeVar("T")
MOST_PER_TRANSACTION = 256
"""A bound on one transaction's work, so the send waits for the lock no longer than that."""


@dataclass
class _Write:
    function: Callable[..., Any]
    args: tuple[Any, ...]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class _BatchWriter:
    """The thread that commits the queued writes of one SQLite store."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.queue: queue.SimpleQueue[_Write] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="store-writes", daemon=True).start()

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            while len(batch) < MOST_PER_TRANSACTION:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _commit(self, batch: list[_Write]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with store_for_request(self.loaded, writing=True) as store:
                for write in batch:
                    # Each function opens its own store_for_request(writing=True), which
                    # joins this transaction; the savepoint keeps its failure its own.
                    store.db.execute("SAVEPOINT reader_write")
                    try:
                        outcomes.append((True, write.function(*write.args)))
                    except Exception as exc:
                        store.db.execute("ROLLBACK TO reader_write")
                        outcomes.append((False, exc))
                    store.db.execute("RELEASE reader_write")
        except Exception as exc:  # the commit itself (or a savepoint) failed: nothing holds
            outcomes = [(False, exc)] * len(batch)
        # One wake-up of each loop for the whole batch, not one per request: waking a loop
        # from another thread is a system call.
        answers: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}
        for write, (ok, value) in zip(batch, outcomes, strict=True):
            answers.setdefault(write.loop, []).append((write.future, ok, value))
        for loop, settled in answers.items():
            # RuntimeError: that server's loop closed meanwhile, so no one waits for these,
            # and this thread must live on for the next server's writes.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, settled)


_Answer = tuple["asyncio.Future[Any]", bool, Any]


def _settle(answers: list[_Answer]) -> None:
    for future, ok, value in answers:
        if future.done():  # the request was cancelled (client gone): its write stands anyway
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


_writers: dict[Path, _BatchWriter] = {}
_starting = threading.Lock()


async def committed(loaded: LoadedConfig, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)``'s result once its writes are committed.

    ``function`` writes through ``store_for_request(loaded, writing=True)`` as it would
    on its own; on SQLite it joins the batch's transaction.
    """
    location = store_location(loaded)
    if isinstance(location, str):
        return await in_store_thread(function, *args)
    writer = _writers.get(location)
    if writer is None:
        with _starting:
            writer = _writers.get(location) or _writers.setdefault(location, _BatchWriter(loaded))
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    writer.queue.put(_Write(function, args, loop, future))
    return await future
