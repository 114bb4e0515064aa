"""The one place that talks to the database driver: connection, transactions, migrations.

Everything above this module speaks plain SQL with ``?`` placeholders and ISO-8601 UTC
text timestamps, so a PostgreSQL backend (``postgres.py``) only has to supply another
``StoreDatabase`` with the same few methods (and its own spelling of an identity column,
see ``Dialect``). ``open_database`` picks the backend from the store's location.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..store_url import is_store_url

Row = tuple[Any, ...]
BUSY_TIMEOUT_MS = 15_000
ROWS_PER_INSERT = 100
"""Rows a SQLite ``load_rows`` binds to one statement: for rows of six columns, 50, 100 and
250 took about as little CPU, 1,000 more; far below SQLite's limit of bound values."""


def process_name() -> str:
    """This process as send locks and claims name it: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _create_private(path: Path) -> None:
    """A new store is readable by its owner alone (0600): it holds every subscriber's
    address and, when NEWSLETTER_SECRET is unset, the secret that signs unsubscribe links.
    SQLite gives its -wal and -shm files the database file's mode. An existing file keeps
    its mode (``newsletter validate`` warns when others can read it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def utc_now() -> str:
    """Timestamps are text so they read the same in SQLite, PostgreSQL and a CSV export."""
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    """A UTC moment as stored: fixed width, so text order is time order."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Dialect:
    """The little SQL that differs between backends."""

    name: str
    identity: str
    """Column type of an auto-numbered primary key."""


SQLITE = Dialect(name="sqlite", identity="INTEGER PRIMARY KEY")

StoreLocation = Path | str
"""A SQLite file, or a ``postgresql://`` URL (its password already read from the environment)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    """Separate statements: ``executescript`` would commit half-way and break atomicity."""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "subscribers, lists, status events, send ledger, locks, settings",
        (
            """CREATE TABLE lists (
                id {identity},
                name TEXT NOT NULL UNIQUE,
                description TEXT NOT NULL DEFAULT '',
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE subscribers (
                id {identity},
                email TEXT NOT NULL,
                email_key TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL DEFAULT '',
                attributes TEXT NOT NULL DEFAULT '{{}}',
                status TEXT NOT NULL DEFAULT 'subscribed'
                    CHECK (status IN ('subscribed', 'unsubscribed', 'bounced', 'complained')),
                source TEXT NOT NULL DEFAULT '',
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            """CREATE TABLE memberships (
                list_id INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
                subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
                created_at TEXT NOT NULL,
                PRIMARY KEY (list_id, subscriber_id)
            )""",
            "CREATE INDEX memberships_by_subscriber ON memberships (subscriber_id)",
            """CREATE TABLE status_events (
                id {identity},
                subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
                status TEXT NOT NULL,
                source TEXT NOT NULL,
                detail TEXT NOT NULL DEFAULT '',
                at TEXT NOT NULL
            )""",
            "CREATE INDEX status_events_by_subscriber ON status_events (subscriber_id)",
            """CREATE TABLE send_ledger (
                issue_id TEXT NOT NULL,
                subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
                list_name TEXT NOT NULL,
                state TEXT NOT NULL
                    CHECK (state IN ('queued', 'in_flight', 'sent', 'failed', 'skipped')),
                batch_id TEXT,
                provider_id TEXT,
                error TEXT,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (issue_id, subscriber_id)
            )""",
            "CREATE INDEX send_ledger_by_state ON send_ledger (issue_id, state, subscriber_id)",
            """CREATE TABLE send_locks (
                issue_id TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                acquired_at TEXT NOT NULL,
                heartbeat_at TEXT NOT NULL
            )""",
            """CREATE TABLE settings (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "send ledger clustered by issue and subscriber; batches numbered per issue",
        (
            # A million-recipient send changes every row twice. Clustered on its key, with
            # no second index keyed on the state, a change rewrites one row in place; the
            # batch's time and provider id live once in send_batches instead of per row.
            """CREATE TABLE send_batches (
                issue_id TEXT NOT NULL,
                batch_no INTEGER NOT NULL,
                label TEXT NOT NULL,
                provider_id TEXT,
                started_at TEXT NOT NULL,
                finished_at TEXT,
                PRIMARY KEY (issue_id, batch_no)
            ) WITHOUT ROWID""",
            """CREATE TABLE send_ledger_v2 (
                issue_id TEXT NOT NULL,
                subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
                list_name TEXT NOT NULL,
                state TEXT NOT NULL
                    CHECK (state IN ('queued', 'in_flight', 'sent', 'failed', 'skipped')),
                batch_no INTEGER,
                provider_id TEXT,
                error TEXT,
                updated_at TEXT,
                PRIMARY KEY (issue_id, subscriber_id)
            ) WITHOUT ROWID""",
            """INSERT INTO send_batches (issue_id, batch_no, label, started_at, finished_at)
                SELECT issue_id,
                    ROW_NUMBER() OVER (PARTITION BY issue_id ORDER BY MIN(updated_at), batch_id),
                    batch_id, MIN(updated_at), MAX(updated_at)
                FROM send_ledger WHERE batch_id IS NOT NULL GROUP BY issue_id, batch_id""",
            """INSERT INTO send_ledger_v2 (issue_id, subscriber_id, list_name, state, batch_no,
                    provider_id, error, updated_at)
                SELECT l.issue_id, l.subscriber_id, l.list_name, l.state, b.batch_no,
                    l.provider_id, l.error, l.updated_at
                FROM send_ledger l LEFT JOIN send_batches b
                    ON b.issue_id = l.issue_id AND b.label = l.batch_id""",
            "DROP TABLE send_ledger",
            "ALTER TABLE send_ledger_v2 RENAME TO send_ledger",
        ),
    ),
    Migration(
        3,
        "per-recipient outcomes: sends, batches that carry their recipients' state, "
        "retry and unconfirmed states",
        (
            # One row per send of an issue; the ledger rows refer to it by number, so a
            # million rows do not each repeat the name.
            """CREATE TABLE sends (
                id {identity},
                issue_id TEXT NOT NULL UNIQUE,
                lists TEXT NOT NULL DEFAULT '[]',
                started_at TEXT NOT NULL,
                completed_at TEXT,
                summary TEXT
            )""",
            # A batch's state is the state of each of its recipients who has none of their
            # own: recording a batch the provider took whole is one row, not a thousand.
            """CREATE TABLE send_batches_v3 (
                send_id INTEGER NOT NULL REFERENCES sends (id) ON DELETE CASCADE,
                batch_no INTEGER NOT NULL,
                state TEXT NOT NULL
                    CHECK (state IN ('queued', 'sending', 'sent', 'unconfirmed', 'settled')),
                size INTEGER NOT NULL,
                provider_id TEXT,
                error TEXT,
                claimed_at TEXT NOT NULL,
                sending_at TEXT,
                finished_at TEXT,
                PRIMARY KEY (send_id, batch_no)
            ) WITHOUT ROWID""",
            # No foreign keys: every row is inserted from a join with subscribers and a
            # send that exists, and checking both keys again tripled the cost of a claim.
            # A trigger removes a deleted subscriber's rows, as the cascade did.
            """CREATE TABLE send_ledger_v3 (
                send_id INTEGER NOT NULL,
                subscriber_id INTEGER NOT NULL,
                list_id INTEGER NOT NULL,
                batch_no INTEGER,
                state TEXT CHECK (state IS NULL OR state IN
                    ('queued', 'retry', 'sent', 'unconfirmed', 'refused', 'skipped')),
                attempts INTEGER NOT NULL DEFAULT 0,
                retry_at TEXT,
                error TEXT,
                updated_at TEXT,
                PRIMARY KEY (send_id, subscriber_id)
            ) WITHOUT ROWID""",
            # Only recipients with a state of their own: the exceptions, normally few.
            """CREATE INDEX send_ledger_own_state ON send_ledger_v3 (send_id, state, subscriber_id)
                WHERE state IS NOT NULL""",
            """INSERT INTO sends (issue_id, lists, started_at, completed_at)
                SELECT issue_id, json_group_array(DISTINCT list_name),
                    COALESCE(MIN(updated_at), '1970-01-01T00:00:00.000000Z'),
                    CASE WHEN COUNT(CASE WHEN state = 'queued' THEN 1 END) = 0
                        THEN COALESCE(MAX(updated_at), '1970-01-01T00:00:00.000000Z') END
                FROM send_ledger GROUP BY issue_id""",
            """INSERT INTO send_batches_v3 (send_id, batch_no, state, size, provider_id,
                    claimed_at, sending_at, finished_at)
                SELECT s.id, b.batch_no, 'settled', 0,
                    COALESCE(b.provider_id, (SELECT MAX(l.provider_id) FROM send_ledger l
                        WHERE l.issue_id = b.issue_id AND l.batch_no = b.batch_no)),
                    b.started_at, b.started_at, b.finished_at
                FROM send_batches b JOIN sends s ON s.issue_id = b.issue_id""",
            # Before this version a row in flight after a stop was exactly an unknown
            # outcome, and a failed one a refusal.
            """INSERT INTO send_ledger_v3 (send_id, subscriber_id, list_id, batch_no, state,
                    error, updated_at)
                SELECT s.id, l.subscriber_id, COALESCE(li.id, 0), l.batch_no,
                    CASE l.state WHEN 'in_flight' THEN 'unconfirmed'
                        WHEN 'failed' THEN 'refused' ELSE l.state END,
                    l.error, l.updated_at
                FROM send_ledger l JOIN sends s ON s.issue_id = l.issue_id
                LEFT JOIN lists li ON li.name = l.list_name""",
            """UPDATE send_batches_v3 SET size = (SELECT COUNT(*) FROM send_ledger_v3 l
                WHERE l.send_id = send_batches_v3.send_id
                AND l.batch_no = send_batches_v3.batch_no)""",
            "DROP TABLE send_ledger",
            "DROP TABLE send_batches",
            "ALTER TABLE send_ledger_v3 RENAME TO send_ledger",
            "ALTER TABLE send_batches_v3 RENAME TO send_batches",
            # A batch's size is how many rows name it, so its recipients can be counted
            # from the batch: kept true when a recipient moves to a later batch (a retry)
            # or is removed from the store.
            """CREATE TRIGGER send_ledger_moved AFTER UPDATE OF batch_no ON send_ledger
                WHEN OLD.batch_no IS NOT NEW.batch_no
                BEGIN
                    UPDATE send_batches SET size = size - 1
                        WHERE send_id = OLD.send_id AND batch_no = OLD.batch_no;
                    UPDATE send_batches SET size = size + 1
                        WHERE send_id = NEW.send_id AND batch_no = NEW.batch_no;
                END""",
            """CREATE TRIGGER subscriber_removed_from_sends AFTER DELETE ON subscribers
                BEGIN
                    DELETE FROM send_ledger WHERE subscriber_id = OLD.id;
                END""",
            """CREATE TRIGGER send_ledger_removed AFTER DELETE ON send_ledger
                BEGIN
                    UPDATE send_batches SET size = size - 1
                        WHERE send_id = OLD.send_id AND batch_no = OLD.batch_no;
                END""",
        ),
    ),
    Migration(
        4,
        "webhook events already applied, by the provider's event id",
        (
            # SendGrid delivers an event at least once; this remembers which it has seen
            # long enough to outlast its retries (see store/seen_events.py).
            """CREATE TABLE webhook_events_seen (
                event_id TEXT PRIMARY KEY,
                received_at TEXT NOT NULL
            ) WITHOUT ROWID""",
            "CREATE INDEX webhook_events_seen_age ON webhook_events_seen (received_at)",
        ),
    ),
    Migration(
        5,
        "a status per list: leaving one list is not leaving them all",
        (
            # The person's own status stays: 'unsubscribed' there means "left everything"
            # (so an import to a new list cannot add them back), and a bounce or complaint
            # is about the address, whatever the list. A membership is 'pending' until a
            # sign-up is confirmed.
            "ALTER TABLE memberships ADD COLUMN status TEXT NOT NULL DEFAULT 'subscribed' "
            "CHECK (status IN ('pending', 'subscribed', 'unsubscribed'))",
            "ALTER TABLE memberships ADD COLUMN updated_at TEXT",
            # Until now an unsubscribe left every list: each membership says so, from when.
            """UPDATE memberships SET status = 'unsubscribed',
                updated_at = (SELECT s.updated_at FROM subscribers s
                    WHERE s.id = memberships.subscriber_id)
                WHERE subscriber_id IN
                    (SELECT id FROM subscribers WHERE status = 'unsubscribed')""",
            "ALTER TABLE status_events ADD COLUMN list_id INTEGER",
        ),
    ),
    Migration(
        6,
        "consent: each sign-up request and its confirmation, per list",
        (
            # What a data-protection officer asks for: when, for which list, through what,
            # and from where (a salted hash of the IP address, never the address itself).
            # ``request`` ties the rows of one sign-up to the link that confirms them.
            """CREATE TABLE consents (
                id {identity},
                subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
                list_id INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
                request TEXT NOT NULL,
                source TEXT NOT NULL,
                ip_hash TEXT NOT NULL DEFAULT '',
                requested_at TEXT NOT NULL,
                confirmed_at TEXT
            )""",
            "CREATE INDEX consents_by_request ON consents (request)",
            "CREATE INDEX consents_by_subscriber ON consents (subscriber_id)",
        ),
    ),
    Migration(
        7,
        "erased people: a keyed hash of the address, so no import adds them back",
        (
            """CREATE TABLE erasures (
                address_hash TEXT PRIMARY KEY,
                erased_at TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        8,
        "a person's 'added' event is their own row: status_events keeps what changed after",
        (
            # Each way in wrote an event saying what the row says (subscribed, its source,
            # its created_at): a million-row import wrote a million. ``Store.events`` reads
            # that first event from the row, so only the copies it would read the same way
            # go; one that says anything else stays, and is read as it is.
            """DELETE FROM status_events WHERE detail = 'added' AND status = 'subscribed'
                AND list_id IS NULL AND EXISTS (SELECT 1 FROM subscribers s
                    WHERE s.id = status_events.subscriber_id
                    AND s.source = status_events.source AND s.created_at = status_events.at)""",
        ),
    ),
)


class StoreDatabase(ABC):
    """What every backend offers: statements with ``?`` placeholders, transactions that a
    nested call joins, keyset paging and the versioned migrations."""

    dialect: Dialect
    location: StoreLocation
    """What ``open_database`` opened: another process opens the same store with it."""
    where: str
    """The store as messages name it: a path, or a URL without its password."""
    setting: str
    """The newsletter.yml setting that names the store, for hints."""

    shares_sends = False
    """Whether several processes may send one issue together (``send --join``): each
    claimed batch is then held by its sender's session, so a run settles only the batches
    of senders that are gone. A SQLite store has one sender per send, under the send lock."""

    def hold(self, first: int, second: int) -> None:
        """Mark a claim (send, batch) as this process's own for as long as it lives."""
        return None  # SQLite: the send lock keeps every other sender away

    def let_go(self, first: int, second: int) -> None:
        """The claim is settled; it no longer needs its owner."""
        return None

    def held_elsewhere(self, first: int, second: int) -> bool:
        """Whether another live process holds this claim."""
        return False

    def sessions_ended(self, owner: str, timeout: float) -> bool:
        """Wait until no session of the process ``owner`` (host:pid) holds claims any more;
        whether none does. SQLite's claims have no session to outlive their process."""
        return True

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def transaction(
        self, *, durable: bool = True, serialised: bool = True
    ) -> AbstractContextManager[None]:
        """Commit on success, roll back on error; a nested call joins the outer one.
        ``durable=False`` may commit without waiting for the disk. ``serialised=False``
        says the writes need no other writer kept out: each changes rows named by their
        key, so the rows' own locks keep it right (SQLite has one writer anyway)."""

    def unchecked_references(self) -> AbstractContextManager[None]:
        """Foreign keys unchecked inside, for writes whose every reference was read from
        the store in their own transaction. Only SQLite checks them row by row at a cost
        worth saving; elsewhere this changes nothing."""
        return nullcontext()

    @abstractmethod
    def scrubbing(self) -> AbstractContextManager[None]:
        """Rows deleted inside leave no readable copy in the store's files afterwards (an
        erasure must not linger in free pages). Run it outside a transaction."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int: ...

    @abstractmethod
    def load_rows(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        replace: bool = False,
    ) -> None:
        """Put many rows into ``table`` at once, the backend's fastest way (a bulk load
        has no use for a row count or a conflict clause); ``replace`` empties it first,
        for a staging table filled again for each chunk."""

    @abstractmethod
    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    @abstractmethod
    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def pages(
        self, sql: str, params: Sequence[Any], *, chunk: int, limit: int | None = None
    ) -> Iterator[list[Row]]:
        """Rows of a keyset query, ``chunk`` at a time, at most ``limit`` in all.

        ``sql`` ends with ``AND key > ? ORDER BY key LIMIT ?`` and selects the key first;
        this fills in the last key seen and the page size. No cursor stays open across a
        ``yield``, so the caller may write to the store between pages.
        """
        last, left = 0, limit
        while left is None or left > 0:
            size = chunk if left is None else min(chunk, left)
            rows = self.all(sql, (*params, last, size))
            if rows:
                yield rows
            if len(rows) < size:
                return
            last = rows[-1][0]
            if left is not None:
                left -= len(rows)

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]

    # --- migrations ------------------------------------------------------------------------

    def migrate(self, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
        """Apply the migrations not yet recorded, in order, all or none; returns their versions.

        The write transaction serialises two processes migrating at once: the second one
        finds the versions the first applied and applies nothing.
        """
        with self.transaction():
            self.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            applied = {row[0] for row in self.all("SELECT version FROM schema_migrations")}
            known = {m.version for m in migrations}
            newer = sorted(applied - known)
            if newer:
                raise StoreError(
                    f"{self.where}: the store has schema version {newer[-1]}, newer than this "
                    f"version of newsletter understands ({max(known)})",
                    hint=f"upgrade newsletter, or point {self.setting} at another store",
                )
            done: list[int] = []
            for migration in sorted(migrations, key=lambda m: m.version):
                if migration.version in applied:
                    continue
                for statement in migration.statements:
                    self.execute(statement.format(identity=self.dialect.identity))
                self.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, utc_now()),
                )
                done.append(migration.version)
            return done

    def schema_version(self) -> int:
        return int(self.scalar("SELECT MAX(version) FROM schema_migrations") or 0)


def open_database(location: StoreLocation) -> StoreDatabase:
    """The backend for a store's location: a ``postgresql://`` URL, else a SQLite file."""
    if isinstance(location, str) and is_store_url(location):
        try:
            from .postgres import PostgresDatabase  # psycopg is an optional extra
        except ImportError as exc:
            raise StoreError(
                f"store.url names a PostgreSQL store, but {exc.name or 'psycopg'} is not "
                "installed",
                hint="install newsletter's postgres extra: pip install '.[postgres]' in its folder",
            ) from None
        return PostgresDatabase(location)
    return Database(Path(location))


class Database(StoreDatabase):
    """A SQLite connection with explicit transactions, shareable between threads.

    The connection runs in autocommit mode and every write goes through ``transaction()``,
    which starts with ``BEGIN IMMEDIATE``: the write lock is taken up front, so two
    processes never deadlock upgrading a read lock and the loser waits ``busy_timeout``.
    """

    dialect = SQLITE

    setting = "store.path"

    def __init__(self, path: Path) -> None:
        self.path = self.location = path
        self.where = str(path)
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _create_private(path)
            self._conn = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=15
            )
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a commit survives power loss, so a 'sent' mark is never rolled back.
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"{path}: cannot open the subscriber store: {exc}",
                hint="check that store.path in newsletter.yml names a writable SQLite file",
            ) from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self, *, durable: bool = True, serialised: bool = True) -> Iterator[None]:
        """Commit on success, roll back on error; a nested call joins the outer one.

        ``durable=False`` commits without waiting for the disk (``synchronous = NORMAL``):
        the commit survives the process being killed, and a power loss can take it back
        only until the next durable commit, whose write of the log carries every commit
        before it. For writes that are harmless to lose on their own, such as a claim:
        nothing goes out of a batch before its durable ``sending`` mark.
        """
        with self._lock:
            if self._conn.in_transaction:
                yield
                return
            if not durable:
                self._run("PRAGMA synchronous = NORMAL", ())
            try:
                self._run("BEGIN IMMEDIATE", ())
                try:
                    yield
                except BaseException:
                    self._conn.rollback()
                    raise
                self._run("COMMIT", ())
            finally:
                if not durable:
                    self._run("PRAGMA synchronous = FULL", ())

    @contextmanager
    def unchecked_references(self) -> Iterator[None]:
        """``PRAGMA foreign_keys`` off inside and on again after, whatever happens. Inside a
        transaction SQLite ignores the pragma, so a nested call checks as before."""
        with self._lock:
            if self._conn.in_transaction:
                yield
                return
            self._run("PRAGMA foreign_keys = OFF", ())
            try:
                yield
            finally:
                self._run("PRAGMA foreign_keys = ON", ())

    @contextmanager
    def scrubbing(self) -> Iterator[None]:
        """Rows deleted inside are overwritten with zeros, and the write-ahead log that
        still holds their old pages is folded into the file and emptied afterwards: an
        erasure must not linger in free pages. Run it outside a transaction."""
        with self._lock:
            self._run("PRAGMA secure_delete = ON", ())
            try:
                yield
            finally:
                self._run("PRAGMA secure_delete = OFF", ())
            self._run("PRAGMA wal_checkpoint(TRUNCATE)", ())

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        with self._lock:
            return self._run(sql, params).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        with self._lock:
            try:
                return self._conn.executemany(sql, rows).rowcount
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def load_rows(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        replace: bool = False,
    ) -> None:
        """Rows bound ``ROWS_PER_INSERT`` to a statement; a ``DELETE`` of every row is
        SQLite's quick truncation.

        A statement per row costs a step of the statement each, and each step lets go of
        the interpreter's lock and takes it back: beside a thread that reads ahead, every
        row waited for that thread to hand the lock back. Many rows to a statement bind as
        many values at once and step once: staging 1,000,000 rows took 2.5 s of CPU
        instead of 3.9 s.
        """
        if replace:
            self.execute(f"DELETE FROM {table}")
        into = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        one = f"({', '.join('?' * len(columns))})"
        rows = rows if isinstance(rows, Sequence) else list(rows)
        whole = len(rows) - len(rows) % ROWS_PER_INSERT
        self.executemany(
            into + ", ".join([one] * ROWS_PER_INSERT),
            (
                tuple(chain.from_iterable(rows[start : start + ROWS_PER_INSERT]))
                for start in range(0, whole, ROWS_PER_INSERT)
            ),
        )
        self.executemany(into + one, rows[whole:])

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        with self._lock:
            row: Row | None = self._run(sql, params).fetchone()
            return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            return self._run(sql, params).fetchall()

    def _run(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> StoreError:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            return StoreError(
                f"{self.path}: the store stayed locked by another process for "
                f"{BUSY_TIMEOUT_MS // 1000} s",
                hint="another newsletter command is writing to it; retry when it has finished",
            )
        if any(sign in str(exc) for sign in ("readonly", "disk I/O", "disk is full")):
            return StoreError(
                f"{self.path}: {exc}",
                hint="check that the store and its folder are writable and that the disk has "
                "free space; nothing was changed",
            )
        return StoreError(f"{self.path}: {exc}")
