"""The import's staging rows go to PostgreSQL through COPY, and arrive exactly as sent.

COPY's text format gives tabs, newlines and backslashes a meaning of their own (column and
row ends, escapes, ``\\N`` for NULL), so values full of them are imported on both backends
and compared with what went in. A CSV refuses tabs and line breaks in names and attributes
(a header cannot carry them), so those come through ``upsert_stream``, as ``add`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from conftest import postgres_url
from newsletter.store import Store, import_csv
from newsletter.store.upsert import NewSubscriber

ODD_NAMES = (
    'Anne "the Quote" O\'Brien',
    "Back\\slash \\N \\t \\\\ end\\",
    "Tab\tinside\tname",
    "Line\nbreak\r\nand carriage",
    "\\N",
    "",
    "Zoë Ångström, ünïcode; 漢字 🙂",
)
ODD_ATTRIBUTES = {
    "quote": 'say "hi"',
    "back\\slash": "C:\\path\\to\\file",
    "tab": "a\tb",
    "json": '{"nested": "\\u0000 is not a NUL here"}',
    "newline": "one\ntwo",
}


@pytest.fixture
def store(list_store: Store) -> Store:
    return list_store


def test_odd_names_and_attributes_round_trip_exactly(store: Store) -> None:
    records = [
        NewSubscriber(f"odd{n}@example.org", name, {**ODD_ATTRIBUTES, "n": name}, line=n + 2)
        for n, name in enumerate(ODD_NAMES)
    ]
    counts = store.upsert_stream(records, "members", on_duplicate=lambda r, f: None, chunk=4)
    assert counts.added == len(ODD_NAMES)
    rows = store.db.all("SELECT email, name, attributes FROM subscribers ORDER BY id")
    assert [(email, name, orjson.loads(attributes)) for email, name, attributes in rows] == [
        (record.email, record.name, dict(record.attributes)) for record in records
    ]


def test_a_bad_row_among_odd_values_is_named_and_the_rest_imported(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "odd.csv"
    path.write_text(
        "email,name,note\n"
        'a@example.org,"Quote ""inside"", comma",back\\slash\n'
        "not-an-address,Bad,row\n"
        'b@example.org,Back\\slash \\N,"say ""\\t"" \\N"\n',
        encoding="utf-8",
    )
    report = import_csv(store, path, "members")
    assert [error.line for error in report.errors] == [3]
    rows = store.db.all("SELECT email, name, attributes FROM subscribers ORDER BY id")
    assert [(email, name, orjson.loads(attributes)) for email, name, attributes in rows] == [
        ("a@example.org", 'Quote "inside", comma', {"note": "back\\slash"}),
        ("b@example.org", "Back\\slash \\N", {"note": 'say "\\t" \\N'}),
    ]


def test_postgresql_stages_the_rows_with_copy(postgres_cluster: Any) -> None:
    """The server's own statement log shows which statements the import sent."""
    url = postgres_url(postgres_cluster) + "%20-clog_statement%3Dall"
    store = Store.open(url)
    try:
        store.ensure_list("members")
        before = len(postgres_cluster.log())
        records = [NewSubscriber(f"p{n}@example.org", f"P {n}", line=n) for n in range(2, 12)]
        store.upsert_stream(records, "members", on_duplicate=lambda r, f: None, chunk=4)
        log = postgres_cluster.log()[before:]
    finally:
        store.close()
    assert log.count("COPY import_rows (seq, line, email, email_key, name, attributes)") == 3
    assert "INSERT INTO import_rows" not in log
    assert store_count(url) == 10


def store_count(url: str) -> int:
    store = Store.open(url)
    try:
        return int(store.db.scalar("SELECT COUNT(*) FROM subscribers"))
    finally:
        store.close()
