"""An iterator consumed in a thread of its own, a batch ahead of its reader.

An import is two kinds of work: Python reads and checks rows (holding the interpreter's
lock), and SQLite writes them (releasing it for the whole of each set-based statement).
Reading the next chunk while the store writes this one lets the two use two cores.

That overlap needs two more things, without which a 1,000,000-row import ran the two
threads strictly in turn (each waiting while the other ran: 17 s of wall time for 16 s
of CPU). The writer lets go of the interpreter's lock at every call into SQLite and wants
it straight back; the reader, busy in Python, kept it each time for the interpreter's
switch interval, 5 ms. So the writer asks for a short interval while the import runs
(``prompt_handover``), and the reader pauses while the writer binds a chunk's values
(``paused_by``), the one part of the writer's work that is Python through and through.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
_DONE = object()
_POLL_SECONDS = 0.1
HANDOVER_SECONDS = 0.0001
"""The switch interval while an import runs: a thread back from SQLite waits at most this
long for the lock; the reader's extra switches cost it nothing measurable."""
PAUSE_EVERY = 500
"""Items the reader makes between looks at ``paused_by``: a pause begins within about a
millisecond of reading, and the look costs nothing beside the row's own checks."""


@contextmanager
def prompt_handover(seconds: float = HANDOVER_SECONDS) -> Iterator[None]:
    """The interpreter's switch interval at ``seconds`` inside, as it was afterwards."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def read_ahead(
    items: Iterator[T],
    batch: int,
    *,
    name: str = "read-ahead",
    paused_by: threading.Lock | None = None,
) -> Generator[T, None, None]:
    """``items`` again, produced by a thread up to one ``batch`` ahead of the consumer.

    Whatever ``items`` does runs in that thread, so state it shares with the consumer must
    be safe to touch from both. An exception it raises comes out of this iterator at the
    same point; when the consumer stops early (an error, Ctrl-C), the thread stops too.
    While the consumer holds ``paused_by``, the thread makes at most ``PAUSE_EVERY`` more
    items and waits.
    """
    batches: queue.Queue[object] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand_over(value: object) -> bool:
        while not stop.is_set():
            try:
                batches.put(value, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        part: list[T] = []
        made = 0
        try:
            for item in items:
                part.append(item)
                made += 1
                if paused_by is not None and made % PAUSE_EVERY == 0:
                    with paused_by:
                        pass
                if len(part) == batch:
                    if not hand_over(part):
                        return
                    part = []
        except BaseException as exc:  # handed over after the items before it
            if hand_over(part):
                hand_over(exc)
            return
        if hand_over(part):
            hand_over(_DONE)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            got = batches.get()
            if got is _DONE:
                return
            if isinstance(got, BaseException):
                raise got
            yield from got  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
