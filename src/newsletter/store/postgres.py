"""The PostgreSQL backend: the same statements as SQLite, translated, on a connection pool.

The code above ``db.py`` writes SQLite's SQL with ``?`` placeholders; ``translate`` turns
each statement into PostgreSQL's once (cached): ``%s`` placeholders, no ``INDEXED BY`` or
``WITHOUT ROWID``, ``string_agg`` for ``group_concat``, ``ON CONFLICT DO NOTHING`` for
``INSERT OR IGNORE``, and the migrations' SQLite triggers as PL/pgSQL ones.

Writes keep SQLite's rule that one transaction writes at a time: each write transaction
first takes a transaction-scoped advisory lock, as ``BEGIN IMMEDIATE`` takes SQLite's
write lock. Read-then-write steps (the next batch number, the send lock, a migration run
by two processes at once) are then as safe as on SQLite, while reads never wait.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import StoreError
from ..store_url import mask
from .db import Dialect, Row, StoreDatabase

POSTGRES = Dialect(name="postgresql", identity="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
WRITE_LOCK = 0x6E65_7773_6C74
"""The advisory lock every write transaction holds (any fixed number, the same everywhere)."""
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


class PostgresDatabase(StoreDatabase):
    """A pool of connections in autocommit mode; ``transaction()`` holds one connection
    for the calling thread until it commits, and statements outside a transaction each
    borrow one."""

    dialect = POSTGRES
    setting = "store.url"

    def __init__(self, url: str) -> None:
        self.url = self.location = url
        self.where = mask(url)
        self._local = threading.local()
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
        )

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The thread's transaction connection, or one borrowed for a statement."""
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise self._lost(exc) from None

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        """Commit on success, roll back on error; a nested call joins the outer one.

        ``durable=False`` commits without waiting for the disk (``synchronous_commit``
        off): as on SQLite, for writes harmless to lose on their own, such as a claim.
        """
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        with self._connection() as conn:
            self._local.conn = conn
            try:
                with conn.transaction():
                    if not durable:
                        self.execute("SET LOCAL synchronous_commit = off")
                    self.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
                    yield
            except psycopg.Error as exc:
                raise self._error(exc) from exc
            finally:
                self._local.conn = None

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

    def _lost(self, exc: Exception) -> StoreError:
        return StoreError(
            f"{self.where}: lost the connection to the PostgreSQL store: "
            f"{_scrub(str(exc).strip(), self.url) or type(exc).__name__}",
            hint="check that the server is running and reachable; what was not committed "
            "was rolled back, and running the command again carries on from there",
        )
