"""Which provider events were already applied, so a redelivered event changes nothing twice.

SendGrid delivers each event at least once: it retries a batch for up to 24 hours after a
non-2xx answer or a timeout, a batch whose answer was lost arrives again whole, and users
report the same event arriving over 29 hours (sendgrid/docs issue 2933). Every event
carries a unique ``sg_event_id``; remembering those three days covers every retry while
the table stays small.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .db import StoreDatabase, format_time, utc_now

KEEP_FOR = timedelta(days=3)
"""Longer than SendGrid's 24 hours of retries, with room for a server that was down."""


class SeenEvents:
    """The ``webhook_events_seen`` table; call inside the transaction that applies events,
    so an event is marked seen exactly when its effects are committed."""

    def __init__(self, db: StoreDatabase) -> None:
        self.db = db

    def first_time(self, event_id: str) -> bool:
        """Record ``event_id``; False when it was already recorded."""
        inserted = self.db.execute(
            "INSERT OR IGNORE INTO webhook_events_seen (event_id, received_at) VALUES (?, ?)",
            (event_id, utc_now()),
        )
        return inserted == 1

    def prune(self, now: datetime | None = None) -> int:
        """Forget events older than ``KEEP_FOR``; returns how many."""
        cutoff = (now or datetime.now(UTC)) - KEEP_FOR
        return self.db.execute(
            "DELETE FROM webhook_events_seen WHERE received_at < ?",
            (format_time(cutoff),),
        )
