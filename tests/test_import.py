"""CSV import and export: forgiving about the file, exact about each row."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from newsletter.errors import ImportFileError
from newsletter.send_models import SubscriberStatus
from newsletter.store import Store, export_csv, import_csv

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "subscribers.csv"


@pytest.fixture
def store(list_store: Store) -> Store:
    return list_store


def write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "list.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def lines(report: object) -> list[tuple[int, str]]:
    return [(e.line, e.message) for e in report.errors]  # type: ignore[attr-defined]


def test_sample_file_imports_with_names_and_attributes(store: Store) -> None:
    report = import_csv(store, SAMPLE, "members")
    assert (report.rows, report.added, report.invalid, report.errors) == (25, 25, 0, [])
    zoe = store.get("zoe.fischer@example.org")
    assert zoe.name == "Zoë Fischer"
    assert zoe.attributes == {"organisation": "Harbour Schools Partnership"}
    assert store.count("members") == 25


def test_reimport_is_idempotent_and_changes_are_updates(store: Store, tmp_path: Path) -> None:
    import_csv(store, SAMPLE, "members")
    again = import_csv(store, SAMPLE, "members")
    assert (again.added, again.updated, again.unchanged) == (0, 0, 25)
    changed = write(tmp_path, "email,name,organisation\nben.okafor@example.com,Ben O,Trust\n")
    report = import_csv(store, changed, "members")
    assert (report.added, report.updated, report.unchanged) == (0, 1, 0)
    assert store.get("ben.okafor@example.com").name == "Ben O"
    other_list = import_csv(store, changed, "partners")
    assert other_list.added == 1  # already known, but new to this list
    assert store.memberships("ben.okafor@example.com") == ["members", "partners"]


def test_bom_and_semicolons_and_header_variants(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffE-mail Address;Full Name;Team\nann@example.org;Ann A;Ops\n")
    report = import_csv(store, path, "members")
    assert report.added == 1, report.errors
    assert store.get("ann@example.org").attributes == {"team": "Ops"}
    assert store.get("ann@example.org").name == "Ann A"


def test_cp1252_file_is_read_with_a_note(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "email,name\nrosa@example.net,Rosa Jiménez\n", encoding="cp1252")
    report = import_csv(store, path, "members")
    assert report.encoding == "cp1252"
    assert store.get("rosa@example.net").name == "Rosa Jiménez"
    assert any("Windows-1252" in note for note in report.notes)


def test_explicit_encoding_is_used(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "email,name\nrosa@example.net,Rosa Jiménez\n", encoding="latin-1")
    report = import_csv(store, path, "members", encoding="latin-1")
    assert report.notes == []
    assert store.get("rosa@example.net").name == "Rosa Jiménez"
    with pytest.raises(ImportFileError, match="unknown encoding 'klingon'"):
        import_csv(store, path, "members", encoding="klingon")


def test_missing_email_column_names_file_and_columns(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "address,name\nann@example.org,Ann\n")
    with pytest.raises(ImportFileError) as caught:
        import_csv(store, path, "members")
    message = str(caught.value)
    assert str(path) in message
    assert "no e-mail column; columns found: 'address', 'name'" in message
    assert "--map COLUMN=email" in message
    report = import_csv(store, path, "members", mapping={"address": "email"})
    assert report.added == 1


def test_map_overrides_and_ignores_columns(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "Mail,Given,Family,Secret\nann@example.org,Ann,Lee,x\n")
    mapping = {"mail": "email", "Given": "First_Name", "Family": "last_name", "Secret": "-"}
    import_csv(store, path, "members", mapping=mapping)
    ann = store.get("ann@example.org")
    assert (ann.name, ann.attributes) == ("Ann Lee", {})
    with pytest.raises(ImportFileError, match="--map Emial=email: there is no column 'Emial'"):
        import_csv(store, path, "members", mapping={"Emial": "email"})


def test_bad_rows_are_reported_with_their_line_numbers(store: Store, tmp_path: Path) -> None:
    text = (
        "email,name,organisation\n"  # 1
        "ann@example.org,Ann,Council\n"  # 2
        "ben@example.org,Ben\n"  # 3: a cell missing
        "cat@example.org,Cat,Smith, Jones and Co\n"  # 4: an unquoted comma
        "dan@example.org,Dan,Trust,,\n"  # 5: trailing empty cells are fine
        "\n"  # 6: blank
        'eve@example.org,"Eve\nMulti-line",Library\n'  # 7-8: a line break in the name
        "not-an-address,Fay,Council\n"  # 9
        "ANN@example.org,Ann Again,Council\n"  # 10: duplicate of 2
        ",No Address,Council\n"  # 11
    )
    report = import_csv(store, write(tmp_path, text), "members")
    assert report.rows == 8
    assert (report.added, report.invalid, report.duplicates) == (2, 5, 1)
    found = lines(report)
    assert [line for line, _ in found] == [3, 4, 7, 9, 10, 11]
    assert "expected 3 cells like the header, found 2" in found[0][1]
    assert "found 4; quote values that contain commas" in found[1][1]
    assert found[2][1] == (
        "eve@example.org: the name 'Eve\\nMulti-line' contains a line break (CR or LF), "
        "which an e-mail header cannot carry; correct the name"
    )
    assert "'not-an-address' is not a valid e-mail address" in found[3][1]
    assert found[4][1] == "ANN@example.org is a duplicate of line 2; line 2 is kept"
    assert found[5][1] == "no e-mail address given"
    assert store.get("ann@example.org").name == "Ann"
    assert store.get("dan@example.org").name == "Dan"
    assert store.get("eve@example.org") is None


def test_rows_no_transport_can_carry_are_refused_and_the_rest_imported(
    store: Store, tmp_path: Path
) -> None:
    text = (
        "email,first_name,last_name,team\n"  # 1
        "ann@example.org,Ann,Lee,Ops\n"  # 2
        "josé@example.org,José,Núñez,Ops\n"  # 3
        "ben@bücher.de,Ben,Okafor,Ops\n"  # 4: an internationalised domain is fine
        'cat@example.org,"Cat\r\nBcc: all@example.com",Smith,Ops\n'  # 5-6
        "dan@example.org,Dan\tTab,Jones,Ops\n"  # 7
        "eve@example.org,Eve,Null\x00,Ops\n"  # 8
        'fay@example.org,Fay,"Okafor, Jr.",Ops\n'  # 9: commas are fine
        'gus@example.org,Gus,Grey,"Ops\nBcc: x@example.com"\n'  # 10-11
    )
    report = import_csv(store, write(tmp_path, text), "members")
    assert (report.rows, report.added, report.invalid) == (8, 3, 5)
    assert lines(report) == [
        (3, "josé@example.org: the part before @ has non-ASCII characters (é); newsletter "
            "sends only to ASCII mailboxes, ask the person for another address"),
        (5, "cat@example.org: the first name 'Cat\\r\\nBcc: all@example.com' contains a line "
            "break (CR or LF), which an e-mail header cannot carry; correct the first name"),
        (7, "dan@example.org: the first name 'Dan\\tTab' contains a tab, which an e-mail "
            "header cannot carry; correct the first name"),
        (8, "eve@example.org: the last name 'Null\\x00' contains a NUL character (U+0000), "
            "which an e-mail header cannot carry; correct the last name"),
        (10, "gus@example.org: the attribute 'team' ('Ops\\nBcc: x@example.com') contains a "
             "line break (CR or LF); attributes can be merged into the subject, which must "
             "stay on one line, so correct the value"),
    ]  # fmt: skip
    assert [s.email for s in store.subscribers_of("members")] == [
        "ann@example.org",
        "ben@xn--bcher-kva.de",
        "fay@example.org",
    ]
    assert store.get("ben@bücher.de").name == "Ben Okafor"
    assert store.get("fay@example.org").name == "Fay Okafor, Jr."


def test_unsubscribed_people_are_not_added_back_without_force(store: Store, tmp_path: Path) -> None:
    import_csv(store, SAMPLE, "members")
    store.unsubscribe("ben.okafor@example.com", source="link")
    store.set_status("chloe.martin@example.net", "complained", "provider")
    report = import_csv(store, SAMPLE, "members")
    assert (report.skipped_unsubscribed, report.unchanged) == (2, 23)
    assert "not added back (lines 3, 4)" in report.notes[0]
    assert store.get("ben.okafor@example.com").status is SubscriberStatus.UNSUBSCRIBED
    forced = import_csv(store, SAMPLE, "members", force=True)
    assert (forced.skipped_unsubscribed, forced.updated) == (0, 2)
    assert store.get("chloe.martin@example.net").status is SubscriberStatus.SUBSCRIBED


def test_unusable_files(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="cannot read the file"):
        import_csv(store, tmp_path / "missing.csv", "members")
    with pytest.raises(ImportFileError, match="the file is empty"):
        import_csv(store, write(tmp_path, ""), "members")
    with pytest.raises(ImportFileError, match="the column 'Email' appears twice in the header"):
        import_csv(store, write(tmp_path, "email,Email\na@example.org,b@example.org\n"), "members")
    only_bad = import_csv(store, write(tmp_path, "email\nnope\nstill-nope\n"), "members")
    assert only_bad.all_failed


def test_status_column_is_not_imported(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "email,status\nann@example.org,unsubscribed\n")
    report = import_csv(store, path, "members")
    assert store.get("ann@example.org").status is SubscriberStatus.SUBSCRIBED
    assert "never changes a subscriber's status" in report.notes[0]


def test_export_round_trips(store: Store, tmp_path: Path) -> None:
    import_csv(store, SAMPLE, "members")
    store.unsubscribe("ben.okafor@example.com")
    out = io.StringIO()
    assert export_csv(store, "members", out) == 25
    text = out.getvalue()
    assert text.splitlines()[0] == "email,name,status,organisation"
    assert "ben.okafor@example.com,Ben Okafor,unsubscribed,Riverside NHS Trust" in text
    report = import_csv(store, write(tmp_path, text, name="export.csv"), "partners")
    assert (report.added, report.skipped_unsubscribed) == (24, 1)
    assert store.get("zoe.fischer@example.org").name == "Zoë Fischer"


def test_hundred_thousand_rows_import_in_one_go(store: Store, tmp_path: Path) -> None:
    rows = "".join(f"person{i}@example.org,Person {i},Org {i % 50}\n" for i in range(100_000))
    path = write(tmp_path, "email,name,organisation\n" + rows)
    report = import_csv(store, path, "members")
    assert report.added == 100_000
