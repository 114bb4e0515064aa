"""The subscriber store: schema, addresses, consent, streaming, secrets."""

from __future__ import annotations

import os
import sqlite3
import stat
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.errors import InvalidAddress, StoreError
from newsletter.send_models import SubscriberStatus
from newsletter.store import Store
from newsletter.store.db import MIGRATIONS, Database
from newsletter.store.subscribers import NewSubscriber


@pytest.fixture
def store(store_location: Path | str) -> Iterator[Store]:
    opened = Store.open(store_location)
    opened.ensure_list("members", "Members of the network")
    yield opened
    opened.close()


def test_open_creates_file_and_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "store.db"
    with Store.open(path) as first:
        assert first.db.schema_version() == len(MIGRATIONS)
        first.ensure_list("members")
    with Store.open(path) as second:
        assert second.db.schema_version() == len(MIGRATIONS)
        assert [lst.name for lst in second.lists()] == ["members"]
    rows = sqlite3.connect(path).execute("SELECT version FROM schema_migrations").fetchall()
    assert rows == [(m.version,) for m in MIGRATIONS]
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_new_store_and_its_journal_are_readable_by_their_owner_alone(tmp_path: Path) -> None:
    """It holds every address and, without NEWSLETTER_SECRET, the link-signing secret."""
    path = tmp_path / "store.db"
    previous = os.umask(0o022)
    try:
        with Store.open(path) as store:
            store.ensure_list("members")
            journals = [path.with_name(path.name + end) for end in ("-wal", "-shm")]
            assert all(journal.exists() for journal in journals)
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [path, *journals]}
    finally:
        os.umask(previous)
    assert modes == {"store.db": 0o600, "store.db-wal": 0o600, "store.db-shm": 0o600}


def test_an_existing_store_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store.open(path):
        pass
    path.chmod(0o640)  # a group the operator chose, say for backups
    with Store.open(path):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_commit_that_need_not_wait_for_the_disk_leaves_the_next_one_durable(
    tmp_path: Path,
) -> None:
    store = Store.open(tmp_path / "newsletter.db")
    store.ensure_list("members")
    db = store.db
    assert isinstance(db, Database)
    with db.transaction(durable=False):
        assert db.scalar("PRAGMA synchronous") == 1  # NORMAL: no wait for the disk
        store.ensure_list("claimed")
    assert db.scalar("PRAGMA synchronous") == 2  # FULL again for every other commit
    with pytest.raises(RuntimeError), db.transaction(durable=False):
        store.ensure_list("rolled back")
        raise RuntimeError
    assert db.scalar("PRAGMA synchronous") == 2
    other = Store.open(db.path)
    assert [found.name for found in other.lists()] == ["claimed", "members"]
    other.close()
    store.close()


def test_a_list_is_found_by_name_and_by_id(store: Store) -> None:
    members = store.find_list("members")
    assert members is not None
    assert store.find_list_by_id(members.id) == members
    assert store.find_list_by_id(members.id + 1) is None
    assert store.find_list("guests") is None


def test_store_from_a_newer_version_is_refused(store: Store) -> None:
    store.db.execute("INSERT INTO schema_migrations VALUES (99, 'future', 'x')")
    with pytest.raises(StoreError, match="schema version 99, newer than") as caught:
        Store.open(store.db.location)
    assert caught.value.hint is not None and store.db.setting in caught.value.hint


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError) as caught:
        Store.open(path)
    assert str(path) in str(caught.value)


def test_add_normalises_and_finds_the_same_person_in_any_case(store: Store) -> None:
    added = store.add("  Ann.Smith@Example.ORG ", "Ann Smith", "members", {"org": "Council"})
    assert added.email == "Ann.Smith@example.org"
    assert added.attributes == {"org": "Council"}
    again = store.add("ann.smith@example.org", list_name="members", attributes={"role": "chair"})
    assert again.id == added.id
    assert again.name == "Ann Smith"  # an empty name keeps the stored one
    assert again.attributes == {"org": "Council", "role": "chair"}
    assert store.get("ANN.SMITH@EXAMPLE.ORG") == added
    assert store.count("members") == 1


@pytest.mark.parametrize(
    ("address", "reason"),
    [("ann@@example.org", "ann@@example.org"), ("no-at-sign.example.org", "@-sign"), ("", "no")],
)
def test_invalid_address_names_it_and_why(store: Store, address: str, reason: str) -> None:
    with pytest.raises(InvalidAddress) as caught:
        store.add(address, list_name="members")
    assert reason in str(caught.value)
    assert store.count() == 0


def test_unknown_list_names_the_known_ones(store: Store) -> None:
    with pytest.raises(StoreError, match=r"no list named 'membres' \(lists: members\)"):
        store.add("ann@example.org", list_name="membres")


def test_no_resubscribe_without_force_and_every_change_is_an_event(store: Store) -> None:
    ann = store.add("ann@example.org", "Ann", "members", source="signup-form")
    store.unsubscribe("ann@example.org", source="link", detail="one-click")
    with pytest.raises(StoreError, match="is unsubscribed and is not added back") as caught:
        store.add("ann@example.org", list_name="members")
    assert "--force" in str(caught.value)
    assert store.get("ann@example.org").status is SubscriberStatus.UNSUBSCRIBED

    back = store.add("ann@example.org", list_name="members", force=True, source="cli")
    assert back.status is SubscriberStatus.SUBSCRIBED
    store.set_status(ann.id, "bounced", "provider", "550 mailbox unknown")
    store.set_status(ann.id, SubscriberStatus.BOUNCED, "provider")  # no change, no event
    events = [(e.status, e.source, e.detail) for e in store.events("ann@example.org")]
    assert events == [
        ("subscribed", "signup-form", "added"),
        ("unsubscribed", "link", "one-click"),
        ("subscribed", "cli", "added again with force"),
        ("bounced", "provider", "550 mailbox unknown"),
    ]


def test_remove_deletes_the_person_and_their_history(store: Store) -> None:
    store.add("ann@example.org", "Ann", "members")
    store.set_status("ann@example.org", "bounced", "provider", "550 mailbox unknown")
    assert store.db.scalar("SELECT COUNT(*) FROM status_events") == 1  # history to remove
    store.remove("ann@example.org")
    assert store.get("ann@example.org") is None
    assert store.db.scalar("SELECT COUNT(*) FROM status_events") == 0
    assert store.db.scalar("SELECT COUNT(*) FROM memberships") == 0
    with pytest.raises(StoreError, match=r"no subscriber 'ann@example\.org'"):
        store.remove("ann@example.org")


def test_streams_many_subscribers_in_id_order_with_flat_memory(store: Store) -> None:
    total = 50_000
    records = [NewSubscriber(f"person{i}@example.org", f"Person {i}") for i in range(total)]
    counts = store.upsert_many(records, "members")
    assert counts.added == total
    for i in range(0, total, 10):
        store.db.execute(
            "UPDATE subscribers SET status = 'unsubscribed' WHERE email_key = ?",
            (f"person{i}@example.org",),
        )
    assert store.count("members", SubscriberStatus.SUBSCRIBED) == total - total // 10

    tracemalloc.start()
    previous, seen = 0, 0
    for subscriber in store.subscribers_of("members"):
        assert subscriber.id > previous
        assert subscriber.status is SubscriberStatus.SUBSCRIBED
        previous = subscriber.id
        seen += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seen == total - total // 10
    assert peak < 5_000_000, f"streaming held {peak} bytes"
    assert sum(1 for _ in store.subscribers_of("members", status=None)) == total


def test_store_can_be_written_while_streaming(store: Store) -> None:
    store.upsert_many([NewSubscriber(f"p{i}@example.org") for i in range(30)], "members")
    for subscriber in store.subscribers_of("members", chunk=7):
        store.unsubscribe(subscriber.id, source="test")
    assert store.count("members", SubscriberStatus.SUBSCRIBED) == 0


def test_secret_is_made_once_and_kept(store_location: Path | str) -> None:
    path = store_location
    with Store.open(path) as store:
        first = store.get_secret("unsubscribe")
        assert len(first) >= 40
        assert store.get_secret("unsubscribe") == first
        assert store.get_secret("other") != first
    with Store.open(path) as store:
        assert store.get_secret("unsubscribe") == first
