"""CSV files that a spreadsheet opens without running anything in them.

Excel, LibreOffice and Google Sheets treat a cell whose text starts with ``=``, ``+``,
``-`` or ``@`` (and, after trimming, a tab or a carriage return) as a formula, so a
subscriber named ``=HYPERLINK(...)`` would become a live link or a command in whoever opens
an export. Following OWASP's rule for CSV injection, such a cell is written with a leading
``'`` (which spreadsheets read as "this is text") and in double quotes.

The importer reads its own exports back: ``restore`` removes that one ``'`` again, so an
export imported again gives the values it was made from. A value that itself starts with
``'`` is given a second one on the way out for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting with one of these is a formula to a spreadsheet."""
TEXT_MARK = "'"
_NEEDS_QUOTES = frozenset(',"\r\n')


def neutralise(text: str) -> str:
    """The cell as a spreadsheet shows it as text: ``'`` before a formula (or a ``'``)."""
    if text.startswith(FORMULA_START) or text.startswith(TEXT_MARK):
        return TEXT_MARK + text
    return text


def restore(text: str) -> str:
    """A cell of an export as it was before ``neutralise``; any other text as it is."""
    if text.startswith(TEXT_MARK) and text[1:].startswith((*FORMULA_START, TEXT_MARK)):
        return text[1:]
    return text


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    safe = neutralise(text)
    if safe != text or not _NEEDS_QUOTES.isdisjoint(text):
        return '"' + safe.replace('"', '""') + '"'
    return text


def write_row(out: TextIO, cells: Iterable[object]) -> None:
    """One CSV line (RFC 4180 quoting, "\\n" ends it) with every cell neutralised.

    Written by hand rather than with ``csv.writer`` because that quotes only cells holding
    a separator, a quote or a line break, and a neutralised cell must be quoted as well.
    """
    out.write(",".join(map(_cell, cells)) + "\n")
