"""What a refused command must leave alone, captured before it runs and compared after.

A project's files (the issue tree, the outbox, the sources) are kept as paths and bytes;
the store is kept as the rows of its subscriber and ledger tables, since SQLite may
rewrite pages, checkpoint its journal or create an empty file without changing a row.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

STORE_TABLES = (
    "lists",
    "subscribers",
    "memberships",
    "status_events",
    "sends",
    "send_batches",
    "send_ledger",
    "send_locks",
)
"""Who is subscribed to what, and what every send did to whom."""
JOURNAL_SUFFIXES = (".db-wal", ".db-shm", ".db-journal")
RUN_LOCK_DIR = ".newsletter"
"""The run lock's file, taken by every build and run and left empty: the lock, not output."""
STORE_FILE = b"(a store: its rows are compared, not its bytes)"


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes) and every folder (``name/`` ->
    nothing, so an empty one left behind shows). A store counts by its presence, since its
    rows are compared apart (``store_rows``); SQLite's journals come and go."""
    if not folder.is_dir():
        return {}
    found: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if relative == RUN_LOCK_DIR or relative.startswith(RUN_LOCK_DIR + "/"):
            continue
        if path.is_dir():
            found[relative + "/"] = b""
        elif path.name.endswith(".db"):
            found[relative] = STORE_FILE
        elif not path.name.endswith(JOURNAL_SUFFIXES):
            found[relative] = path.read_bytes()
    return found


def store_rows(database: Path) -> dict[str, list[tuple[object, ...]]]:
    """The rows of each subscriber and ledger table; an absent store counts as an empty one."""
    if not database.is_file():
        return {}
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        connection.execute("SELECT 1 FROM sqlite_master")
    except sqlite3.DatabaseError:  # not a store at all: its bytes are what must not change
        connection.close()
        return {"(not a database)": [(hashlib.sha256(database.read_bytes()).hexdigest(),)]}
    try:
        present = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
        rows = {
            table: sorted(connection.execute(f"SELECT * FROM {table}"), key=repr)
            for table in STORE_TABLES
            if table in present
        }
    finally:
        connection.close()
    return {table: found for table, found in rows.items() if found}


@dataclass(frozen=True)
class ProjectState:
    files: dict[str, bytes]
    store: dict[str, list[tuple[object, ...]]]


def project_state(project: Path, store: str = "newsletter.db") -> ProjectState:
    """The files of the project folder and the rows of its store."""
    return ProjectState(tree(project), store_rows(project / store))


LEDGER_TABLES = ("sends", "send_batches", "send_ledger")


def assert_unchanged(
    before: ProjectState, after: ProjectState, *, ignored: tuple[str, ...] = ()
) -> None:
    """Fail naming what a command added, removed or rewrote (``ignored`` tables aside)."""
    added = sorted(after.files.keys() - before.files.keys())
    removed = sorted(before.files.keys() - after.files.keys())
    rewritten = sorted(
        name
        for name in before.files.keys() & after.files.keys()
        if before.files[name] != after.files[name]
    )
    assert (added, removed, rewritten) == ([], [], []), (
        f"files added {added}, removed {removed}, rewritten {rewritten}"
    )
    changed = sorted(
        table
        for table in before.store.keys() | after.store.keys()
        if table not in ignored and before.store.get(table) != after.store.get(table)
    )
    assert changed == [], f"store tables changed: {changed}"
