"""A large import streams: chunk by chunk in one transaction, errors kept in bounds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.errors import StoreError
from newsletter.store import Store, import_csv
from newsletter.store.importer import MAX_ERRORS
from newsletter.store.subscribers import NewSubscriber


@pytest.fixture
def store(list_store: Store) -> Store:
    return list_store


def people(*emails: str) -> list[NewSubscriber]:
    return [NewSubscriber(email, f"Person {n}", line=n) for n, email in enumerate(emails, 2)]


def test_duplicates_are_found_across_chunks_and_named_with_the_first_line(store: Store) -> None:
    found: list[tuple[int, int]] = []
    records = people("a@x.org", "b@x.org", "c@x.org", "A@x.org", "d@x.org", "b@x.org", "c@x.org")
    counts = store.upsert_stream(
        records, "members", on_duplicate=lambda r, first: found.append((r.line, first)), chunk=2
    )
    assert found == [(5, 2), (7, 3), (8, 4)]
    assert counts.added == 4
    assert [s.email for s in store.subscribers_of("members")] == [
        "a@x.org", "b@x.org", "c@x.org", "d@x.org",
    ]  # fmt: skip


@pytest.mark.parametrize("someone_before", [False, True], ids=["empty store", "someone before"])
def test_repeats_in_a_chunk_and_across_chunks_name_the_first_line(
    store: Store, someone_before: bool
) -> None:
    """An import into an empty SQLite store tells repeats by the store's own index of
    addresses, any other by a table of the addresses seen: the same repeats either way."""
    if someone_before:
        store.add("zed@x.org", "Zed", "partners")
    found: list[tuple[int, int]] = []
    records = people(
        "a@x.org", "b@x.org", "a@x.org",  # a repeat inside the first chunk
        "A@x.org", "c@x.org", "b@x.org",  # repeats of the first chunk
        "c@x.org", "c@x.org", "d@x.org",  # a repeat of the chunk before, twice
    )  # fmt: skip
    counts = store.upsert_stream(
        records, "members", on_duplicate=lambda r, first: found.append((r.line, first)), chunk=3
    )
    assert found == [(4, 2), (5, 2), (7, 3), (8, 6), (9, 6)]
    assert counts.added == 4
    emails = [s.email for s in store.subscribers_of("members")]
    assert emails == ["a@x.org", "b@x.org", "c@x.org", "d@x.org"]
    assert [s.name for s in store.subscribers_of("members")] == [
        "Person 2", "Person 3", "Person 6", "Person 10",
    ]  # fmt: skip


def test_a_stream_that_fails_half_way_changes_nothing(store: Store) -> None:
    def failing() -> Iterator[NewSubscriber]:
        yield from people("a@x.org", "b@x.org", "c@x.org", "d@x.org", "e@x.org")
        raise StoreError("the file went away")

    with pytest.raises(StoreError, match="went away"):
        store.upsert_stream(failing(), "members", on_duplicate=lambda r, f: None, chunk=2)
    assert store.count() == 0
    # The same import runs again cleanly afterwards.
    counts = store.upsert_stream(people("a@x.org"), "members", on_duplicate=lambda r, f: None)
    assert counts.added == 1


def test_row_errors_are_kept_in_bounds_and_in_line_order(store: Store, tmp_path: Path) -> None:
    bad = 2 * MAX_ERRORS + 500
    rows = [f"bad-{n},Bad\n" if n % 2 else f"ok{n}@example.org,Ok\n" for n in range(2 * bad)]
    rows.append("ok0@example.org,Again\n")
    path = tmp_path / "big.csv"
    path.write_text("email,name\n" + "".join(rows), encoding="utf-8")
    report = import_csv(store, path, "members")
    assert (report.invalid, report.duplicates, report.added) == (bad, 1, bad)
    assert len(report.errors) == MAX_ERRORS
    assert report.more_errors == bad + 1 - MAX_ERRORS
    lines = [error.line for error in report.errors]
    assert lines == sorted(lines) and lines[0] == 3
    assert report.errors[0].message.startswith("'bad-1' is not a valid e-mail address")
