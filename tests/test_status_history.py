"""A person's history: the 'added' event is their own row; status_events holds the changes.

Every way in (import, add, sign-up) wrote an 'added' event that said exactly what the
subscriber's row says (subscribed, its source, its created_at): a million-row import wrote
a million of them. History reads that first event from the row, and stores written before
have their stored copies folded into it, so the history a person sees is the same.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from newsletter.send_models import SubscriberStatus
from newsletter.store import StatusEvent, Store
from newsletter.store.db import MIGRATIONS, Database
from newsletter.store.importer import import_csv
from newsletter.store.upsert import NewSubscriber

SUBSCRIBED = SubscriberStatus.SUBSCRIBED


def _created(store: Store, email: str) -> tuple[str, str]:
    row = store.db.one("SELECT source, created_at FROM subscribers WHERE email = ?", (email,))
    assert row is not None
    return str(row[0]), str(row[1])


def test_every_way_in_gives_one_added_event_from_the_row_and_stores_none(
    store_location: Path | str, tmp_path: Path
) -> None:
    store = Store.open(store_location)
    try:
        store.ensure_list("members")
        csv = tmp_path / "people.csv"
        csv.write_text("email,name\nann@example.org,Ann\nbob@example.org,Bob\n", "utf-8")
        import_csv(store, csv, "members", source="import")
        store.add("cy@example.org", "Cy", "members", source="cli")
        store.upsert_many([NewSubscriber("di@example.org")], None, source="signup (json)")
        with store.db.transaction():
            store.add_one("ed@example.org", "Ed", "signup (form)")

        for email in ("ann@example.org", "bob@example.org", "cy@example.org",
                      "di@example.org", "ed@example.org"):  # fmt: skip
            source, created = _created(store, email)
            assert store.events(email) == [StatusEvent(SUBSCRIBED, source, "added", created)]
        assert _created(store, "ann@example.org")[0] == "import"
        assert _created(store, "ed@example.org")[0] == "signup (form)"
        assert store.db.scalar("SELECT COUNT(*) FROM status_events") == 0

        store.unsubscribe("ann@example.org", source="link", detail="one-click")
        history = store.events("ann@example.org")
        assert [(e.status, e.source, e.detail) for e in history] == [
            (SUBSCRIBED, "import", "added"),
            (SubscriberStatus.UNSUBSCRIBED, "link", "one-click"),
        ]
        assert store.db.scalar("SELECT COUNT(*) FROM status_events") == 1
    finally:
        store.close()


def _version_seven_store(path: Path) -> None:
    """A store as version 7 left it: each person's 'added' event stored beside their row."""
    db = Database(path)
    db.migrate(MIGRATIONS[:7])
    db.close()
    conn = sqlite3.connect(path)
    at, later = "2026-11-01T00:00:00.000000Z", "2026-11-20T00:00:00.000000Z"
    with conn:
        conn.execute("INSERT INTO lists (name, created_at) VALUES ('members', ?)", (at,))
        for n, source in ((1, "import"), (2, "cli"), (3, "import")):
            conn.execute(
                "INSERT INTO subscribers (email, email_key, source, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (f"p{n}@example.org", f"p{n}@example.org", source, at, at),
            )
        events = [
            (1, "subscribed", "import", "added", at, None),  # the row says the same: folded
            (2, "subscribed", "cli", "added", at, None),  # folded too
            (2, "unsubscribed", "link", "one-click", later, None),  # a change: kept
            # Not what the row says (another source): kept, and read as it is.
            (3, "subscribed", "signup-form", "added", at, None),
        ]
        conn.executemany(
            "INSERT INTO status_events (subscriber_id, status, source, detail, at, list_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            events,
        )
    conn.close()


def test_stored_added_events_are_folded_into_the_row_and_history_reads_the_same(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    _version_seven_store(path)
    at, later = "2026-11-01T00:00:00.000000Z", "2026-11-20T00:00:00.000000Z"
    with Store.open(path) as store:
        assert store.db.schema_version() == len(MIGRATIONS)
        assert store.events("p1@example.org") == [StatusEvent(SUBSCRIBED, "import", "added", at)]
        assert store.events("p2@example.org") == [
            StatusEvent(SUBSCRIBED, "cli", "added", at),
            StatusEvent(SubscriberStatus.UNSUBSCRIBED, "link", "one-click", later),
        ]
        assert store.events("p3@example.org") == [
            StatusEvent(SUBSCRIBED, "signup-form", "added", at)
        ]
        stored = store.db.all("SELECT subscriber_id, detail FROM status_events ORDER BY id")
        assert [tuple(row) for row in stored] == [(2, "one-click"), (3, "added")]
