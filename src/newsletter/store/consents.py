"""The record of consent: each sign-up request, per list, and when it was confirmed."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from .db import utc_now
from .subscribers import Store


@dataclass(frozen=True)
class Consent:
    """One list of one sign-up request, as exported with the subscriber."""

    list_name: str
    source: str
    """Where the request came from: form, embed, json."""
    ip_hash: str
    """sha256 of the requesting IP address with the store's secret salt; never the address."""
    requested_at: str
    confirmed_at: str | None
    request: str


class Consents:
    """Reads and writes ``consents`` in the store's transactions."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    def request(
        self, subscriber_id: int, list_ids: Sequence[int], source: str, ip_hash: str
    ) -> str:
        """Record a sign-up request for these lists; its id, which the confirm link names."""
        request = secrets.token_hex(8)
        now = utc_now()
        self.db.executemany(
            "INSERT INTO consents (subscriber_id, list_id, request, source, ip_hash, "
            "requested_at) VALUES (?, ?, ?, ?, ?, ?)",
            [(subscriber_id, list_id, request, source, ip_hash, now) for list_id in list_ids],
        )
        return request

    def of_request(self, request: str) -> list[tuple[int, str, str | None]]:
        """(subscriber id, list name, confirmed at) for each list of a request."""
        rows = self.db.all(
            "SELECT c.subscriber_id, l.name, c.confirmed_at FROM consents c "
            "JOIN lists l ON l.id = c.list_id WHERE c.request = ? ORDER BY l.name",
            (request,),
        )
        return [(int(row[0]), str(row[1]), row[2]) for row in rows]

    def confirm(self, request: str, list_names: Sequence[str]) -> str:
        """Mark these lists of the request confirmed, now; the time recorded."""
        now = utc_now()
        for name in list_names:
            self.db.execute(
                "UPDATE consents SET confirmed_at = ? WHERE request = ? AND confirmed_at IS NULL "
                "AND list_id = (SELECT id FROM lists WHERE name = ?)",
                (now, request, name),
            )
        return now

    def of_subscriber(self, subscriber_id: int) -> list[Consent]:
        rows = self.db.all(
            "SELECT l.name, c.source, c.ip_hash, c.requested_at, c.confirmed_at, c.request "
            "FROM consents c JOIN lists l ON l.id = c.list_id WHERE c.subscriber_id = ? "
            "ORDER BY c.id",
            (subscriber_id,),
        )
        return [Consent(*row) for row in rows]
