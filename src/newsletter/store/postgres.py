"""The PostgreSQL backend: the same statements as SQLite, translated, on a connection pool.

The code above ``db.py`` writes SQLite's SQL with ``?`` placeholders; ``translate`` turns
each statement into PostgreSQL's once (cached): ``%s`` placeholders, no ``INDEXED BY`` or
``WITHOUT ROWID``, ``string_agg`` for ``group_concat``, ``ON CONFLICT DO NOTHING`` for
``INSERT OR IGNORE``, and the migrations' SQLite triggers as PL/pgSQL ones.

Writes keep SQLite's rule that one transaction writes at a time where it matters: a
write transaction first takes a transaction-scoped advisory lock, as ``BEGIN IMMEDIATE``
takes SQLite's write lock, so read-then-write steps (a claim and its next batch number,
the send lock, a migration run by two processes at once) are as safe as on SQLite, while
reads never wait. Writes to rows named by their key (a batch's sending mark, its answer)
ask for no such lock (``serialised=False``): the rows' own locks keep them right, and a
claim no longer waits for another sender's commit to reach the disk.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import LockedError, StoreError
from ..lock import LockHolder
from ..store_url import mask
from .db import Dialect, Row, StoreDatabase, process_name

POSTGRES = Dialect(name="postgresql", identity="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
WRITE_LOCK = 0x6E65_7773_6C74
"""The advisory lock every serialised write transaction holds (any fixed number, the same
everywhere)."""
CONNECT_TIMEOUT_S = 10
POOL_SIZE = 4
"""The sending loop, its marking thread and a few delivery threads each hold one at most."""

_TRIGGERS = {
    "send_ledger_moved": (
        """CREATE FUNCTION send_ledger_moved() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE send_batches SET size = size - 1
                WHERE send_id = OLD.send_id AND batch_no = OLD.batch_no;
            UPDATE send_batches SET size = size + 1
                WHERE send_id = NEW.send_id AND batch_no = NEW.batch_no;
            RETURN NULL;
        END $$""",
        """CREATE TRIGGER send_ledger_moved AFTER UPDATE OF batch_no ON send_ledger
            FOR EACH ROW WHEN (OLD.batch_no IS DISTINCT FROM NEW.batch_no)
            EXECUTE FUNCTION send_ledger_moved()""",
    ),
    "subscriber_removed_from_sends": (
        """CREATE FUNCTION subscriber_removed_from_sends() RETURNS trigger LANGUAGE plpgsql
        AS $$
        BEGIN
            DELETE FROM send_ledger WHERE subscriber_id = OLD.id;
            RETURN NULL;
        END $$""",
        """CREATE TRIGGER subscriber_removed_from_sends AFTER DELETE ON subscribers
            FOR EACH ROW EXECUTE FUNCTION subscriber_removed_from_sends()""",
    ),
    "send_ledger_removed": (
        """CREATE FUNCTION send_ledger_removed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE send_batches SET size = size - 1
                WHERE send_id = OLD.send_id AND batch_no = OLD.batch_no;
            RETURN NULL;
        END $$""",
        """CREATE TRIGGER send_ledger_removed AFTER DELETE ON send_ledger
            FOR EACH ROW EXECUTE FUNCTION send_ledger_removed()""",
    ),
}
"""The migrations' SQLite triggers (by name), each as a function and a row trigger."""

_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"\s*\bINDEXED BY \w+", ""),
        (r"\s*\bWITHOUT ROWID\b", ""),
        # group_concat reads a subquery ordered by subscriber id; string_agg is told so.
        (r"group_concat\((\w+), char\(30\)\)", r"string_agg(\1, chr(30) ORDER BY subscriber_id)"),
        (r"group_concat\((\w+)\)", r"string_agg(CAST(\1 AS TEXT), ',' ORDER BY subscriber_id)"),
        (r"json_group_array\(", "json_agg("),
        (
            r"FROM json_each\(\?\)",
            "FROM (SELECT CAST(value AS BIGINT) AS value "
            "FROM json_array_elements_text(CAST(? AS json))) AS ids",
        ),
    )
)
_LITERAL_OR_MARK = re.compile(r"'(?:[^']|'')*'|\?|%")


@lru_cache(maxsize=512)
def translate(sql: str) -> tuple[str, ...]:
    """SQLite's statement as the PostgreSQL statements that do the same (most often one)."""
    trigger = re.match(r"\s*CREATE TRIGGER (\w+)", sql)
    if trigger:
        return _TRIGGERS[trigger.group(1)]
    for pattern, replacement in _REWRITES:
        sql = pattern.sub(replacement, sql)
    if re.match(r"\s*INSERT OR IGNORE\b", sql):
        sql = sql.replace("INSERT OR IGNORE", "INSERT", 1) + " ON CONFLICT DO NOTHING"
    return (_LITERAL_OR_MARK.sub(_placeholder, sql),)


def _placeholder(match: re.Match[str]) -> str:
    """psycopg's ``%s`` for a ``?`` outside a literal; every ``%`` doubled, as psycopg
    reads its placeholders in the literals too."""
    piece = match.group(0)
    if piece == "?":
        return "%s"
    return piece.replace("%", "%%")


def connection_error(url: str, exc: Exception) -> StoreError:
    """A failure to reach the store, naming the setting and never the password."""
    said = " ".join(str(exc).split()) or type(exc).__name__
    return StoreError(
        f"store.url ({mask(url)}): cannot connect to PostgreSQL: {_scrub(said, url)}",
        hint="check the host, port, database and user in store.url, that the server is "
        "running and reachable, and the password (its ${VAR} in store.url, or PGPASSWORD)",
    )


def _scrub(text: str, url: str) -> str:
    """libpq never prints a password, but a message is not the place to trust that."""
    password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    return text.replace(str(password), "***") if password else text


def _configure(conn: psycopg.Connection[Any]) -> None:
    """The store's queries read a batch at a time: starting parallel workers for one, or
    compiling it (JIT, which a claim's large cost estimate sets off), costs far more than
    it saves: a claim of a thousand new members took 90 ms with two workers and 600 ms to
    compile, 3 to 16 ms to run."""
    conn.execute("SET max_parallel_workers_per_gather = 0")
    conn.execute("SET jit = off")


SCRUBBED_TABLES = (
    "subscribers", "memberships", "status_events", "consents", "send_ledger", "send_batches",
)
"""Where an erased person's rows live (the ledger's own rows go by trigger)."""


def claims_session(owner: str) -> str:
    """The application_name of the session that holds a sender's claims: ``owner`` is the
    sender's host:pid, as its send lock names it."""
    return f"newsletter claims {owner}"[:63]


class PostgresDatabase(StoreDatabase):
    """A pool of connections in autocommit mode; ``transaction()`` holds one connection
    for the calling thread until it commits, and statements outside a transaction each
    borrow one."""

    dialect = POSTGRES
    setting = "store.url"
    shares_sends = True

    def __init__(self, url: str) -> None:
        self.url = self.location = url
        self.where = mask(url)
        self._local = threading.local()
        self._session: psycopg.Connection[Any] | None = None
        self._session_lock = threading.Lock()
        self._gone = False
        try:
            # One plain connection first: its error says what is wrong (password, host,
            # database) where the pool would only time out.
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S).close()
        except (psycopg.Error, ValueError) as exc:
            raise connection_error(url, exc) from None
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
            timeout=CONNECT_TIMEOUT_S * 3,
            open=True,
            name="newsletter-store",
            configure=_configure,
        )

    def close(self) -> None:
        with self._session_lock:
            if self._session is not None:
                self._session.close()
        self._pool.close()

    # --- claims held by this process ------------------------------------------------------

    def hold(self, first: int, second: int) -> None:
        """A session advisory lock on a connection of its own: the server drops it when the
        process's connection closes, however the process ends (kill -9 included)."""
        self._on_session("SELECT pg_advisory_lock(%s, %s)", first, second)

    def let_go(self, first: int, second: int) -> None:
        self._on_session("SELECT pg_advisory_unlock(%s, %s)", first, second)

    def held_elsewhere(self, first: int, second: int) -> bool:
        if self._on_session("SELECT pg_try_advisory_lock(%s, %s)", first, second):
            self.let_go(first, second)
            return False
        return True

    def sessions_ended(self, owner: str, timeout: float) -> bool:
        """Wait, at most ``timeout`` seconds, until the server has no claims session of
        ``owner`` left; whether it has none.

        A process killed with ``kill -9`` has its connections closed by the kernel at
        once, but each server process notices and ends (dropping its advisory locks) a
        moment later: under load, after the next run had looked at the claims.
        """
        deadline = time.monotonic() + timeout
        name = claims_session(owner)
        while True:
            lingering = self.scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = ?)",
                (name,),
            )
            if not lingering:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def _on_session(self, sql: str, *params: int) -> Any:
        with self._session_lock:
            try:
                if self._session is None:
                    self._session = psycopg.connect(
                        self.url,
                        autocommit=True,
                        connect_timeout=CONNECT_TIMEOUT_S,
                        application_name=claims_session(process_name()),
                    )
                row = self._session.execute(sql, params).fetchone()
            except psycopg.Error as exc:
                if self._session is not None and self._session.broken:
                    self._session = None  # its holds went with it; the next one reconnects
                raise self._error(exc) from exc
            return None if row is None else row[0]

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The thread's transaction connection, or one borrowed for a statement."""
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        if self._gone:
            self._check_back()
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise self._lost(exc) from None

    @contextmanager
    def transaction(self, *, durable: bool = True, serialised: bool = True) -> Iterator[None]:
        """Commit on success, roll back on error; a nested call joins the outer one.

        ``durable=False`` commits without waiting for the disk (``synchronous_commit``
        off): as on SQLite, for writes harmless to lose on their own, such as a claim.
        ``serialised`` takes the write lock (see the module's docstring); a nested call
        that asks for it takes it then, and every statement after sees what the writers
        before it committed, as each statement reads the newest committed rows.
        """
        if getattr(self._local, "conn", None) is not None:
            if serialised:
                self._serialise()
            yield
            return
        with self._connection() as conn:
            self._local.conn = conn
            self._local.serialised = False
            try:
                with conn.transaction():
                    if not durable:
                        self.execute("SET LOCAL synchronous_commit = off")
                    if serialised:
                        self._serialise()
                    yield
            except psycopg.Error as exc:
                raise self._error(exc) from exc
            finally:
                self._local.conn = None

    def _serialise(self) -> None:
        """The write lock, once per transaction; the server lets go of it at the end."""
        if not self._local.serialised:
            self.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
            self._local.serialised = True

    @contextmanager
    def scrubbing(self) -> Iterator[None]:
        """PostgreSQL keeps a deleted row's old version in the table until VACUUM reclaims
        it, so the tables an erasure deletes from are vacuumed afterwards (outside any
        transaction, as VACUUM requires). The server's write-ahead log and its backups
        still hold the row until they are recycled; docs/postgres.md says so."""
        yield
        with self._connection() as conn:
            try:
                for table in SCRUBBED_TABLES:
                    conn.execute(f"VACUUM {table}")
            except psycopg.Error as exc:
                raise self._error(exc) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        with self._cursor(sql, params) as cursor:
            return max(cursor.rowcount, 0)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        batch = list(rows)
        if not batch:
            return 0
        (statement,) = translate(sql)
        with self._connection() as conn, conn.cursor() as cursor:
            try:
                cursor.executemany(statement, batch)
            except psycopg.Error as exc:
                raise self._error(exc) from exc
            return max(cursor.rowcount, 0)

    def load_rows(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        replace: bool = False,
    ) -> None:
        """``COPY ... FROM STDIN``: the rows stream to the server in one command, where
        ``executemany`` costs a round trip and a statement per row (a 1,000,000-row import
        spent most of its time there). psycopg escapes each value for COPY's text format,
        so tabs, newlines and backslashes inside a value arrive as they were.

        ``replace`` truncates: a ``DELETE`` leaves the old rows behind as dead versions,
        which nothing vacuums in a temporary table, so every scan of a staging table
        refilled per chunk would read all the chunks before it."""
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with self._connection() as conn, conn.cursor() as cursor:
            try:
                if replace:
                    cursor.execute(f"TRUNCATE {table}")
                with cursor.copy(statement) as copy:
                    for row in rows:
                        copy.write_row(row)
            except psycopg.Error as exc:
                raise self._error(exc) from exc

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        with self._cursor(sql, params) as cursor:
            row: Row | None = cursor.fetchone()
            return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._cursor(sql, params) as cursor:
            return cursor.fetchall()

    @contextmanager
    def _cursor(self, sql: str, params: Sequence[Any]) -> Iterator[psycopg.Cursor[Any]]:
        statements = translate(sql)
        with self._connection() as conn, conn.cursor() as cursor:
            try:
                for statement in statements:
                    cursor.execute(statement, tuple(params))
            except psycopg.Error as exc:
                raise self._error(exc) from exc
            yield cursor

    def _error(self, exc: psycopg.Error) -> StoreError:
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return self._lost(exc)
        return StoreError(f"{self.where}: {_scrub(str(exc).strip(), self.url)}")

    def _check_back(self) -> None:
        """After a lost connection, one plain connection says at once whether the server
        is back, where the pool would wait its whole timeout for each statement: a send
        whose server went away stops in seconds, and ``serve`` recovers when it returns."""
        try:
            psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S).close()
        except psycopg.Error as exc:
            raise self._lost(exc) from None
        self._gone = False

    def _lost(self, exc: Exception) -> StoreError:
        self._gone = True
        return StoreError(
            f"{self.where}: lost the connection to the PostgreSQL store: "
            f"{_scrub(str(exc).strip(), self.url) or type(exc).__name__}",
            hint="check that the server is running and reachable; what was not committed "
            "was rolled back, and running the command again carries on from there",
        )


RUN_LOCK = 0x6E65_7772_756E
"""The advisory lock ``newsletter run`` holds on a PostgreSQL store (any fixed number)."""


def hold_run_lock(url: str, holder: LockHolder) -> psycopg.Connection[Any]:
    """Take the store's run lock for as long as the returned connection stays open, or
    raise LockedError naming the process that holds it.

    The file lock beside newsletter.yml keeps runs on one host apart; timers on several
    hosts (or CI beside a timer) share the store, so they meet here. The server drops the
    lock with the connection, however its process ends. Each holder is named by its
    connection's application_name, which the lock file's line fits in.
    """
    try:
        conn = psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=holder.line().strip()[:63],
        )
    except psycopg.Error as exc:
        raise connection_error(url, exc) from None
    if conn.execute("SELECT pg_try_advisory_lock(%s)", (RUN_LOCK,)).fetchone() == (True,):
        return conn
    row = conn.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s "
        "AND l.objsubid = 1",
        (RUN_LOCK >> 32, RUN_LOCK & 0xFFFF_FFFF),
    ).fetchone()
    conn.close()
    other = LockHolder.parse(row[0]) if row else None
    who = f"`newsletter {other.command}` ({other})" if other else "`newsletter run`"
    raise LockedError(
        f"another {who} holds the run lock of the store at {mask(url)}; it will finish on "
        "its own",
        hint="runs on several hosts share one PostgreSQL store, so one runs at a time",
    )
