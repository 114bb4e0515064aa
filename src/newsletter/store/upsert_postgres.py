"""An import's chunk on PostgreSQL: the new people, their events and memberships in one
statement, and people already in the store looked up by index, only when there are any.

The portable writer (``upsert.py``) finds the chunk's people already in the store first,
by a join that PostgreSQL, with no statistics on a temporary table, ran as a hash over the
whole subscribers table for every chunk; then it read the new people's ids back from the
table twice. Here the chunk's new rows are inserted first, each told new by one probe of
the address index, and the insert's ``RETURNING`` feeds the memberships in the same
statement. Only when fewer rows went in than were staged are the others looked up, each
by the address index, and the rules for people already in the store are the portable
writer's.

Repeats need no table of every address seen: every earlier row of the stream is in the
store by now (added, or found there), so a row whose address is not in the store is a
first sighting. A row whose address is repeats an earlier one if that person's first row
is in ``import_firsts``, kept by subscriber id (growing ids, so its index only appends):
its line is the one a repeat names.
"""

from __future__ import annotations

from .db import utc_now
from .upsert import StagedRow, UpsertCounts, _by_seq, _ChunkWriter

_STAGING = (
    # No key: COPY writes the rows in seq order into a table truncated before, and an
    # index on seq would cost an insert per row to serve one ORDER BY of the chunk.
    "CREATE TEMP TABLE IF NOT EXISTS import_rows (seq INTEGER NOT NULL, "
    "line INTEGER NOT NULL, email TEXT NOT NULL, email_key TEXT NOT NULL, "
    "name TEXT NOT NULL, attributes TEXT NOT NULL)",
    "CREATE TEMP TABLE IF NOT EXISTS import_firsts (id BIGINT PRIMARY KEY, line INTEGER NOT NULL)",
)
_REPEATS_IN_CHUNK = (
    "WITH firsts AS (SELECT email_key, min(seq) AS seq FROM import_rows "
    "GROUP BY email_key HAVING count(*) > 1) "
    "DELETE FROM import_rows r USING firsts f, import_rows o "
    "WHERE r.email_key = f.email_key AND r.seq > f.seq AND o.seq = f.seq "
    "RETURNING r.seq, o.seq, o.line"
)
_NEW_PEOPLE = (
    "WITH new AS ("
    "INSERT INTO subscribers (email, email_key, name, attributes, status, source, "
    "created_at, updated_at) "
    "SELECT email, email_key, name, attributes, 'subscribed', ?, ?, ? "
    "FROM import_rows r WHERE NOT EXISTS (SELECT 1 FROM subscribers s "
    "WHERE s.email_key = r.email_key OFFSET 0) ORDER BY seq RETURNING id, email_key), "
    "firsts AS (INSERT INTO import_firsts (id, line) "
    "SELECT n.id, r.line FROM new n JOIN import_rows r ON r.email_key = n.email_key)"
    "{joined} "
    "SELECT count(*) FROM new"
)
_JOINED = (
    ", joined AS (INSERT INTO memberships (list_id, subscriber_id, created_at) "
    "SELECT ?, id, ? FROM new)"
)
_KNOWN = (
    # OFFSET 0 keeps the planner from turning the lookups back into a hash over the
    # whole subscribers table.
    "SELECT r.seq, s.id, s.name, s.attributes, s.status, "
    "(SELECT m.status FROM memberships m WHERE m.subscriber_id = s.id AND m.list_id = ?), "
    "r.line, f.line FROM import_rows r "
    "JOIN LATERAL (SELECT id, name, attributes, status FROM subscribers "
    "WHERE email_key = r.email_key AND id <= ? OFFSET 0) s ON true "
    "LEFT JOIN import_firsts f ON f.id = s.id ORDER BY r.seq"
)


class PostgresChunkWriter(_ChunkWriter):
    """``_ChunkWriter`` with PostgreSQL's data-modifying ``WITH`` and ``LATERAL``."""

    staging = _STAGING

    def empty_staging(self) -> None:
        """TRUNCATE: a DELETE would leave a million dead rows for nothing to vacuum."""
        self.db.execute("TRUNCATE import_rows, import_firsts")

    def write(self, part: list[StagedRow]) -> UpsertCounts:
        self._load(part)
        in_chunk = self.db.all(_REPEATS_IN_CHUNK)
        staged = len(part) - len(in_chunk)
        now = utc_now()
        before, added = self._insert_new(now)
        counts = UpsertCounts()
        earlier: dict[int, int] = {}  # seq -> first line, for rows repeating earlier chunks
        if added < staged:
            known = self.db.all(_KNOWN, (self._list_key(), before))
            first_sightings = [row[:6] for row in known if row[7] is None]
            earlier = {row[0]: row[7] for row in known if row[7] is not None}
            self.db.load_rows(
                "import_firsts",
                ("id", "line"),
                [(row[1], row[6]) for row in known if row[7] is None],
            )
            counts = self._update_existing(part, now, first_sightings)
        # A repeat within the chunk names the stream's first line, which is an earlier
        # chunk's when the chunk's own first row of the address repeats one.
        repeats = [*earlier.items()]
        repeats += [(seq, earlier.get(first, int(line))) for seq, first, line in in_chunk]
        by_seq = _by_seq(part) if repeats else {}
        for seq, first_line in sorted(repeats):
            self.on_duplicate(by_seq[seq], first_line)
        if self.list_id is not None:  # people outside any list were added to none
            counts.added += added
        return counts

    def _insert_new(self, now: str) -> tuple[int, int]:
        # Ids only grow and the transaction holds the store's write lock, so the people
        # this chunk adds are exactly those numbered above ``before``.
        before = int(self.db.scalar("SELECT COALESCE(MAX(id), 0) FROM subscribers"))
        params: tuple[str | int, ...] = (self.source, now, now)
        if self.list_id is None:
            statement = _NEW_PEOPLE.format(joined="")
        else:
            statement = _NEW_PEOPLE.format(joined=_JOINED)
            params += (self.list_id, now)
        return before, int(self.db.scalar(statement, params))
