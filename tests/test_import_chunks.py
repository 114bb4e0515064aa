"""An import's chunks, on both stores: new people are told from known ones by the insert
itself on PostgreSQL, so known people, repeats, refusals and erasures are mixed into the
same chunks as new ones here, and a chunk boundary falls on a refused row."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from newsletter.store import Store, import_csv
from newsletter.store.erasure import forget
from newsletter.store.subscribers import NewSubscriber
from newsletter.store.upsert import STREAM_CHUNK


@pytest.fixture
def store(list_store: Store) -> Store:
    return list_store


def events(store: Store, email: str) -> list[tuple[str, str]]:
    return [
        (str(event.status), event.detail)
        for event in store.events(store.get(email).id)  # type: ignore[union-attr]
    ]


def test_a_refused_row_at_a_chunk_boundary_and_a_repeat_after_it(
    store: Store, tmp_path: Path
) -> None:
    rows = [f"p{n}@example.org,Person {n}" for n in range(STREAM_CHUNK + 3)]
    # The first chunk is the first STREAM_CHUNK rows; the refused row comes right after
    # it, and the next chunk opens with a repeat of line 2.
    rows[STREAM_CHUNK] = "not-an-address,Bad Row"
    rows[STREAM_CHUNK + 1] = "P0@Example.org,Again"
    path = tmp_path / "people.csv"
    path.write_text("email,name\n" + "\n".join(rows) + "\n", encoding="utf-8")

    report = import_csv(store, path, "members")

    assert (report.added, report.invalid, report.duplicates) == (STREAM_CHUNK + 1, 1, 1)
    assert [(e.line, e.message.split(";")[0]) for e in report.errors] == [
        (STREAM_CHUNK + 2, report.errors[0].message.split(";")[0]),
        (STREAM_CHUNK + 3, "P0@example.org is a duplicate of line 2"),
    ]
    assert "not-an-address" in report.errors[0].message
    assert store.count() == STREAM_CHUNK + 1
    assert store.get("p0@example.org").name == "Person 0"  # type: ignore[union-attr]
    last = f"p{STREAM_CHUNK + 2}@example.org"
    assert events(store, last) == [("subscribed", "added")]
    assert store.db.scalar("SELECT COUNT(*) FROM memberships") == STREAM_CHUNK + 1
    assert store.db.scalar("SELECT COUNT(*) FROM status_events") == 0  # the rows hold it


def test_known_people_in_a_chunk_of_new_ones_keep_their_rules(
    store: Store, tmp_path: Path
) -> None:
    store.upsert_many(
        [
            NewSubscriber("ann@example.org", "Ann", {"town": "Leeds"}),
            NewSubscriber("ben@example.org", "Ben"),
            NewSubscriber("eve@example.org", "Eve"),
            NewSubscriber("sam@example.org", "Sam", {"town": "York"}),
        ],
        "members",
    )
    store.upsert_many([NewSubscriber("pat@example.org", "Pat")], "partners")
    store.unsubscribe("ben@example.org", source="link")
    forget(store, "eve@example.org")
    path = tmp_path / "mixed.csv"
    path.write_text(
        "email,name,team\n"
        "new1@example.org,New One,a\n"
        "ann@example.org,Ann Smith,b\n"
        "ben@example.org,Ben Again,c\n"
        "eve@example.org,Eve Again,d\n"
        "pat@example.org,,e\n"
        "sam@example.org,Sam,\n"
        "new2@example.org,New Two,f\n",
        encoding="utf-8",
    )

    report = import_csv(store, path, "members")

    assert (report.added, report.updated, report.unchanged) == (3, 1, 1)
    assert (report.skipped_unsubscribed, report.erased) == (1, 1)
    assert [e.line for e in report.errors] == [5]
    assert "erased at their request" in report.errors[0].message
    ann = store.get("ann@example.org")
    assert ann is not None and ann.name == "Ann Smith"
    assert orjson.loads(
        store.db.scalar("SELECT attributes FROM subscribers WHERE id = ?", (ann.id,))
    ) == {"team": "b", "town": "Leeds"}
    ben = store.get("ben@example.org")
    assert ben is not None and (str(ben.status), ben.name) == ("unsubscribed", "Ben")
    assert store.get("eve@example.org") is None
    assert [s.email for s in store.subscribers_of("members")] == [
        "ann@example.org", "sam@example.org", "pat@example.org",
        "new1@example.org", "new2@example.org",
    ]  # fmt: skip
    assert events(store, "new2@example.org") == [("subscribed", "added")]
    assert events(store, "ann@example.org") == [("subscribed", "added")]  # not added twice


def test_a_known_person_repeated_in_a_later_chunk_is_a_duplicate(store: Store) -> None:
    store.upsert_many([NewSubscriber("ann@example.org", "Ann")], "members")
    found: list[tuple[int, int]] = []
    records = [
        NewSubscriber("ann@example.org", "Ann B", line=2),
        NewSubscriber("a@example.org", "A", line=3),
        NewSubscriber("b@example.org", "B", line=4),
        NewSubscriber("ann@example.org", "Ann C", line=5),
        NewSubscriber("a@example.org", "A again", line=6),
    ]
    counts = store.upsert_stream(
        records, "members", on_duplicate=lambda r, first: found.append((r.line, first)), chunk=3
    )
    assert found == [(5, 2), (6, 3)]
    assert (counts.added, counts.updated, counts.unchanged) == (2, 1, 0)
    assert store.get("ann@example.org").name == "Ann B"  # type: ignore[union-attr]
    assert store.get("a@example.org").name == "A"  # type: ignore[union-attr]


def test_forced_back_in_a_chunk_of_new_people(store: Store) -> None:
    store.upsert_many([NewSubscriber("ben@example.org", "Ben")], "members")
    store.unsubscribe("ben@example.org", source="link")
    counts = store.upsert_many(
        [NewSubscriber("new@example.org"), NewSubscriber("ben@example.org")],
        "members",
        force=True,
    )
    assert (counts.added, counts.updated) == (1, 1)
    ben = store.get("ben@example.org")
    assert ben is not None and str(ben.status) == "subscribed"
    assert events(store, "ben@example.org")[-1] == ("subscribed", "added again with force")


def test_repeats_within_a_chunk_and_across_chunks_name_the_first_line(store: Store) -> None:
    found: list[tuple[int, int]] = []
    emails = ["a@x.org", "b@x.org", "a@x.org", "A@x.org", "c@x.org", "b@x.org", "a@x.org"]
    records = [NewSubscriber(email, f"P{n}", line=n) for n, email in enumerate(emails, 2)]
    counts = store.upsert_stream(
        records, "members", on_duplicate=lambda r, first: found.append((r.line, first)), chunk=4
    )
    assert found == [(4, 2), (5, 2), (7, 3), (8, 2)]
    assert counts.added == 3
    assert [(s.email, s.name) for s in store.subscribers_of("members")] == [
        ("a@x.org", "P2"), ("b@x.org", "P3"), ("c@x.org", "P6"),
    ]  # fmt: skip
