"""A store written before the ledger was clustered by subscriber upgrades with its sends intact,
and a SendGrid batch gives the same request through its fast and its exact path."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from newsletter.store import Ledger, Store
from newsletter.store.db import MIGRATIONS, Database
from newsletter.store.subscribers import NewSubscriber

ISSUE = "001-2026-11-24"


def _version_one_store(path: Path) -> None:
    """A store as the first schema left it: one batch sent, one in flight, the rest queued."""
    db = Database(path)
    db.migrate(MIGRATIONS[:1])
    db.close()
    store = Store(Database(path))
    store.ensure_list("members")
    store.upsert_many([NewSubscriber(f"p{i}@example.org") for i in range(1, 7)], "members")
    store.close()
    conn = sqlite3.connect(path)
    rows = [
        (1, "sent", "a" * 32, "msg-1", None, "2026-11-24T10:00:00.000000Z"),
        (2, "sent", "a" * 32, "msg-1", None, "2026-11-24T10:00:00.000000Z"),
        (3, "failed", "a" * 32, None, "550 no such user", "2026-11-24T10:00:00.000000Z"),
        (4, "in_flight", "b" * 32, None, None, "2026-11-24T10:05:00.000000Z"),
        (5, "queued", None, None, None, "2026-11-24T09:00:00.000000Z"),
        (6, "queued", None, None, None, "2026-11-24T09:00:00.000000Z"),
    ]
    with conn:
        conn.executemany(
            "INSERT INTO send_ledger (issue_id, subscriber_id, list_name, state, batch_id, "
            "provider_id, error, updated_at) VALUES (?, ?, 'members', ?, ?, ?, ?, ?)",
            [(ISSUE, *row) for row in rows],
        )
    conn.close()


def test_a_version_one_ledger_upgrades_with_every_state_and_batch(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    _version_one_store(path)
    with Store.open(path) as store:
        assert store.db.schema_version() == 2
        ledger = Ledger(store, owner="here:1")
        assert ledger.counts(ISSUE) == {
            "queued": 2, "in_flight": 1, "sent": 2, "failed": 1, "skipped": 0,
        }  # fmt: skip
        entries = {e.subscriber_id: e for e in ledger.entries(ISSUE)}
        assert [entries[i].batch_id for i in range(1, 7)] == ["a" * 32] * 3 + ["b" * 32] + [
            None,
            None,
        ]
        assert entries[1].provider_id == "msg-1"
        assert entries[3].error == "550 no such user"
        assert entries[4].updated_at == "2026-11-24T10:05:00.000000Z"
        assert [s.email for page in ledger.pending(ISSUE) for s in page] == [
            "p5@example.org",
            "p6@example.org",
        ]
        # New batches are numbered after the ones carried over, and recorded on the batch.
        page = next(ledger.pending_pages(ISSUE))
        claimed = ledger.claim_batch(ISSUE, page)
        assert claimed.batch_no == 3 and claimed.subscriber_ids == [5, 6]
        assert ledger.settle_batch(claimed, "msg-3") == 2
        sent = {e.subscriber_id: e for e in ledger.entries(ISSUE, "sent")}
        assert sent[5].provider_id == "msg-3" and sent[5].batch_id == "3"
        assert sent[5].updated_at  # the batch's time
    index = sqlite3.connect(path).execute(
        "SELECT name FROM sqlite_master WHERE tbl_name = 'send_ledger' AND type = 'index'"
    )
    assert index.fetchall() == []


def test_a_claimed_range_leaves_out_who_left_and_a_deleted_row(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store.db") as store:
        store.ensure_list("members")
        store.upsert_many([NewSubscriber(f"p{i}@example.org") for i in range(1, 7)], "members")
        ledger = Ledger(store, owner="here:1")
        ledger.queue_list(ISSUE, "members")
        store.unsubscribe("p3@example.org", source="link")
        page = next(ledger.pending_pages(ISSUE))
        assert [row[0] for row in page.rows] == [1, 2, 4, 5, 6] and page.held == [3]
        store.db.execute("DELETE FROM subscribers WHERE id = 5")  # after the page was read
        claimed = ledger.claim_batch(ISSUE, page)
        assert claimed.subscriber_ids == [1, 2, 4, 6]
        ledger.settle_batch(claimed, "msg-1", {4: "refused"})
        assert ledger.counts(ISSUE) == {
            "queued": 1, "in_flight": 0, "sent": 3, "failed": 1, "skipped": 0,
        }  # fmt: skip


def test_sendgrid_fast_and_exact_paths_build_the_same_personalizations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import orjson

    from newsletter.config import SendgridSettings
    from newsletter.providers import SendgridProvider
    from servers.samples import recipient, sample_issue

    monkeypatch.setenv("TEST_SENDGRID_KEY", "SG.k")
    people = [
        recipient(1, "ann@example.com", "Ann Smith"),
        recipient(2, "bo@example.com"),
        recipient(3, "cy@example.com", "Cy & <Co>"),
        recipient(4, "di@example.com", 'Di "Q" Jones', first_name="Di\\"),
        recipient(5, "ed@example.com", "Ed\nBcc: x@evil.example"),
        recipient(6, "ANN@example.com", "Ann again"),
    ]
    settings = SendgridSettings(api_key="${TEST_SENDGRID_KEY}", host="http://127.0.0.1:9")
    provider = SendgridProvider(settings)
    issue = sample_issue()
    rows = [(r.subscriber_id, r.email, r.name, r.merge_values, r.unsubscribe_url) for r in people]
    batch = provider.prepare_rows(issue, rows)
    fast = provider.prepare_rows(issue, rows[:3])  # no text JSON must escape: the template
    prepared = provider._prepare(issue)
    checked, rejected = provider.validate(prepared, people)
    exact = provider.build_payload(prepared, checked)

    def personalizations(body: bytes) -> list[dict]:
        return orjson.loads(body)["personalizations"]

    assert personalizations(batch.payload.body) == personalizations(exact.body)
    assert personalizations(fast.payload.body) == personalizations(exact.body)[:3]
    assert orjson.loads(batch.payload.body).keys() == orjson.loads(exact.body).keys()
    assert batch.rejected == {r.subscriber_id: r.error for r in rejected}
    assert "line break" in batch.rejected[5] and "appears twice" in batch.rejected[6]
