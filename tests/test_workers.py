"""A worker delivers a claimed batch as its claim read it, unless someone left the store
since: then only those still there, as the store holds them now."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.message import PreparedIssue
from newsletter.providers import OutboxProvider
from newsletter.send_models import Outcome
from newsletter.store import Ledger, Store
from newsletter.store.subscribers import NewSubscriber
from newsletter.tokens import TokenSigner
from newsletter.workers import Task, Worker, WorkerSetup
from servers.samples import sample_issue

ISSUE = "001-2026-11-24"


@pytest.fixture
def store(store_location: Path | str) -> Iterator[Store]:
    opened = Store.open(store_location)
    opened.ensure_list("members")
    people = [NewSubscriber(f"p{i}@example.org", f"Reader {i}") for i in range(1, 6)]
    opened.upsert_many(people, "members")
    yield opened
    opened.close()


def deliver_first_batch(store: Store, tmp_path: Path, *, between: str = "") -> list[str]:
    """Claim everyone, run ``between`` on the store, deliver through the outbox: the files
    written, after checking the batch is not left ``sending`` when nobody was posted."""
    ledger = Ledger(store, owner="here:1")
    send = ledger.open_send(ISSUE, ["members"]).id
    claim = ledger.claim_new(send, store.list_id("members"), 0, 10)
    assert claim is not None
    if between:
        store.db.execute(between)
    tokens = TokenSigner("s3cret").make_many(claim.subscriber_ids, claim.emails, 1)
    outbox = tmp_path / "out"
    setup = WorkerSetup(
        PreparedIssue(sample_issue()), lambda: OutboxProvider(outbox), store.db.location
    )
    worker = Worker(setup, ledger)
    task = Task(send, claim.batch_no, claim.subscriber_ids, tokens, claim.details)
    delivery = worker.deliver(task)
    worker.close()
    posted = any(delivery.outcome_of(sid)[0] is Outcome.ACCEPTED for sid in claim.subscriber_ids)
    assert ledger.batch_state(send, claim.batch_no) == ("sending" if posted else "queued")
    folder = outbox / ISSUE
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_a_batch_goes_out_as_claimed(store: Store, tmp_path: Path) -> None:
    files = deliver_first_batch(store, tmp_path)
    assert files == [f"{i}-p{i}@example.org.eml" for i in range(1, 6)]


def test_who_was_removed_after_the_claim_is_not_sent(store: Store, tmp_path: Path) -> None:
    files = deliver_first_batch(store, tmp_path, between="DELETE FROM subscribers WHERE id = 3")
    assert files == [f"{i}-p{i}@example.org.eml" for i in (1, 2, 4, 5)]


def test_a_batch_nobody_of_which_could_be_posted_is_not_left_sending(
    store: Store, tmp_path: Path
) -> None:
    # Every name holds a control character: the outbox refuses all, and posts nothing.
    store.db.execute("UPDATE subscribers SET name = 'A\x07B'")
    assert deliver_first_batch(store, tmp_path) == []


def test_a_claim_with_odd_stored_values_is_read_again_by_its_worker(
    store: Store, tmp_path: Path
) -> None:
    store.db.execute("UPDATE subscribers SET name = 'Odd\x1eName' WHERE id = 2")
    files = deliver_first_batch(store, tmp_path, between="DELETE FROM subscribers WHERE id = 4")
    # The outbox refuses the name with a control character; the others go, as stored now.
    assert files == [f"{i}-p{i}@example.org.eml" for i in (1, 3, 5)]
