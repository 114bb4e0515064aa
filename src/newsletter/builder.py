"""A big send's requests built in a second process, so the sending one only claims, posts
and records.

Reading ledger pages, signing tokens and serialising request bodies is Python work that
holds the GIL; in the sending process it fights the thread that commits and posts. A
forked builder has a GIL (and a core) of its own. It only reads, through a read-only
connection of its own, the same keyset pages as ``Ledger.pending_pages``, and never
claims: the sender claims each batch's span right before posting it, so a killed send
still leaves at most the batch on its way in flight, and whoever left the list after the
builder read them is left out by the claim (the sender then rebuilds that batch).

The builder is forked, not spawned: it starts in milliseconds with the issue, the
provider and the unsubscribe secret already in memory, so the secret is never pickled,
logged or put on a command line. A request body is written into one of a few slots of
memory shared by both processes and posted from there, so a megabyte per batch is not
pickled, piped and copied again; the builder waits for a free slot, which keeps it at most
``SLOTS`` batches ahead of the sender and its memory bounded.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from .errors import SendError
from .providers.base import PreparedBatch, RecipientRow
from .store.db import BUSY_TIMEOUT_MS
from .store.ledger import PageSpan, PendingPage, read_pending_pages

SLOTS = 4
SLOT_BYTES = 4 << 20
"""Room for a body of 1,000 personalizations several times over; a bigger one is piped."""

ORPHAN_CHECK_S = 0.5
"""How often a builder waiting for a free slot checks that the sender is still there."""

RowsOf = Callable[[PendingPage], list[RecipientRow]]
PrepareRows = Callable[[list[RecipientRow]], PreparedBatch]


def can_fork() -> bool:
    """Whether a builder can be forked here (not on Windows, for one)."""
    return "fork" in multiprocessing.get_all_start_methods()


@dataclass(frozen=True)
class BuiltBatch:
    """One page read and its request built by the builder, as it crosses the pipe."""

    span: PageSpan
    batch: PreparedBatch
    page_rows: bytes
    """The page's rows as JSON, parsed back only when a claim differs or someone failed."""
    body_bytes: int = -1
    """The request body's size when it waits in the next shared slot; -1 when it is piped."""

    def page(self) -> PendingPage:
        return PendingPage(list(map(tuple, orjson.loads(self.page_rows))), self.span.held)


@dataclass(frozen=True)
class _Failed:
    """Why the builder stopped; its exception may not survive a pickle, its words do."""

    kind: str
    message: str


class Builder:
    """The builder process of one send; iterate for its batches, in subscriber id order."""

    def __init__(
        self,
        store_path: Path,
        issue_id: str,
        *,
        limit: int | None,
        chunk: int,
        rows_of: RowsOf,
        prepare: PrepareRows,
    ) -> None:
        context = multiprocessing.get_context("fork")
        self._reader, writer = context.Pipe(duplex=False)
        self._slots = _Slots(
            mmap.mmap(-1, SLOTS * SLOT_BYTES), context.Semaphore(SLOTS), os.getpid()
        )
        self._process = context.Process(
            target=_build,
            args=(self._reader, writer, Path(store_path).resolve(), issue_id, limit, chunk),
            kwargs={"rows_of": rows_of, "prepare": prepare, "slots": self._slots},
            name="newsletter-builder",
            daemon=True,
        )
        self._process.start()
        writer.close()

    def __iter__(self) -> Iterator[tuple[BuiltBatch, Callable[[], None]]]:
        """Each batch with the call that frees its body's slot: made once it is posted."""
        taken = 0
        while True:
            try:
                item = self._reader.recv()
            except EOFError:
                self._process.join()
                raise SendError(
                    "the process building the requests stopped unexpectedly "
                    f"(exit code {self._process.exitcode})",
                    hint="nothing unconfirmed was marked sent; run the same command again "
                    "to resume",
                ) from None
            if item is None:
                return
            if isinstance(item, _Failed):
                raise SendError(f"building the requests failed: {item.kind}: {item.message}")
            if item.body_bytes < 0:
                yield item, _nothing
                continue
            yield self._slots.read(item, taken), self._slots.free.release
            taken += 1

    def close(self) -> None:
        """Stop the builder if it is still running; it holds nothing that needs saving."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._reader.close()
        with suppress(BufferError):  # a view of a body may outlive the send's stop
            self._slots.memory.close()

    def __enter__(self) -> Builder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class _Slots:
    """Memory both processes share, cut in ``SLOTS`` slots used in turn, and how many are
    free: the builder takes one per body, the sender frees them in the same order."""

    memory: mmap.mmap
    free: Any
    sender: int
    """The sending process's id: a builder whose parent it no longer is was orphaned."""

    def write(self, batch: PreparedBatch, taken: int) -> tuple[PreparedBatch, int]:
        """The batch without its body, which now waits in the slot; its size, or -1 if it
        does not fit one and crosses the pipe with the batch."""
        parts = batch.payload.parts
        size = sum(map(len, parts))
        if size > SLOT_BYTES:
            return batch, -1
        while not self.free.acquire(timeout=ORPHAN_CHECK_S):
            if os.getppid() != self.sender:
                raise BrokenPipeError("the sender is gone")  # killed: nobody frees a slot
        at = taken % SLOTS * SLOT_BYTES
        for part in parts:
            self.memory[at : at + len(part)] = part
            at += len(part)
        return replace(batch, payload=replace(batch.payload, parts=())), size

    def read(self, built: BuiltBatch, taken: int) -> BuiltBatch:
        """The batch with its body back, as a view of the slot: posted without a copy."""
        at = taken % SLOTS * SLOT_BYTES
        body = memoryview(self.memory)[at : at + built.body_bytes]
        batch = built.batch
        return replace(built, batch=replace(batch, payload=replace(batch.payload, parts=(body,))))


def _nothing() -> None:
    return None


def _build(
    reader: Connection,
    writer: Connection,
    store_path: Path,
    issue_id: str,
    limit: int | None,
    chunk: int,
    *,
    rows_of: RowsOf,
    prepare: PrepareRows,
    slots: _Slots,
) -> None:
    """The builder's whole life: read, build, hand over; a closed pipe means stop."""
    reader.close()
    try:
        connection = sqlite3.connect(f"{store_path.as_uri()}?mode=ro", uri=True)
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

        def scalar(sql: str, params: object) -> object:
            return connection.execute(sql, params).fetchone()[0]  # type: ignore[arg-type]

        taken = 0
        for page in read_pending_pages(scalar, issue_id, limit=limit, chunk=chunk):
            batch, size = prepare(rows_of(page)), -1
            if batch.payload is not None:
                batch, size = slots.write(batch, taken)
                taken += size >= 0
            writer.send(BuiltBatch(page.span, batch, orjson.dumps(page.rows), size))
        writer.send(None)
    except BrokenPipeError:
        return  # the sender stopped; nothing here is worth finishing
    except BaseException as exc:  # every failure is reported to the sender
        with suppress(OSError):
            writer.send(_Failed(type(exc).__name__, str(exc)))
    finally:
        writer.close()
