"""Statuses per list: leaving one list is not leaving them all, and stores of schema 4
move to them with every unsubscribe, bounce and complaint kept."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.errors import StoreError
from newsletter.send_models import SubscriberStatus
from newsletter.store import Ledger, Store
from newsletter.store.db import MIGRATIONS, Database
from newsletter.store.subscribers import NewSubscriber

AT = "2026-11-01T00:00:00.000000Z"
LEFT_AT = "2026-11-20T09:30:00.000000Z"
PEOPLE = {
    "sub@example.org": "subscribed",
    "unsub@example.org": "unsubscribed",
    "bounce@example.org": "bounced",
    "complaint@example.org": "complained",
}


def _schema_4_store(path: Path) -> None:
    """A store as version 4 left it: one status per person, on two lists each."""
    db = Database(path)
    db.migrate(MIGRATIONS[:4])
    db.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO lists (name, created_at) VALUES (?, ?)",
            [("members", AT), ("guests", AT)],
        )
        for email, status in PEOPLE.items():
            subscriber_id = conn.execute(
                "INSERT INTO subscribers (email, email_key, status, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                (email, email, status, AT, LEFT_AT if status != "subscribed" else AT),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO memberships (list_id, subscriber_id, created_at) "
                "SELECT id, ?, ? FROM lists",
                (subscriber_id, AT),
            )
            conn.execute(
                "INSERT INTO status_events (subscriber_id, status, source, detail, at) "
                "VALUES (?, ?, 'test', 'before', ?)",
                (subscriber_id, status, LEFT_AT),
            )
    conn.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store.db")
    opened.ensure_list("members")
    opened.ensure_list("guests")
    yield opened
    opened.close()


def _members(store: Store, list_name: str) -> list[str]:
    return [s.email for s in store.subscribers_of(list_name)]


def test_a_store_of_schema_4_keeps_every_status_on_every_list(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    _schema_4_store(path)

    with Store.open(path) as store:
        assert store.db.schema_version() == len(MIGRATIONS) >= 5
        for email, status in PEOPLE.items():
            person = store.get(email)
            assert person is not None and person.status == status, email
            for list_name in ("members", "guests"):
                assert store.status_on(email, list_name) == status, (email, list_name)
            # Being added is read from the person's row, before what the store kept.
            assert [(e.status, e.detail) for e in store.events(email)] == [
                ("subscribed", "added"),
                (status, "before"),
            ]
        # An unsubscribe left every list: each membership says so, and since when.
        assert store.list_statuses("unsub@example.org") == {
            "guests": SubscriberStatus.UNSUBSCRIBED,
            "members": SubscriberStatus.UNSUBSCRIBED,
        }
        left = store.db.all(
            "SELECT DISTINCT m.updated_at FROM memberships m JOIN subscribers s "
            "ON s.id = m.subscriber_id WHERE s.email = 'unsub@example.org'"
        )
        assert left == [(LEFT_AT,)]
        # A bounce or complaint stays the address's: the memberships keep their status.
        assert store.list_statuses("bounce@example.org")["members"] is SubscriberStatus.SUBSCRIBED
        assert _members(store, "members") == ["sub@example.org"]
        assert store.count("members", SubscriberStatus.BOUNCED) == 1
        assert store.count("members", SubscriberStatus.UNSUBSCRIBED) == 1
        assert Ledger(store, owner="here:1").not_reached("001", ["members", "guests"]) == 1


def test_leaving_one_list_keeps_the_others(store: Store) -> None:
    ann = store.add("ann@example.org", "Ann", "members")
    store.add("ann@example.org", list_name="guests")

    store.unsubscribe(ann.id, "one-click", "list members", list_name="members")

    assert store.get("ann@example.org").status is SubscriberStatus.SUBSCRIBED
    assert store.status_on(ann.id, "members") is SubscriberStatus.UNSUBSCRIBED
    assert store.status_on(ann.id, "guests") is SubscriberStatus.SUBSCRIBED
    assert _members(store, "members") == [] and _members(store, "guests") == [ann.email]
    last = store.events(ann.id)[-1]
    assert (last.status, last.source, last.list_name) == ("unsubscribed", "one-click", "members")


def test_a_send_claims_only_the_people_subscribed_to_its_list(store: Store) -> None:
    for name in ("ann", "bo", "cy", "di"):
        store.add(f"{name}@example.org", list_name="members")
    store.unsubscribe("bo@example.org", "web", list_name="members")
    store.set_membership("cy@example.org", "members", SubscriberStatus.PENDING, "signup")
    store.set_status("di@example.org", SubscriberStatus.BOUNCED, "provider")
    ledger = Ledger(store, owner="here:1")
    send = ledger.open_send("001-2026-11-24", ["members"])

    claim = ledger.claim_new(send.id, store.list_id("members"), 0, 100)

    assert claim is not None and claim.emails == ["ann@example.org"]


def test_someone_who_left_a_list_between_retries_is_skipped(store: Store) -> None:
    ann = store.add("ann@example.org", list_name="members")
    ledger = Ledger(store, owner="here:1")
    send = ledger.open_send("001-2026-11-24", ["members"])
    claim = ledger.claim_new(send.id, store.list_id("members"), 0, 100)
    assert claim is not None
    with store.db.transaction():
        store.db.execute("UPDATE send_ledger SET state = 'queued' WHERE send_id = ?", (send.id,))

    store.unsubscribe(ann.id, "one-click", list_name="members")

    assert ledger.claim_queued(send.id, limit=100) is None
    assert ledger.counts("001-2026-11-24")["skipped"] == 1


def test_leaving_everything_leaves_each_list_and_joining_one_brings_back_that_one(
    store: Store,
) -> None:
    ann = store.add("ann@example.org", list_name="members")
    store.add("ann@example.org", list_name="guests")

    store.unsubscribe(ann.id, "preferences")
    assert set(store.list_statuses(ann.id).values()) == {SubscriberStatus.UNSUBSCRIBED}

    back = store.set_membership(ann.id, "guests", SubscriberStatus.SUBSCRIBED, "preferences")
    assert back.status is SubscriberStatus.SUBSCRIBED
    assert _members(store, "guests") == [ann.email] and _members(store, "members") == []


def test_a_bounce_is_not_undone_by_joining_a_list(store: Store) -> None:
    ann = store.add("ann@example.org", list_name="members")
    store.set_status(ann.id, SubscriberStatus.BOUNCED, "provider")

    store.set_membership(ann.id, "guests", SubscriberStatus.SUBSCRIBED, "preferences")

    assert store.status_on(ann.id, "guests") is SubscriberStatus.BOUNCED
    assert _members(store, "guests") == []


def test_an_import_skips_who_left_that_list_and_adds_them_to_another(store: Store) -> None:
    ann = store.add("ann@example.org", list_name="members")
    store.unsubscribe(ann.id, "one-click", list_name="members")

    again = store.upsert_many([NewSubscriber("ann@example.org", line=7)], "members")
    other = store.upsert_many([NewSubscriber("ann@example.org", line=7)], "guests")

    assert (again.skipped_unsubscribed, again.skipped_lines, again.added) == (1, [7], 0)
    assert other.added == 1
    assert store.status_on(ann.id, "members") is SubscriberStatus.UNSUBSCRIBED
    with pytest.raises(StoreError, match="not added back"):
        store.add("ann@example.org", list_name="members")
    store.add("ann@example.org", list_name="members", force=True)
    assert store.status_on(ann.id, "members") is SubscriberStatus.SUBSCRIBED


def test_a_membership_takes_only_the_statuses_of_a_list(store: Store) -> None:
    store.add("ann@example.org", list_name="members")
    with pytest.raises(ValueError, match="not a status on a list"):
        store.set_membership("ann@example.org", "members", SubscriberStatus.BOUNCED, "x")
