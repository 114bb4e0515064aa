"""Senders sharing one send on PostgreSQL never claim one recipient twice, while their
sending marks and answers are written beside the claims without the store's write lock."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from conftest import postgres_url
from newsletter.send_models import Delivery, Outcome
from newsletter.store import Ledger, Store
from newsletter.store.ledger import Claim
from newsletter.store.postgres import claims_session
from newsletter.store.subscribers import NewSubscriber

ISSUE = "007-2026-12-01"
MEMBERS = 1200
BATCH = 25
SENDERS = 4


@pytest.fixture
def url(postgres_cluster: Any) -> str:
    location = postgres_url(postgres_cluster)
    with Store.open(location) as store:
        store.ensure_list("members")
        store.upsert_many(
            [NewSubscriber(f"reader{i}@example.org") for i in range(MEMBERS)], "members"
        )
    return location


@pytest.fixture
def ledgers(url: str) -> Iterator[list[Ledger]]:
    """One ledger per sender, each on a store (a pool of connections) of its own, as each
    sending process has."""
    stores = [Store.open(url) for _ in range(SENDERS)]
    yield [Ledger(store, owner=f"sender:{n}", joined=True) for n, store in enumerate(stores)]
    for store in stores:
        store.close()


def together(ledgers: list[Ledger], claim: Callable[[Ledger, int], Claim | None]) -> list[Claim]:
    """Every sender claims, marks and settles batches at once until nothing is left; each
    claim is taken as the send loop takes it, in a transaction of its own."""
    claims: list[Claim] = []
    failures: list[BaseException] = []
    start = threading.Barrier(len(ledgers))

    def sender(ledger: Ledger) -> None:
        send_id = ledger.open_send(ISSUE, ["members"]).id
        start.wait()
        try:
            while True:
                with ledger.transaction(durable=False):
                    taken = claim(ledger, send_id)
                if taken is None:
                    return
                claims.append(taken)
                assert ledger.mark_sending(send_id, taken.batch_no)
                # One recipient of each batch refused: the answer writes rows of its own.
                refused = {taken.subscriber_ids[0]: (Outcome.REFUSED, "mailbox unknown")}
                answer = Delivery.of_all(taken.subscriber_ids, Outcome.ACCEPTED, exceptions=refused)
                ledger.settle(taken, answer, retry_in=0)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=sender, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    return claims


def assert_each_once(claims: list[Claim], expected: int) -> None:
    taken = Counter(sid for claim in claims for sid in claim.subscriber_ids)
    twice = [sid for sid, times in taken.items() if times > 1]
    assert twice == [], f"claimed more than once: {twice[:10]}"
    assert len(taken) == expected
    numbers = [claim.batch_no for claim in claims]
    assert len(numbers) == len(set(numbers)), "one batch number given to two claims"


def test_senders_claiming_new_members_at_once_each_get_their_own(ledgers: list[Ledger]) -> None:
    list_id = ledgers[0].store.list_id("members")
    claims = together(ledgers, lambda ledger, send_id: ledger.claim_new(send_id, list_id, 0, BATCH))
    assert_each_once(claims, MEMBERS)
    counts = ledgers[0].counts(ISSUE)
    assert counts["sent"] == MEMBERS - len(claims)
    assert counts["refused"] == len(claims)


def test_senders_claiming_the_queue_at_once_each_get_their_own(ledgers: list[Ledger]) -> None:
    """Recipients put back in the queue are claimed by moving their rows to a new batch:
    the statement that picks them and the one that moves them are one, and two senders
    doing so at once must still not move the same row into both their batches."""
    first = ledgers[0]
    send_id = first.open_send(ISSUE, ["members"]).id
    list_id = first.store.list_id("members")
    while (claim := first.claim_new(send_id, list_id, 0, 400)) is not None:
        first.release(send_id, claim.batch_no)  # never went out: queued again
    claims = together(ledgers, lambda ledger, send_id: ledger.claim_queued(send_id, limit=BATCH))
    assert_each_once(claims, MEMBERS)
    assert first.counts(ISSUE)["queued"] == 0


def test_a_dead_senders_lingering_session_is_waited_for_before_its_batches_settle(
    url: str,
) -> None:
    """``kill -9`` closes a sender's connections at once, but the server ends their
    sessions, and drops the claims they hold, a moment later. The next run, taking over the
    lock of a process it knows is dead, waits for those sessions: were it to settle at
    once, the dead sender's batch would look held by a live one and stay 'sending'."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    owner = f"{socket.gethostname()}:{gone.pid}"
    with Store.open(url) as store:
        ledger = Ledger(store, owner=owner)
        send_id = ledger.open_send(ISSUE, ["members"]).id
        ledger.acquire_lock(ISSUE)
        with ledger.transaction(durable=False):
            taken = ledger.claim_new(send_id, store.list_id("members"), 0, BATCH, fresh=True)
        assert taken is not None
        assert ledger.mark_sending(send_id, taken.batch_no)
    # The dead sender's session, still holding its claim just after the process died.
    lingering = psycopg.connect(url, autocommit=True, application_name=claims_session(owner))
    lingering.execute("SELECT pg_advisory_lock(%s, %s)", (send_id, taken.batch_no))
    ends = threading.Timer(0.5, lingering.close)
    ends.start()
    try:
        with Store.open(url) as store:
            ledger = Ledger(store)
            assert ledger.acquire_lock(ISSUE).replaced == owner
            assert lingering.closed  # the takeover waited for the session to end
            recovery = ledger.recover(send_id)
            assert recovery.unconfirmed == BATCH
            states = store.db.all("SELECT state FROM send_batches WHERE send_id = ?", (send_id,))
            assert states == [("unconfirmed",)]
    finally:
        ends.join()
