"""Stores written by earlier versions upgrade with their sends intact and their states true."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from newsletter.send_models import Delivery, Outcome
from newsletter.store import Ledger, Store
from newsletter.store.db import MIGRATIONS, Database

ISSUE = "001-2026-11-24"


def _version_one_store(path: Path) -> None:
    """A store as the first schema left it: one batch sent, one in flight, the rest queued."""
    db = Database(path)
    db.migrate(MIGRATIONS[:1])
    db.close()
    conn = sqlite3.connect(path)
    with conn:  # as that version wrote them: today's code expects today's schema
        at = "2026-11-01T00:00:00.000000Z"
        conn.execute("INSERT INTO lists (name, created_at) VALUES ('members', ?)", (at,))
        for i in range(1, 8):
            conn.execute(
                "INSERT INTO subscribers (email, email_key, created_at, updated_at) "
                "VALUES (?, ?, ?, ?)",
                (f"p{i}@example.org", f"p{i}@example.org", at, at),
            )
        conn.execute(
            "INSERT INTO memberships (list_id, subscriber_id, created_at) "
            "SELECT 1, id, created_at FROM subscribers"
        )
    rows = [
        (1, "sent", "a" * 32, "msg-1", None, "2026-11-24T10:00:00.000000Z"),
        (2, "sent", "a" * 32, "msg-1", None, "2026-11-24T10:00:00.000000Z"),
        (3, "failed", "a" * 32, None, "550 no such user", "2026-11-24T10:00:00.000000Z"),
        (4, "in_flight", "b" * 32, None, None, "2026-11-24T10:05:00.000000Z"),
        (5, "queued", None, None, None, "2026-11-24T09:00:00.000000Z"),
        (6, "queued", None, None, None, "2026-11-24T09:00:00.000000Z"),
        (7, "skipped", None, None, None, "2026-11-24T09:30:00.000000Z"),
    ]
    with conn:
        conn.executemany(
            "INSERT INTO send_ledger (issue_id, subscriber_id, list_name, state, batch_id, "
            "provider_id, error, updated_at) VALUES (?, ?, 'members', ?, ?, ?, ?, ?)",
            [(ISSUE, *row) for row in rows],
        )
        conn.execute("INSERT INTO send_ledger (issue_id, subscriber_id, list_name, state, "
                     "updated_at) VALUES ('000-2026-11-10', 1, 'members', 'sent', "
                     "'2026-11-10T08:00:00.000000Z')")  # fmt: skip
    conn.close()


def test_versions_one_and_two_upgrade_with_every_state(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    _version_one_store(path)
    with Store.open(path) as store:
        assert store.db.schema_version() == len(MIGRATIONS)
        ledger = Ledger(store, owner="here:1")
        # In flight after a stop was an unknown outcome; failed was a refusal.
        assert ledger.counts(ISSUE) == {
            "queued": 2, "sending": 0, "retry": 0, "sent": 2, "unconfirmed": 1,
            "refused": 1, "skipped": 1,
        }  # fmt: skip
        entries = {e.subscriber_id: e for e in ledger.entries(ISSUE)}
        assert entries[1].provider_id == "msg-1" and entries[1].list_name == "members"
        assert entries[3].error == "550 no such user"
        assert entries[4].state == "unconfirmed"
        send = ledger.find_send(ISSUE)
        assert send is not None and send.lists == ("members",)
        assert send.completed_at is None  # two were still queued
        older = ledger.find_send("000-2026-11-10")
        assert older is not None and older.completed_at is not None
        assert ledger.issues() == ["000-2026-11-10", ISSUE]

        # The queued ones are claimed next, in a batch numbered after the ones carried over.
        claim = ledger.claim_queued(send.id, limit=10)
        assert claim is not None and claim.subscriber_ids == [5, 6]
        assert claim.batch_no == 3
        ledger.mark_sending(send.id, claim.batch_no)
        ledger.settle(
            claim, Delivery.of_all([5, 6], Outcome.ACCEPTED, provider_id="m3"), retry_in=0
        )
        assert ledger.counts(ISSUE)["sent"] == 4
        # Nobody is claimed twice: the new-member claim skips everyone with a row.
        assert ledger.claim_new(send.id, store.list_id("members"), 0, 10) is None
        assert ledger.requeue_unconfirmed(send.id) == 1
        assert ledger.counts(ISSUE)["queued"] == 1


def test_a_newer_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'x', 'now')"
        )
    conn.close()
    import pytest

    from newsletter.errors import StoreError

    with pytest.raises(StoreError, match="schema version 99, newer than"):
        Store.open(path)
