"""An iterator consumed in a thread of its own, a batch ahead of its reader.

An import is two kinds of work: Python reads and checks rows (holding the interpreter's
lock), and SQLite writes them (releasing it for the whole of each set-based statement).
Reading the next chunk while the store writes this one lets the two use two cores.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()
_POLL_SECONDS = 0.1


def read_ahead(
    items: Iterator[T], batch: int, *, name: str = "read-ahead"
) -> Generator[T, None, None]:
    """``items`` again, produced by a thread up to one ``batch`` ahead of the consumer.

    Whatever ``items`` does runs in that thread, so state it shares with the consumer must
    be safe to touch from both. An exception it raises comes out of this iterator at the
    same point; when the consumer stops early (an error, Ctrl-C), the thread stops too.
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
        try:
            for item in items:
                part.append(item)
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
