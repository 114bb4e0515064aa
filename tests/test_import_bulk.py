"""The set-based import: chunk boundaries, the read-ahead thread, and interruptions.

Rows are read and checked a chunk ahead, in a thread, while the store writes the chunk
before in a few statements; whatever stops an import half-way (a bad file, Ctrl-C, a kill)
must leave the store as it was.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import make_sample_project
from newsletter.errors import ImportFileError, StoreError
from newsletter.send_models import SubscriberStatus
from newsletter.store import Store, import_csv
from newsletter.store.db import ROWS_PER_INSERT
from newsletter.store.readahead import (
    HANDOVER_SECONDS,
    PAUSE_EVERY,
    prompt_handover,
    read_ahead,
)
from newsletter.store.upsert import STREAM_CHUNK, NewSubscriber


@pytest.fixture
def store(list_store: Store) -> Store:
    return list_store


def people(*emails: str) -> list[NewSubscriber]:
    return [NewSubscriber(email, f"Person {n}", line=n) for n, email in enumerate(emails, 2)]


def store_rows(store: Store) -> dict[str, list[tuple[object, ...]]]:
    tables = ("subscribers", "memberships", "status_events")
    return {table: store.db.all(f"SELECT * FROM {table} ORDER BY 1, 2") for table in tables}


def test_bad_rows_and_a_repeat_at_a_chunk_boundary_are_named_by_line(
    store: Store, tmp_path: Path
) -> None:
    """The first chunk ends at line STREAM_CHUNK + 1: a bad row on each side of it, and a
    repeat of a first-chunk address just after it."""
    boundary = STREAM_CHUNK + 1  # the last line of the first chunk of good rows
    lines = ["email,name,team"]
    for line in range(2, boundary + 4):
        lines.append(f"p{line}@example.org,Person {line},Ops")
    lines[boundary - 2] = "not-an-address,Bad,Ops"  # one before the boundary
    lines[boundary] = "p2@EXAMPLE.org,Again,Ops"  # the second chunk's first row
    lines[boundary + 1] = "p3@example.org,Tab\tName,Ops"
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_csv(store, path, "members")
    assert [(e.line, e.message) for e in report.errors] == [
        (boundary - 1, "'not-an-address' is not a valid e-mail address: An email address "
                       "must have an @-sign."),
        (boundary + 1, "p2@example.org is a duplicate of line 2; line 2 is kept"),
        (boundary + 2, "p3@example.org: the name 'Tab\\tName' contains a tab, which an e-mail "
                       "header cannot carry; correct the name"),
    ]  # fmt: skip
    assert (report.rows, report.invalid, report.duplicates) == (boundary + 2, 2, 1)
    assert report.added == boundary + 2 - 3
    assert store.count("members") == report.added
    assert store.get("p2@example.org").name == "Person 2"
    assert store.get(f"p{boundary + 3}@example.org").attributes == {"team": "Ops"}
    # Each one's history begins with being added, which their own row holds.
    assert store.db.scalar("SELECT COUNT(*) FROM status_events") == 0
    for email in ("p2@example.org", f"p{boundary + 3}@example.org"):
        assert [(e.status, e.source, e.detail) for e in store.events(email)] == [
            ("subscribed", "import", "added")
        ]


@pytest.mark.parametrize(
    "count", [1, ROWS_PER_INSERT - 1, ROWS_PER_INSERT, 2 * ROWS_PER_INSERT + 3]
)
def test_every_staged_row_arrives_whole_and_in_order_however_many_share_a_statement(
    store: Store, count: int
) -> None:
    """SQLite stages ``ROWS_PER_INSERT`` rows to a statement and the rest one by one: a
    chunk of any size, with names and attributes that need quoting, is stored exactly."""
    odd = 'Ann "Nan" O\'Neil, Jr.'
    records = [
        NewSubscriber(f"p{n}@example.org", f"{odd} {n}", {"note": f"{odd}\\{n}"}, line=n + 2)
        for n in range(count)
    ]
    counts = store.upsert_stream(records, "members", on_duplicate=lambda r, f: None)
    assert counts.added == count
    stored = [(s.email, s.name, dict(s.attributes)) for s in store.subscribers_of("members")]
    assert stored == [(r.email, r.name, dict(r.attributes)) for r in records]


def test_a_second_list_joins_known_people_and_keeps_their_consent(store: Store) -> None:
    records = people(*(f"p{n}@example.org" for n in range(7)))
    store.upsert_stream(records, "members", on_duplicate=lambda r, f: None, chunk=3)
    store.unsubscribe("p4@example.org", source="link")
    changed = [
        NewSubscriber("p1@example.org", "New Name", {"team": "Ops"}, 2),
        NewSubscriber("p2@example.org", line=3),
        NewSubscriber("p4@example.org", line=4),
        NewSubscriber("new@example.org", "New", line=5),
    ]
    counts = store.upsert_stream(changed, "partners", on_duplicate=lambda r, f: None, chunk=2)
    assert (counts.added, counts.skipped_unsubscribed, counts.skipped_lines) == (3, 1, [4])
    assert store.memberships("p1@example.org") == ["members", "partners"]
    assert store.memberships("p4@example.org") == ["members"]
    assert store.get("p4@example.org").status is SubscriberStatus.UNSUBSCRIBED
    assert store.get("p1@example.org").attributes == {"team": "Ops"}
    assert store.get("p2@example.org").name == "Person 4"  # an empty name keeps the stored one
    again = store.upsert_stream(changed, "partners", on_duplicate=lambda r, f: None, chunk=2)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3)


def test_ctrl_c_while_rows_are_read_leaves_the_store_as_it_was(store: Store) -> None:
    store.add("ann@example.org", "Ann", "members")
    before = store_rows(store)

    def interrupted() -> Iterator[NewSubscriber]:
        yield from people(*(f"p{n}@example.org" for n in range(5)), "ann@example.org")
        raise KeyboardInterrupt

    threads = threading.active_count()
    records = read_ahead(interrupted(), 2)
    with pytest.raises(KeyboardInterrupt):
        store.upsert_stream(records, "members", on_duplicate=lambda r, f: None, chunk=2)
    records.close()
    assert store_rows(store) == before
    assert threading.active_count() == threads


def test_ctrl_c_while_a_chunk_is_written_stops_the_reader_too(store: Store) -> None:
    store.add("ann@example.org", "Ann", "members")
    before = store_rows(store)

    def interrupt(record: NewSubscriber, first_line: int) -> None:
        raise KeyboardInterrupt

    emails = [f"p{n}@example.org" for n in range(50)] + ["p1@example.org"]
    threads = threading.active_count()
    records = read_ahead(iter(people(*emails)), 4)
    with pytest.raises(KeyboardInterrupt):
        store.upsert_stream(records, "members", on_duplicate=interrupt, chunk=4)
    records.close()
    assert store_rows(store) == before
    assert threading.active_count() == threads
    counts = store.upsert_stream(people(*emails[:3]), "members", on_duplicate=interrupt)
    assert counts.added == 3


def test_read_ahead_gives_every_item_in_order_and_raises_where_the_source_did() -> None:
    assert list(read_ahead(iter(range(10)), 3)) == list(range(10))
    assert list(read_ahead(iter([]), 3)) == []

    def broken() -> Iterator[int]:
        yield from range(5)
        raise ImportFileError("list.csv:7: cannot be read as CSV")

    seen: list[int] = []
    with pytest.raises(ImportFileError, match=r"list\.csv:7"):
        seen.extend(read_ahead(broken(), 2))
    assert seen == list(range(5))


def test_a_csv_error_half_way_imports_nothing(store: Store, tmp_path: Path) -> None:
    rows = "".join(f"p{n}@example.org,Person {n}\n" for n in range(STREAM_CHUNK + 100))
    path = tmp_path / "broken.csv"
    path.write_text(f'email,name\n{rows}bad@example.org,"{"x" * 200_000}\n', encoding="utf-8")
    with pytest.raises(ImportFileError, match=rf"broken.csv:{STREAM_CHUNK + 102}: cannot be read"):
        import_csv(store, path, "members")
    assert store.count() == 0


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_a_killed_import_leaves_the_store_as_it_was(tmp_path: Path, stop: int) -> None:
    """The process is stopped once it has read a third of a file it is writing chunk by
    chunk: killed (nothing runs after it), or interrupted (Ctrl-C lands in the writing
    thread, which may be binding a chunk while the reading thread waits for it). The store
    keeps what it had, and takes the same import again afterwards."""
    config = make_sample_project(tmp_path)
    newsletter = [sys.executable, "-m", "newsletter", "--config", str(config)]
    sample = config.parent / "samples" / "subscribers.csv"
    imported = subprocess.run(
        [*newsletter, "subscribers", "import", str(sample), "--list", "members"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    store_path = config.parent / "newsletter.db"
    with Store.open(store_path) as store:
        before = store_rows(store)
    big = tmp_path / "big.csv"
    big.write_text(
        "email,name\n" + "".join(f"p{n}@example.org,Person {n}\n" for n in range(300_000)),
        encoding="utf-8",
    )
    child = subprocess.Popen(
        [*newsletter, "subscribers", "import", str(big), "--list", "members"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_until_writing(child.pid, big, big.stat().st_size // 3, store_path)
    finally:
        os.kill(child.pid, stop)
        child.wait(timeout=30)
    assert child.returncode == (-signal.SIGKILL if stop == signal.SIGKILL else 130)
    with Store.open(store_path) as store:
        assert store_rows(store) == before
    again = subprocess.run(
        [*newsletter, "subscribers", "import", str(big), "--list", "members"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    with Store.open(store_path) as store:
        assert store.count("members") == 25 + 300_000


def _wait_until_writing(pid: int, path: Path, offset: int, store: Path) -> None:
    """Until process ``pid`` holds the store's write lock and has read ``path`` past
    ``offset`` (Linux's /proc tells): the import's transaction is under way, since the
    file's encoding is checked before the store is locked."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _read_past(pid, path, offset) and _write_locked(store):
            return
        time.sleep(0.005)
    raise AssertionError(f"the import did not write from past byte {offset} of {path} in 60 s")


def _read_past(pid: int, path: Path, offset: int) -> bool:
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if Path(os.readlink(fd)) != path:
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
        except OSError:
            continue  # closed meanwhile
        if int(info.split()[1]) > offset:
            return True
    return False


def _write_locked(store: Path) -> bool:
    probe = sqlite3.connect(store, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        probe.close()


def test_the_reader_waits_while_the_writer_binds_a_chunk() -> None:
    """While the writer holds ``binding`` the reader makes at most ``PAUSE_EVERY`` more
    items, then waits: a reader running through its chunk meanwhile would keep taking the
    interpreter's lock from the binding writer. Released, everything comes through."""
    made: list[int] = []

    def counted() -> Iterator[int]:
        for n in range(PAUSE_EVERY * 5):
            made.append(n)
            yield n

    binding = threading.Lock()
    seen: list[int] = []
    with binding:
        consumer = threading.Thread(
            target=lambda: seen.extend(read_ahead(counted(), PAUSE_EVERY * 5, paused_by=binding))
        )
        consumer.start()
        deadline = time.monotonic() + 5
        while len(made) < PAUSE_EVERY and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # time enough to run through the rest, were it not paused
        assert len(made) == PAUSE_EVERY
        assert seen == []
    consumer.join(timeout=10)
    assert seen == list(range(PAUSE_EVERY * 5))


def test_prompt_handover_lowers_the_switch_interval_and_always_restores_it() -> None:
    before = sys.getswitchinterval()
    with prompt_handover():
        assert sys.getswitchinterval() == pytest.approx(HANDOVER_SECONDS)
    assert sys.getswitchinterval() == before
    with pytest.raises(KeyboardInterrupt), prompt_handover():
        raise KeyboardInterrupt
    assert sys.getswitchinterval() == before


def orphans(store: Store) -> int:
    """Memberships and status events whose subscriber or list is not in the store."""
    return int(
        store.db.scalar(
            "SELECT (SELECT COUNT(*) FROM memberships m LEFT JOIN subscribers s "
            "ON s.id = m.subscriber_id LEFT JOIN lists l ON l.id = m.list_id "
            "WHERE s.id IS NULL OR l.id IS NULL) + (SELECT COUNT(*) FROM status_events e "
            "LEFT JOIN subscribers s ON s.id = e.subscriber_id WHERE s.id IS NULL)"
        )
    )


def assert_references_checked(store: Store) -> None:
    with pytest.raises(StoreError, match=r"(?i)foreign key"):
        store.db.execute(
            "INSERT INTO memberships (list_id, subscriber_id, created_at) VALUES (?, ?, 'now')",
            (store.list_id("members"), 10**9),
        )


def test_an_import_leaves_every_reference_sound_and_the_checks_on(
    store: Store, tmp_path: Path
) -> None:
    """On SQLite the import writes memberships and events without the store checking each
    reference (each id was read from the store in the same transaction); afterwards every
    reference holds, and the connection checks them again, after a failed import too."""
    store.add("p5@example.org", "Known", "members")
    store.add("left@example.org", "Left", "members")
    store.set_status("left@example.org", SubscriberStatus.UNSUBSCRIBED, "test")
    rows = "".join(f"p{n}@example.org,Person {n}\n" for n in range(STREAM_CHUNK + 50))
    path = tmp_path / "people.csv"
    path.write_text(f"email,name\n{rows}p7@example.org,Again\nleft@example.org,L\n")
    report = import_csv(store, path, "members", force=True)
    assert report.added == STREAM_CHUNK + 49  # p5 was on the list already
    assert orphans(store) == 0
    members = store.db.scalar(
        "SELECT COUNT(*) FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id"
    )
    assert members == store.count() == STREAM_CHUNK + 51
    assert_references_checked(store)

    broken = tmp_path / "broken.csv"
    broken.write_text(f'email,name\n{rows}bad@example.org,"{"x" * 200_000}\n', encoding="utf-8")
    with pytest.raises(ImportFileError):
        import_csv(store, broken, "members")
    assert_references_checked(store)
