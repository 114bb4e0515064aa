"""Moving a SQLite store to PostgreSQL: table by table, in chunks, resumable, verified.

Each chunk is one transaction in the target, read in primary-key order, so after a stop
the target's highest key says where to carry on; ``ON CONFLICT DO NOTHING`` makes a chunk
copied twice harmless. At the end every table is compared by its number of rows and a
checksum of all its values in key order, on both sides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson

from ..errors import StoreError
from .db import Row, StoreDatabase

CHUNK = 5_000
FIRST = ("lists", "subscribers", "memberships", "status_events", "sends", "send_batches")
"""Tables others refer to come first, so every foreign key finds its row."""
LEFT_OUT = frozenset({"schema_migrations", "send_locks"})
"""The target migrates itself; a send lock belongs to a process of the old store."""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    identity: bool
    """An auto-numbered id, whose numbering the target must carry on from the copy."""


@dataclass(frozen=True)
class TableCopy:
    name: str
    copied: int
    rows: int
    """Rows in the source, and in the target once verified."""
    verified: bool


def tables(source: StoreDatabase) -> list[Table]:
    """The SQLite store's tables, those others refer to first."""
    names = [
        row[0]
        for row in source.all(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
        if row[0] not in LEFT_OUT
    ]
    ordered = [name for name in FIRST if name in names] + [n for n in names if n not in FIRST]
    found = []
    for name in ordered:
        info = source.all(f"PRAGMA table_info({name})")
        columns = tuple(row[1] for row in info)
        key = tuple(row[1] for row in sorted(info, key=lambda row: row[5]) if row[5])
        identity = key == ("id",) and str(info[columns.index("id")][2]).upper() == "INTEGER"
        found.append(Table(name, columns, key, identity))
    return found


def _keyset(db: StoreDatabase, table: Table, after: Row | None, chunk: int) -> list[Row]:
    """The next ``chunk`` rows after key ``after`` (None: from the start), in key order."""
    keys = ", ".join(table.key)
    marks = ", ".join("?" * len(table.key))
    where = f"WHERE ({keys}) > ({marks}) " if after is not None else ""
    return db.all(
        f"SELECT {', '.join(table.columns)} FROM {table.name} {where}ORDER BY {keys} LIMIT ?",
        (*(after or ()), chunk),
    )


def _rows(db: StoreDatabase, table: Table, chunk: int) -> Iterator[list[Row]]:
    after: Row | None = None
    while rows := _keyset(db, table, after, chunk):
        yield rows
        after = _key_of(table, rows[-1])


def _key_of(table: Table, row: Row) -> Row:
    return tuple(row[table.columns.index(column)] for column in table.key)


def _last_key(db: StoreDatabase, table: Table) -> Row | None:
    order = ", ".join(f"{column} DESC" for column in table.key)
    return db.one(f"SELECT {', '.join(table.key)} FROM {table.name} ORDER BY {order} LIMIT 1")


def copy_table(
    source: StoreDatabase,
    target: StoreDatabase,
    table: Table,
    *,
    chunk: int = CHUNK,
    on_chunk: Callable[[str, int], None] = lambda name, copied: None,
) -> int:
    """Copy the rows the target lacks, after the highest key it has; returns how many."""
    overriding = " OVERRIDING SYSTEM VALUE" if table.identity else ""
    insert = (
        f"INSERT INTO {table.name} ({', '.join(table.columns)}){overriding} "
        f"VALUES ({', '.join('?' * len(table.columns))}) ON CONFLICT DO NOTHING"
    )
    copied = 0
    after = _last_key(target, table)
    while rows := _keyset(source, table, after, chunk):
        with target.transaction():
            copied += target.executemany(insert, rows)
        after = _key_of(table, rows[-1])
        on_chunk(table.name, copied)
    if table.identity:
        # The copy wrote the ids itself; new rows must be numbered after them.
        target.execute(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
            f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table.name}), false)"
        )
    return copied


def fingerprint(db: StoreDatabase, table: Table, chunk: int = CHUNK) -> tuple[int, str]:
    """A table's row count and a checksum of every value in key order."""
    digest = hashlib.sha256()
    count = 0
    for rows in _rows(db, table, chunk):
        count += len(rows)
        for row in rows:
            digest.update(orjson.dumps(list(row)))
    return count, digest.hexdigest()


def copy_store(
    source: StoreDatabase,
    target: StoreDatabase,
    *,
    chunk: int = CHUNK,
    on_chunk: Callable[[str, int], None] = lambda name, copied: None,
) -> list[TableCopy]:
    """Copy every table the target lacks rows of, then verify each; StoreError naming the
    tables that differ."""
    if source.dialect.name != "sqlite" or target.dialect.name != "postgresql":
        raise StoreError(
            f"a store is copied from SQLite to PostgreSQL, not from {source.dialect.name} "
            f"to {target.dialect.name}",
            hint="point store.path at the SQLite file and give --to a postgresql:// URL",
        )
    source.migrate()
    target.migrate()
    if source.schema_version() != target.schema_version():
        raise StoreError(
            f"{target.where} has schema version {target.schema_version()}, "
            f"{source.where} {source.schema_version()}",
            hint="copy with the newsletter version that wrote the newer one",
        )
    done = []
    for table in tables(source):
        copied = copy_table(source, target, table, chunk=chunk, on_chunk=on_chunk)
        rows, expected = fingerprint(source, table, chunk)
        found = fingerprint(target, table, chunk)
        done.append(TableCopy(table.name, copied, rows, found == (rows, expected)))
    differ = [f"{t.name}" for t in done if not t.verified]
    if differ:
        raise StoreError(
            f"{target.where}: after the copy, {', '.join(differ)} differ from "
            f"{source.where} (row counts or checksums)",
            hint="stop every command that writes to the SQLite store (send, run, serve), "
            "empty the target database and copy again",
        )
    return done
