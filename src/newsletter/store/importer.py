"""Subscriber CSV files in and out.

Lists arrive from spreadsheets, so the importer is forgiving about the file (a BOM,
Windows-1252, semicolons, "E-mail Address" headers, trailing empty cells) and strict about
the rows: every row it cannot use is reported with its line number, and the rows it can use
are written in one transaction, so a failed import leaves the store as it was. Exports go
back to spreadsheets, so their cells are neutralised against formulas (``spreadsheet``),
and an import takes that neutralising off again.
"""

from __future__ import annotations

import codecs
import csv
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..addresses import check_attributes, check_name, normalise_address, plain_text
from ..errors import ImportFileError, InvalidRecipient
from ..merge import BUILT_IN_FIELDS
from ..send_models import SubscriberStatus
from ..spreadsheet import TEXT_MARK, restore, write_row
from .erasure import ERASED_REASON, refuse_erased
from .readahead import prompt_handover, read_ahead
from .subscribers import NewSubscriber, Store
from .upsert import STREAM_CHUNK, StagedRow, address_key, dumps_attributes

EMAIL, NAME, FIRST, LAST, IGNORE = "email", "name", "first_name", "last_name", "-"
FIELDS = (EMAIL, NAME, FIRST, LAST)
_DEFAULT_HEADERS = {
    EMAIL: {"email", "e-mail", "email address", "e-mail address", "email_address", "mail"},
    NAME: {"name", "full name", "full_name", "fullname"},
    FIRST: {"first_name", "first name", "firstname", "given name", "forename"},
    LAST: {"last_name", "last name", "lastname", "surname", "family name"},
    # An import never changes consent, so an exported status column is not read back.
    IGNORE: {"status"},
}
_SHOWN_LINES = 10
_BLOCK = 1 << 20
MAX_ERRORS = 1000
"""Row errors kept for the report; past this only the count grows, so memory stays flat."""


@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportReport:
    path: str
    list_name: str
    encoding: str = "utf-8"
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_unsubscribed: int = 0
    invalid: int = 0
    """Rows that could not be used: an address, name or attribute no transport can carry,
    or the wrong number of cells."""
    duplicates: int = 0
    """Later rows repeating an address seen earlier in the file; the first one is kept."""
    erased: int = 0
    """Rows of people erased at their request (``subscribers forget``): never re-added."""
    errors: list[RowError] = field(default_factory=list)
    """The first ``MAX_ERRORS`` problems by line; ``more_errors`` counts the rest."""
    more_errors: int = 0
    notes: list[str] = field(default_factory=list)
    _errors_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    """Rows are checked in one thread while duplicates are found in another."""

    def add_error(self, line: int, message: str) -> None:
        with self._errors_lock:
            self.errors.append(RowError(line, message))
            if len(self.errors) >= 2 * MAX_ERRORS:  # trimmed now and then, not on every row
                self._trim_errors()

    def finish_errors(self) -> None:
        """Errors in line order, the first ``MAX_ERRORS`` kept."""
        with self._errors_lock:
            self._trim_errors()

    def _trim_errors(self) -> None:
        self.errors.sort(key=lambda error: error.line)
        self.more_errors += max(0, len(self.errors) - MAX_ERRORS)
        del self.errors[MAX_ERRORS:]

    @property
    def imported(self) -> int:
        return self.added + self.updated + self.unchanged

    @property
    def all_failed(self) -> bool:
        """Every data row was unusable: the file is wrong, not a few of its rows."""
        return self.rows > 0 and self.invalid == self.rows


def import_csv(
    store: Store,
    path: str | Path,
    list_name: str,
    *,
    mapping: Mapping[str, str] | None = None,
    force: bool = False,
    source: str = "import",
    encoding: str | None = None,
) -> ImportReport:
    """Add or update the subscribers of a CSV file on ``list_name``.

    ``mapping`` maps a CSV column to ``email``, ``name``, ``first_name``, ``last_name``,
    ``-`` (ignore it) or an attribute name; it overrides the recognised headers.
    """
    path = Path(path)
    store.list_id(list_name)  # an unknown list fails before the file is read
    codec, used = _text_encoding(path, encoding)
    report = ImportReport(path=str(path), list_name=list_name, encoding=used)
    if used == "cp1252" and encoding is None:
        report.notes.append(
            "the file is not UTF-8, so it was read as Windows-1252 (cp1252); if names look "
            "wrong, pass --encoding with the right one"
        )
    with _open_text(path, codec) as handle:
        reader = csv.reader(handle, delimiter=_delimiter(handle))
        rows = _numbered_rows(reader, path)
        header = [cell.lstrip("\ufeff") for cell in next(rows, (1, []))[1]]
        if not header or not any(cell.strip() for cell in header):
            raise ImportFileError(
                f"{path}: the file is empty; expected a header row such as 'email,name'"
            )
        columns = _columns(path, header, mapping or {}, report)

        def duplicate(record: StagedRow, first_line: int) -> None:
            report.duplicates += 1
            report.add_error(
                record.line,
                f"{record.email} is a duplicate of line {first_line}; line {first_line} is kept",
            )

        def erased(record: StagedRow, when: str) -> None:
            report.erased += 1
            report.add_error(record.line, f"{record.email} {ERASED_REASON.format(when[:10])}")

        # Rows are read and checked a chunk ahead, in a thread, while the store writes;
        # erased addresses are looked up here, in the thread that holds the transaction.
        # The reader waits while the writer binds a chunk, and each thread gets the
        # interpreter's lock back from the other promptly (``readahead``).
        binding = threading.Lock()
        ahead = read_ahead(
            _records(rows, header, columns, report), STREAM_CHUNK, paused_by=binding
        )
        with closing(ahead), prompt_handover():
            counts = store.upsert_rows(
                refuse_erased(store, ahead, erased),
                list_name,
                force=force,
                source=source,
                on_duplicate=duplicate,
                binding=binding,
            )
    report.finish_errors()
    report.added, report.updated, report.unchanged = counts.added, counts.updated, counts.unchanged
    report.skipped_unsubscribed = counts.skipped_unsubscribed
    if counts.skipped_lines:
        lines = ", ".join(str(n) for n in sorted(counts.skipped_lines)[:_SHOWN_LINES])
        more = ", ..." if counts.skipped_unsubscribed > _SHOWN_LINES else ""
        report.notes.append(
            f"{counts.skipped_unsubscribed} address(es) left earlier (unsubscribed, bounced or "
            f"complained) and were not added back (lines {lines}{more}); use --force only for "
            "people who asked to rejoin"
        )
    return report


def _records(
    rows: Iterator[tuple[int, list[str]]],
    header: list[str],
    columns: list[str],
    report: ImportReport,
) -> Iterator[StagedRow]:
    """The usable rows, ready for the staging table, one at a time; unusable ones go to
    the report.

    A million rows make this the import's hot loop, run in the thread that reads ahead,
    so each row leaves it in the form the store binds as it is (``StagedRow``): the
    thread that writes, the import's slower half, does no work per row. A row whose
    text is plainly fine (the right number of cells, printable, short, no spreadsheet
    mark) takes a short way: its cells are picked by position and only its address is
    checked, since such text passes every name and attribute check (``plain_text``).
    Any other row takes ``_record``, which checks each cell and says what is wrong.
    """
    width = len(header)
    email_at = columns.index(EMAIL)
    name_at, first_at, last_at = (
        columns.index(target) if target in columns else None for target in (NAME, FIRST, LAST)
    )
    attribute_at = [
        (index, target)
        for index, target in enumerate(columns)
        if target not in FIELDS and target != IGNORE
    ]
    for line, row in rows:
        text = "".join(row)  # one string for every test below
        if not text or text.isspace():
            continue
        report.rows += 1
        if len(row) != width or TEXT_MARK in text or not plain_text(text):
            record = _record(row, header, columns, line, report)
            if record is not None:
                yield _staged(line, record.email, record.name, record.attributes)
            continue
        try:
            email = normalise_address(row[email_at])
        except InvalidRecipient as exc:
            report.invalid += 1
            report.add_error(line, exc.message)
            continue
        name = row[name_at].strip() if name_at is not None else ""
        if not name and (first_at is not None or last_at is not None):
            parts = (row[at].strip() for at in (first_at, last_at) if at is not None)
            name = " ".join(part for part in parts if part)
        attributes = {key: value for at, key in attribute_at if (value := row[at].strip())}
        yield _staged(line, email, name, attributes)


def _staged(line: int, email: str, name: str, attributes: Mapping[str, str]) -> StagedRow:
    """A checked row as the store stages it; its line is its place in the stream too,
    since lines only grow."""
    attributes_json = dumps_attributes(attributes) if attributes else "{}"
    return StagedRow(line, line, email, address_key(email), name, attributes_json)


def _text_encoding(path: Path, encoding: str | None) -> tuple[str, str]:
    """The codec to read ``path`` with and the encoding to report, the file checked whole.

    The check decodes the file in blocks without keeping it, so a bad byte is reported
    (with its offset) before anything is imported, as when the file was read in one go.
    """
    try:
        with path.open("rb") as probe:
            start = probe.read(2)
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    if encoding is None and start in (b"\xff\xfe", b"\xfe\xff"):
        encoding = "utf-16"  # what Excel's "Unicode text" writes
    if encoding is not None:
        try:
            bad = _first_undecodable(path, encoding)
        except LookupError:
            raise ImportFileError(
                f"{path}: unknown encoding {encoding!r}; try utf-8, cp1252 or latin-1"
            ) from None
        if bad is not None:
            raise ImportFileError(
                f"{path}: not valid {encoding}: byte 0x{bad[0]:02x} at offset "
                f"{bad[1]}; pass the file's real encoding with --encoding"
            )
        return encoding, encoding
    if _first_undecodable(path, "utf-8") is None:
        return "utf-8-sig", "utf-8"
    bad = _first_undecodable(path, "cp1252")
    if bad is not None:
        raise ImportFileError(
            f"{path}: neither UTF-8 nor Windows-1252 (byte 0x{bad[0]:02x} at offset "
            f"{bad[1]}); save it as UTF-8 CSV or pass its encoding with --encoding"
        )
    return "cp1252", "cp1252"


def _numbered_rows(reader: Any, path: Path) -> Iterator[tuple[int, list[str]]]:
    """Each row with the line it starts on (a quoted cell may span lines); a row the csv
    module cannot read at all stops the import before anything is written."""
    start = reader.line_num + 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ImportFileError(
            f"{path}:{start}: cannot be read as CSV: {exc}",
            hint="a cell this long is usually a quote that is never closed: check the "
            "quotes from that line on",
        ) from None


def _first_undecodable(path: Path, encoding: str) -> tuple[int, int] | None:
    """The first byte (and its offset) that ``encoding`` cannot decode; None if none."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    try:
        with path.open("rb") as data:
            while block := data.read(_BLOCK):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    return block[exc.start], offset + exc.start
                offset += len(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return (exc.object[exc.start] if exc.object else 0), offset
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    return None


def _open_text(path: Path, codec: str) -> TextIO:
    try:
        return path.open(encoding=codec, newline="")
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read the file: {exc.strerror or exc}") from None


def _delimiter(handle: TextIO) -> str:
    """Spreadsheets in many locales write ';' or tabs; the header line tells which."""
    first = handle.readline()
    handle.seek(0)
    return max((",", ";", "\t"), key=first.count) if first else ","


def _attribute_name(header: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", header.strip().lower()).strip("_")


def _columns(
    path: Path, header: list[str], mapping: Mapping[str, str], report: ImportReport
) -> list[str]:
    """What each column holds: a field from FIELDS, IGNORE, or an attribute name."""
    by_name = {cell.strip().lower(): index for index, cell in enumerate(header)}
    seen: set[str] = set()
    for cell in header:
        name = cell.strip().lower()
        if name and name in seen:
            raise ImportFileError(
                f"{path}: the column {cell.strip()!r} appears twice in the header; rename one"
            )
        seen.add(name)
    columns: list[str | None] = [None] * len(header)
    for column, target in mapping.items():
        index = by_name.get(column.strip().lower())
        if index is None:
            raise ImportFileError(
                f"{path}: --map {column}={target}: there is no column {column!r}; "
                f"columns found: {', '.join(h.strip() for h in header)}"
            )
        target = target.strip()
        columns[index] = target.lower() if target.lower() in FIELDS else (target or IGNORE)
    mapped = set(columns)
    for index, cell in enumerate(header):
        if columns[index] is not None:
            continue
        name = cell.strip().lower()
        known = next((f for f, names in _DEFAULT_HEADERS.items() if name in names), None)
        if not name:
            columns[index] = IGNORE
        elif known is not None and (known == IGNORE or known not in mapped):
            columns[index] = known
            mapped.add(known)
            if known == IGNORE:
                report.notes.append(
                    f"column {cell.strip()!r} was not imported: an import never changes a "
                    f"subscriber's status (use --map {cell.strip()}=NAME to keep it as an "
                    "attribute)"
                )
        else:
            columns[index] = _attribute_name(cell)
    _refuse_shadowing_columns(path, header, columns)
    if EMAIL not in columns:
        raise ImportFileError(
            f"{path}: no e-mail column; columns found: "
            f"{', '.join(repr(h.strip()) for h in header)}",
            hint="name one column 'email' (or 'e-mail', 'email address'), or say which "
            "column holds addresses with --map COLUMN=email",
        )
    return [c or IGNORE for c in columns]


def _refuse_shadowing_columns(path: Path, header: list[str], columns: list[str | None]) -> None:
    """A column kept as an attribute may not take a name the tool fills itself.

    Such a column (a second 'email', an 'unsubscribe_url') would replace the subscriber's
    own value or the signed unsubscribe link in every message, so the file is refused
    before anything is read, rather than a guess made about what the column meant.
    """
    for index, (cell, target) in enumerate(zip(header, columns, strict=True)):
        if target in FIELDS and columns.index(target) != index:
            first = header[columns.index(target)].strip()
            problem = f"would fill {target!r} again, which column {first!r} fills already"
        elif target in BUILT_IN_FIELDS and target not in FIELDS:
            problem = (
                f"would be kept as the attribute {target!r}, but that is a built-in merge "
                f"field ({', '.join(sorted(BUILT_IN_FIELDS))}) which the tool fills itself"
            )
        else:
            continue
        raise ImportFileError(
            f"{path}: the column {cell.strip()!r} {problem}",
            hint=f"rename the column, leave it out with --map '{cell.strip()}=-', or keep it "
            f"under another name with --map '{cell.strip()}=NEW_NAME'",
        )


def _record(
    row: list[str], header: list[str], columns: list[str], line: int, report: ImportReport
) -> NewSubscriber | None:
    if len(row) > len(header) and not any(cell.strip() for cell in row[len(header) :]):
        row = row[: len(header)]  # trailing empty cells, as spreadsheets often write
    if len(row) != len(header):
        report.invalid += 1
        fix = (
            "quote values that contain commas"
            if len(row) > len(header)
            else "check for a missing separator or a line break inside a value"
        )
        report.add_error(
            line, f"expected {len(header)} cells like the header, found {len(row)}; {fix}"
        )
        return None
    values: dict[str, str] = {}
    attributes: dict[str, str] = {}
    for target, cell in zip(columns, row, strict=True):
        if target == IGNORE:
            continue
        value = cell.strip()
        if value[:1] == TEXT_MARK:
            value = restore(value)
        if target in FIELDS:
            values[target] = value
        elif value:
            attributes[target] = value
    try:
        email, name, attributes = _checked(values, attributes)
    except InvalidRecipient as exc:
        report.invalid += 1
        report.add_error(line, exc.message)
        return None
    return NewSubscriber(email=email, name=name, attributes=attributes, line=line)


def _checked(
    values: Mapping[str, str], attributes: Mapping[str, str]
) -> tuple[str, str, dict[str, str]]:
    """The row's address, name and attributes as stored; InvalidRecipient names the address.

    First and last names are checked as they were given, so a message names the column.
    """
    email = normalise_address(values.get(EMAIL, ""))
    try:
        first = check_name(values.get(FIRST, ""), label="first name")
        last = check_name(values.get(LAST, ""), label="last name")
        name = check_name(values.get(NAME, "")) or check_name(
            " ".join(part for part in (first, last) if part)
        )
        return email, name, check_attributes(attributes)
    except InvalidRecipient as exc:
        raise InvalidRecipient(f"{email}: {exc.message}") from None


def export_csv(
    store: Store,
    list_name: str,
    out: TextIO,
    *,
    status: SubscriberStatus | None = None,
) -> int:
    """Write a list as CSV (email, name, status, one column per attribute); returns the rows.

    Reads the list twice, streaming, so the attribute columns are known without holding
    every subscriber in memory. Cells a spreadsheet would run as formulas are neutralised
    (``spreadsheet``); ``import_csv`` reads them back as they were.
    """
    keys: set[str] = set()
    for subscriber in store.subscribers_of(list_name, status):
        keys.update(subscriber.attributes)
    attribute_keys = sorted(keys - {EMAIL, NAME, "status"})
    write_row(out, [EMAIL, NAME, "status", *attribute_keys])
    written = 0
    for subscriber in store.subscribers_of(list_name, status):
        write_row(
            out,
            [
                subscriber.email,
                subscriber.name,
                str(subscriber.status),
                *(subscriber.attributes.get(key, "") for key in attribute_keys),
            ],
        )
        written += 1
    return written
