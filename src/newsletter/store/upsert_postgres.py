"""An import's chunk on PostgreSQL: the new people, their events and memberships in one
statement, and people already in the store looked up by index, only when there are any.

The portable writer (``upsert.py``) finds the chunk's people already in the store first,
by a join that PostgreSQL, with no statistics on a temporary table, ran as a hash over the
whole subscribers table for every chunk; then it read the new people's ids back from the
table twice. Here the chunk's rows are inserted first, and the insert's own unique-index
check (``ON CONFLICT DO NOTHING``) tells new from known: its ``RETURNING`` feeds the status
events and memberships in the same statement, and only when fewer rows went in than were
staged are the others looked up, each by the address index. The rules for people already
in the store are the portable writer's.
"""

from __future__ import annotations

from .db import Row, utc_now
from .upsert import _STAGING, NewSubscriber, UpsertCounts, _ChunkWriter

_STAGED_ROWS = (
    # No key: COPY writes the rows in seq order into a table truncated before, and an
    # index on seq would cost an insert per row to serve one ORDER BY of the chunk.
    "CREATE TEMP TABLE IF NOT EXISTS import_rows (seq INTEGER NOT NULL, "
    "line INTEGER NOT NULL, email TEXT NOT NULL, email_key TEXT NOT NULL, "
    "name TEXT NOT NULL, attributes TEXT NOT NULL)"
)

_NEW_PEOPLE = (
    "WITH new AS ("
    "INSERT INTO subscribers (email, email_key, name, attributes, status, source, "
    "created_at, updated_at) "
    "SELECT email, email_key, name, attributes, 'subscribed', ?, ?, ? "
    "FROM import_rows r WHERE NOT EXISTS (SELECT 1 FROM subscribers s "
    "WHERE s.email_key = r.email_key OFFSET 0) ORDER BY seq RETURNING id), "
    "events AS (INSERT INTO status_events (subscriber_id, status, source, detail, at) "
    "SELECT id, 'subscribed', ?, 'added', ? FROM new){joined} "
    "SELECT count(*) FROM new"
)
_JOINED = (
    ", joined AS (INSERT INTO memberships (list_id, subscriber_id, created_at) "
    "SELECT ?, id, ? FROM new)"
)


class PostgresChunkWriter(_ChunkWriter):
    """``_ChunkWriter`` with PostgreSQL's data-modifying ``WITH`` and ``LATERAL``."""

    staging = (_STAGED_ROWS, *_STAGING[1:])

    def write(self, part: list[NewSubscriber], start: int) -> UpsertCounts:
        staged = self._stage(part, start)
        now = utc_now()
        # Ids only grow and the transaction holds the store's write lock, so the people
        # this chunk adds are exactly those numbered above it.
        before = int(self.db.scalar("SELECT COALESCE(MAX(id), 0) FROM subscribers"))
        added = self._insert_new(now)
        counts = UpsertCounts()
        if added < staged:
            counts = self._update_existing(part, start, now, self._existing_before(before))
        if self.list_id is not None:  # people outside any list were added to none
            counts.added += added
        return counts

    def _set_aside_repeats(self, part: list[NewSubscriber], start: int) -> None:
        """The repeats deleted in one statement, since the staged rows have no index to
        find each one by."""
        repeats = self.db.all(
            "DELETE FROM import_rows r USING import_seen s "
            "WHERE s.email_key = r.email_key AND s.seq <> r.seq RETURNING r.seq, s.line"
        )
        for seq, first_line in sorted(repeats):
            self.on_duplicate(part[seq - start], first_line)

    def _insert_new(self, now: str) -> int:
        params: tuple[str | int, ...] = (self.source, now, now, self.source, now)
        if self.list_id is None:
            return int(self.db.scalar(_NEW_PEOPLE.format(joined=""), params))
        params += (self.list_id, now)
        return int(self.db.scalar(_NEW_PEOPLE.format(joined=_JOINED), params))

    def _existing_before(self, before: int) -> list[Row]:
        """``_existing`` among the people numbered up to ``before``, each address looked
        up by the unique index: the ``OFFSET 0`` keeps the planner from turning the
        lookups back into a hash over the whole table."""
        return self.db.all(
            "SELECT r.seq, s.id, s.name, s.attributes, s.status, "
            "(SELECT m.status FROM memberships m WHERE m.subscriber_id = s.id "
            "AND m.list_id = ?) FROM import_rows r "
            "JOIN LATERAL (SELECT id, name, attributes, status FROM subscribers "
            "WHERE email_key = r.email_key AND id <= ? OFFSET 0) s ON true ORDER BY r.seq",
            (self.list_id if self.list_id is not None else -1, before),
        )
