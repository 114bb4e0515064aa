"""The record of webhook events already applied: one entry per event id, forgotten by age."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from newsletter.store import Store
from newsletter.store.seen_events import KEEP_FOR, SeenEvents


def test_an_event_id_is_new_once(store_location: Path | str) -> None:
    with Store.open(store_location) as store:
        seen = SeenEvents(store.db)

        assert [seen.first_time(i) for i in ("a", "b", "a", "b", "c")] == [
            True, True, False, False, True
        ]  # fmt: skip


def test_events_are_forgotten_once_older_than_the_retry_window(
    store_location: Path | str,
) -> None:
    with Store.open(store_location) as store:
        seen = SeenEvents(store.db)
        seen.first_time("old")
        now = datetime.now(UTC)

        assert seen.prune(now) == 0
        assert seen.prune(now + KEEP_FOR / 2) == 0
        assert seen.first_time("old") is False
        assert seen.prune(now + KEEP_FOR + KEEP_FOR / 100) == 1
        assert seen.first_time("old") is True


def test_the_table_comes_with_migration_four(store_location: Path | str) -> None:
    with Store.open(store_location) as store:
        names = dict(store.db.all("SELECT version, name FROM schema_migrations"))

    assert names[4] == "webhook events already applied, by the provider's event id"
