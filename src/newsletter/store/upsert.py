"""Many subscribers added or updated at once, with a few set-based statements per chunk.

A million-row import spent most of its store time binding four inserts per person, row by
row. Here a chunk of records is bound once, into a temporary staging table, and the
database does the rest with ``INSERT ... SELECT`` over the whole chunk: the new people
and their list memberships. Only people already in the store come back to Python,
because the rules for them (attributes merged, a name kept, consent never weakened) are
decided per person, and a fresh list has none of them.

The SQL is the portable kind (``ON CONFLICT``, no ``rowid``, no ``INSERT OR ...``) so that
another backend can run it with its own placeholders; only the staging table of addresses
seen is kept as SQLite allows, since PostgreSQL has a writer of its own
(``upsert_postgres.py``).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from itertools import islice
from types import MappingProxyType
from typing import ClassVar, NamedTuple

import orjson

from ..send_models import SubscriberStatus
from .db import SQLITE, Row, StoreDatabase, utc_now

INACTIVE = frozenset(
    {SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED}
)
SHOWN_SKIPPED = 100
STREAM_CHUNK = 20_000
"""Records written at a time: large enough that the set-based statements dominate, small
enough that a chunk's records (a few MB) are all a million-row import holds in memory."""

_NO_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})

_STAGING = (
    # seq numbers the stream, so a repeat is told apart from its first sighting even when
    # the records carry no line numbers (``Store.add``).
    "CREATE TEMP TABLE IF NOT EXISTS import_rows (seq INTEGER PRIMARY KEY, "
    "line INTEGER NOT NULL, email TEXT NOT NULL, email_key TEXT NOT NULL, "
    "name TEXT NOT NULL, attributes TEXT NOT NULL)",
    # Every address of the stream so far: a million of them would take 100 MB in memory.
    # SQLite keeps a table keyed by text as two B-trees (the rows, and an index of the
    # key) unless told to keep the rows in the key's own tree.
    "CREATE TEMP TABLE IF NOT EXISTS import_seen (email_key TEXT PRIMARY KEY, "
    "seq INTEGER NOT NULL, line INTEGER NOT NULL) WITHOUT ROWID",
)


def address_key(normalised: str) -> str:
    """What makes two addresses the same person: mailbox case is ignored by real servers."""
    return normalised.lower()


class NewSubscriber(NamedTuple):
    """One record to add or update; ``line`` lets a report point back at the input file.

    A tuple rather than a dataclass: an import makes a million of them, and a frozen
    dataclass takes three times as long to build.
    """

    email: str
    name: str = ""
    attributes: Mapping[str, str] = _NO_ATTRIBUTES
    line: int = 0


class StagedRow(NamedTuple):
    """A record as the staging table takes it: bound as it is, with no work per row left
    for the thread that writes. ``seq`` orders the stream (any increasing numbers),
    ``attributes`` is the JSON that ``dumps_attributes`` makes."""

    seq: int
    line: int
    email: str
    email_key: str
    name: str
    attributes: str


def staged(records: Iterable[NewSubscriber]) -> Iterator[StagedRow]:
    """Records as staged rows, numbered in the order they come."""
    for seq, record in enumerate(records):
        attributes = dumps_attributes(record.attributes) if record.attributes else "{}"
        email = record.email
        yield StagedRow(seq, record.line, email, address_key(email), record.name, attributes)


@dataclass
class UpsertCounts:
    added: int = 0
    """New to the list (a new address, or a known address joining this list)."""
    updated: int = 0
    """Already on the list; name or attributes changed."""
    unchanged: int = 0
    skipped_unsubscribed: int = 0
    """Known addresses that left (unsubscribed, bounced, complained) and were not forced back."""
    skipped_lines: list[int] = field(default_factory=list)
    """The first lines of those (at most ``SHOWN_SKIPPED``), in file order."""

    def add(self, other: UpsertCounts) -> None:
        self.added += other.added
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.skipped_unsubscribed += other.skipped_unsubscribed
        self.skipped_lines = sorted(self.skipped_lines + other.skipped_lines)[:SHOWN_SKIPPED]


OnDuplicate = Callable[[StagedRow, int], None]


def dumps_attributes(attributes: Mapping[str, str]) -> str:
    """Attributes as stored: JSON with sorted keys, so equal sets compare equal as text."""
    return orjson.dumps(dict(attributes), option=orjson.OPT_SORT_KEYS).decode()


def upsert_stream(
    db: StoreDatabase,
    records: Iterable[StagedRow],
    list_id: int | None,
    *,
    force: bool,
    source: str,
    on_duplicate: OnDuplicate,
    chunk: int = STREAM_CHUNK,
    binding: AbstractContextManager[object] | None = None,
) -> UpsertCounts:
    """Add or update every record, ``chunk`` at a time, all in one transaction.

    A record whose address came earlier in the stream is not written; ``on_duplicate``
    gets it with the line of the first one. Given attributes are merged into the stored
    ones and a non-empty name replaces the stored one; a known address that left keeps
    its status unless ``force``. Addresses must already be normalised. ``binding`` is held
    while a chunk's values are bound (``read_ahead``'s ``paused_by``).
    """
    counts = UpsertCounts()
    with db.transaction():
        anyone_before = bool(db.scalar("SELECT EXISTS (SELECT 1 FROM subscribers)"))
        first_lines = array("q") if db.dialect is SQLITE and not anyone_before else None
        writer = _writer_class(db)(
            db, list_id, force, source, on_duplicate, anyone_before, first_lines,
            binding or nullcontext(),
        )  # fmt: skip
        for statement in writer.staging:
            db.execute(statement)
        writer.empty_staging()
        iterator = iter(records)
        while part := list(islice(iterator, chunk)):
            counts.add(writer.write(part))
        writer.empty_staging()
    return counts


def _writer_class(db: StoreDatabase) -> type[_ChunkWriter]:
    """PostgreSQL's writer chains the chunk's inserts in one statement, which SQLite's
    SQL cannot say; the portable one is SQLite's."""
    if db.dialect.name == "postgresql":
        from .upsert_postgres import PostgresChunkWriter  # it builds on _ChunkWriter below

        return PostgresChunkWriter
    return _ChunkWriter


@dataclass(frozen=True)
class _ChunkWriter:
    """Writes one chunk of a stream: staged, its repeats set aside, then a few statements."""

    db: StoreDatabase
    list_id: int | None
    force: bool
    source: str
    on_duplicate: OnDuplicate
    anyone_before: bool
    """Whether the store held anyone as the stream began. Only they can be found there by
    a first sighting (a repeat is set aside before), so an empty store looks for none."""
    first_lines: array[int] | None
    """On SQLite, when the store was empty as the stream began: the line of each person
    the stream added, in the order of their ids. Everyone in the store is then someone
    the stream added, so the store's own index of addresses tells a repeat, and no table
    of the addresses seen is written beside it (a million rows spent 1.5 s of CPU there).
    SQLite numbers rows in the order they are inserted, which is the stream's."""
    binding: AbstractContextManager[object]
    """Held while a chunk's values are bound: a thread reading ahead waits meanwhile."""
    staging: ClassVar[tuple[str, ...]] = _STAGING

    def write(self, part: list[StagedRow]) -> UpsertCounts:
        """Write ``part``, the stream's next rows."""
        if self.first_lines is not None:
            self._load(part)
            now = utc_now()
            counts = UpsertCounts()  # nobody was there to update
            before, added = self._insert_new(now)  # a repeat's insert does nothing
            self._name_repeats(part, before, added, self.first_lines)
        else:
            self._stage(part)
            now = utc_now()
            counts = (
                self._update_existing(part, now, self._existing())
                if self.anyone_before
                else UpsertCounts()
            )
            _, added = self._insert_new(now)
        if self.list_id is not None:  # people outside any list were added to none
            counts.added += added
        return counts

    def empty_staging(self) -> None:
        """Before a stream, and after it: the staging tables outlive the transaction."""
        self.db.execute("DELETE FROM import_rows")
        self.db.execute("DELETE FROM import_seen")

    def _stage(self, part: list[StagedRow]) -> None:
        """Put ``part`` into the staging table, its repeats set aside."""
        self._load(part)
        first_sightings = self.db.execute(
            "INSERT INTO import_seen (email_key, seq, line) "
            "SELECT email_key, seq, line FROM import_rows WHERE true ORDER BY seq "
            "ON CONFLICT (email_key) DO NOTHING"
        )
        if first_sightings < len(part):  # rare: only then look for which rows repeat
            self._set_aside_repeats(part)

    def _load(self, part: list[StagedRow]) -> None:
        """``part`` into the staging table (emptied first), bound as the rows are."""
        with self.binding:
            self.db.load_rows("import_rows", StagedRow._fields, part, replace=True)

    def _name_repeats(
        self, part: list[StagedRow], before: int, added: int, first_lines: array[int]
    ) -> None:
        """Name the rows of ``part`` that the insert after ``before`` left out as repeats of
        an earlier row, and keep the lines of the people it added."""
        if added == len(part):  # nearly always: no repeat
            first_lines.extend(row.line for row in part)
            return
        first_id = before - len(first_lines) + 1
        by_seq = _by_seq(part)
        added_now: dict[int, int] = {}  # id -> line, for the people this chunk added
        for seq, sid in self.db.all(
            "SELECT r.seq, s.id FROM import_rows r "
            "JOIN subscribers s ON s.email_key = r.email_key ORDER BY r.seq"
        ):
            if sid <= before:
                self.on_duplicate(by_seq[seq], first_lines[sid - first_id])
            elif sid in added_now:
                self.on_duplicate(by_seq[seq], added_now[sid])
            else:
                added_now[sid] = by_seq[seq].line
        assert len(added_now) == added
        first_lines.extend(added_now[sid] for sid in sorted(added_now))

    def _set_aside_repeats(self, part: list[StagedRow]) -> None:
        """Drop the staged rows whose address came earlier in the stream, naming each."""
        repeats = self.db.all(
            "SELECT r.seq, s.line FROM import_rows r JOIN import_seen s "
            "ON s.email_key = r.email_key WHERE s.seq <> r.seq ORDER BY r.seq"
        )
        self.db.executemany("DELETE FROM import_rows WHERE seq = ?", [(seq,) for seq, _ in repeats])
        by_seq = _by_seq(part)
        for seq, first_line in repeats:
            self.on_duplicate(by_seq[seq], first_line)

    def _insert_new(self, now: str) -> tuple[int, int]:
        """The staged addresses not yet in the store, on the list; returns the highest id
        before them, and how many. Being added is their rows' own event (``Store.events``).

        The new rows are told by their ids, above the highest before the insert: the
        transaction holds the store's write lock, so no other writer adds one meanwhile.
        Their number is the ``LIMIT``: PostgreSQL has no statistics for the rows the
        transaction wrote, guesses a third of the table is above ``id``, and without the
        limit read the whole table for each chunk instead of the index.
        """
        db = self.db
        before = db.scalar("SELECT COALESCE(MAX(id), 0) FROM subscribers")
        added = db.execute(
            "INSERT INTO subscribers (email, email_key, name, attributes, status, source, "
            "created_at, updated_at) "
            "SELECT email, email_key, name, attributes, 'subscribed', ?, ?, ? "
            "FROM import_rows WHERE true ORDER BY seq ON CONFLICT (email_key) DO NOTHING",
            (self.source, now, now),
        )
        if added and self.list_id is not None:
            db.execute(
                "INSERT INTO memberships (list_id, subscriber_id, created_at) "
                "SELECT ?, id, ? FROM subscribers WHERE id > ? ORDER BY id LIMIT ?",
                (self.list_id, now, before, added),
            )
        return before, added

    def _update_existing(self, part: list[StagedRow], now: str, rows: list[Row]) -> UpsertCounts:
        """Apply the staged rows of people already in the store (``_existing``), as each
        one's rules say."""
        list_id, source = self.list_id, self.source
        counts = UpsertCounts()
        updates: list[tuple[str, str, str, int]] = []
        rejoins: list[tuple[int, str, str]] = []
        joins: list[tuple[int, int, str]] = []
        relists: list[int] = []
        by_seq = _by_seq(part) if rows else {}
        for seq, sid, name, attrs_json, stored_status, membership in rows:
            record = by_seq[seq]
            status = SubscriberStatus(stored_status)
            # Someone who left this list is kept off it like someone who left everything.
            left_list = membership == SubscriberStatus.UNSUBSCRIBED
            if (status in INACTIVE or left_list) and not self.force:
                counts.skipped_unsubscribed += 1
                if len(counts.skipped_lines) < SHOWN_SKIPPED:
                    counts.skipped_lines.append(record.line)
                continue
            attrs = orjson.loads(attrs_json) if attrs_json else {}
            merged = {**attrs, **orjson.loads(record.attributes)}
            new_name = record.name or name
            changed = new_name != name or merged != attrs or status in INACTIVE
            if status in INACTIVE:
                rejoins.append((sid, source, now))
            if changed:
                updates.append((new_name, dumps_attributes(merged), now, sid))
            if list_id is None:
                continue
            if membership is None:
                joins.append((list_id, sid, now))
                counts.added += 1
            elif changed or left_list:
                counts.updated += 1
                if left_list:
                    relists.append(sid)
            else:
                counts.unchanged += 1
        self.db.executemany(
            "UPDATE subscribers SET name = ?, attributes = ?, status = 'subscribed', "
            "updated_at = ? WHERE id = ?",
            updates,
        )
        self.db.executemany(
            "INSERT INTO status_events (subscriber_id, status, source, detail, at) "
            "VALUES (?, 'subscribed', ?, 'added again with force', ?)",
            rejoins,
        )
        self.db.executemany(
            "INSERT INTO memberships (list_id, subscriber_id, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (list_id, subscriber_id) DO NOTHING",
            joins,
        )
        if relists:
            self._relist(relists, {sid for sid, _, _ in rejoins}, now)
        return counts

    def _existing(self) -> list[Row]:
        """The staged rows of people already in the store: seq, their id, name,
        attributes and status, and their membership's status on the list (or None)."""
        return self.db.all(
            "SELECT r.seq, s.id, s.name, s.attributes, s.status, "
            "(SELECT m.status FROM memberships m WHERE m.subscriber_id = s.id "
            "AND m.list_id = ?) FROM import_rows r "
            "JOIN subscribers s ON s.email_key = r.email_key ORDER BY r.seq",
            (self._list_key(),),
        )

    def _list_key(self) -> int:
        """The list's id for a lookup of memberships; no list matches none of them."""
        return self.list_id if self.list_id is not None else -1

    def _relist(self, relists: list[int], rejoined: set[int], now: str) -> None:
        """Forced back onto a list they had left: the membership is subscribed again, with
        its event (someone back from leaving everything has that event already)."""
        self.db.executemany(
            "UPDATE memberships SET status = 'subscribed', updated_at = ? "
            "WHERE list_id = ? AND subscriber_id = ?",
            [(now, self.list_id, sid) for sid in relists],
        )
        self.db.executemany(
            "INSERT INTO status_events (subscriber_id, status, source, detail, at, list_id) "
            "VALUES (?, 'subscribed', ?, 'added again with force', ?, ?)",
            [(sid, self.source, now, self.list_id) for sid in relists if sid not in rejoined],
        )


def _by_seq(part: list[StagedRow]) -> dict[int, StagedRow]:
    """A chunk's rows by their number in the stream, which need not count from one by one."""
    return {row.seq: row for row in part}
