"""The workers of a send: each takes a claimed batch's recipients, builds the request, says
it is going out, and delivers it through a provider instance of its own.

A worker is a thread, or, for a provider whose deliveries are mostly CPU work (building
SendGrid's big requests), a process with a core of its own; either way it comes from the
standard library's executors. A worker writes one thing to the ledger: that its batch is
``sending``, committed while its request is built and before it goes out, so a stop at
any moment leaves at most the batch each worker was posting with an unknown outcome. A
worker process started by ``fork`` opens its own connection to the store and stops once the sending
process is gone, so a killed send leaves nothing running.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

import orjson

from .message import PreparedIssue
from .providers import Provider
from .send_models import Delivery, Outcome, RecipientRow
from .store.db import StoreLocation, open_database
from .store.ledger import SEPARATOR, Details, Ledger
from .store.subscribers import Store

ORPHAN_CHECK_S = 0.5
_NO_ATTRIBUTES = ("{}", "")
_EMPTY: dict[str, str] = {}

Profiles = tuple[list[int], list[str], list[str], list[str]]
"""A batch's ids, addresses, names and attributes (JSON), as columns."""


@dataclass(frozen=True)
class Task:
    """A claimed batch as a worker needs it; small enough to cross to another process."""

    send_id: int
    batch_no: int
    subscriber_ids: list[int]
    """In id order; the worker reads their rows itself."""
    tokens: list[str]
    """Each recipient's unsubscribe token, in the same order."""
    details: Details | None = None
    """The batch's addresses, names and attributes as its claim read them (``Claim``)."""


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a worker needs besides its task; made once per send."""

    issue: PreparedIssue
    make_provider: Callable[[], Provider]
    store: StoreLocation


class Worker:
    """One worker's provider instance and signer; delivers one batch at a time."""

    def __init__(
        self, setup: WorkerSetup, ledger: Ledger, provider: Provider | None = None
    ) -> None:
        self.setup = setup
        self.ledger = ledger
        self.provider = provider or setup.make_provider()
        self._marker = ThreadPoolExecutor(1, thread_name_prefix="mark")

    def deliver(self, task: Task) -> Delivery:
        ids = task.subscriber_ids
        columns = self._columns(task)
        if not columns[0]:  # everyone in it was removed from the store since the claim
            return Delivery((), Outcome.ACCEPTED)
        tokens = task.tokens
        if len(columns[0]) != len(ids):  # some were removed since: match tokens by id
            by_id = dict(zip(ids, tokens, strict=True))
            tokens = [by_id[sid] for sid in columns[0]]
        rows = recipient_rows(columns, tokens)
        # The durable ``sending`` mark is written while the request is built: waiting for
        # the disk overlaps the work, and the request still goes out only once the mark
        # is on disk. A batch marked and then not posted (every recipient refused, the
        # request could not be built) is put back as it was, so it is not unconfirmed.
        marking = self._marker.submit(self.ledger.mark_sending, task.send_id, task.batch_no)
        asked = False

        def going_out() -> bool:
            nonlocal asked
            asked = True
            return marking.result()

        try:
            return self.provider.deliver(self.setup.issue, rows, going_out)
        finally:
            if not asked and marking.exception() is None and marking.result():
                self.ledger.unmark_sending(task.send_id, task.batch_no)

    def _columns(self, task: Task) -> Profiles:
        """The batch's recipients as its claim read them when all are still in the store
        (one count), else as the store holds them now."""
        ids = task.subscriber_ids
        first, last = ids[0], ids[-1]
        if task.details is not None and self.ledger.batch_intact(
            task.send_id, task.batch_no, first, last, len(ids)
        ):
            emails, names, attributes = (text.split(SEPARATOR) for text in task.details)
            return (ids, emails, names, attributes)
        return self.ledger.batch_columns(task.send_id, task.batch_no, first, last)[:4]

    def close(self) -> None:
        self._marker.shutdown()
        self.provider.close()


def recipient_rows(columns: Profiles, tokens: Sequence[str]) -> list[RecipientRow]:
    """The claimed recipients with their merge values and unsubscribe tokens."""
    ids, emails, names, attributes = columns
    loads = orjson.loads
    values = [_EMPTY if raw in _NO_ATTRIBUTES else loads(raw) for raw in attributes]
    return list(zip(ids, emails, names, values, tokens, strict=True))


class Workers:
    """The executor a send delivers through, and its workers' provider instances."""

    def __init__(
        self, setup: WorkerSetup, ledger: Ledger, probe: Provider, *, one_instance: bool = False
    ) -> None:
        """``probe`` is an opened instance, used by the first thread worker; with
        ``one_instance`` it is the only one (a provider handed in by a caller), so there is
        one worker, a thread."""
        self.setup = setup
        self.count = 1 if one_instance else max(1, probe.workers)
        self.in_processes = (
            not one_instance
            and probe.in_processes
            and "fork" in multiprocessing.get_all_start_methods()
        )
        self._ledger = ledger
        self._local = threading.local()
        self._all: list[Worker] = []
        self._lock = threading.Lock()
        self._spare: Provider | None = probe  # until the first worker takes it
        self.executor: Executor
        if self.in_processes:
            self.executor = ProcessPoolExecutor(
                self.count,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_start_process,
                initargs=(setup, os.getpid()),
            )
        else:
            self.executor = ThreadPoolExecutor(self.count, thread_name_prefix="deliver")

    def submit(self, task: Task) -> Future[Delivery]:
        if self.in_processes:
            return self.executor.submit(_deliver_in_process, task)
        return self.executor.submit(self._deliver_in_thread, task)

    def _deliver_in_thread(self, task: Task) -> Delivery:
        worker = getattr(self._local, "worker", None)
        if worker is None:
            worker = self._local.worker = self._new_worker()
        return worker.deliver(task)

    def _new_worker(self) -> Worker:
        with self._lock:
            # The instance the send opened to check the provider: its connection is
            # already made, so the first worker uses it.
            spare, self._spare = self._spare, None
            worker = Worker(self.setup, self._ledger, spare)
            self._all.append(worker)
            return worker

    def shutdown(self) -> None:
        """Wait for every started delivery, then close each worker's connection."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        for worker in self._all:
            worker.close()
        if self._spare is not None:
            self._spare.close()


_process_worker: Worker | None = None


def _start_process(setup: WorkerSetup, parent: int) -> None:
    """A worker process's own store connection and provider, and a watch on its parent."""
    global _process_worker
    database = open_database(setup.store)
    _process_worker = Worker(setup, Ledger(Store(database)))
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    """A worker whose sending process is gone (killed) stops: nothing would record its
    answers, and its batch is already unconfirmed in the ledger."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_S)
    os._exit(1)


def _deliver_in_process(task: Task) -> Delivery:
    assert _process_worker is not None, "the worker process was not started"
    return _process_worker.deliver(task)
