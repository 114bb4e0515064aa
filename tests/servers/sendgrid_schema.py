"""Where SendGrid's published API descriptions are, and what went unchecked without them.

They live beside the project (``../shared/sendgrid``) or where ``SENDGRID_SCHEMA_DIR``
says. A clone without them still runs every test: only the comparison with the schema is
left out, and the run's summary says so once (``conftest.pytest_terminal_summary``), so a
test whose own assertions ran is never reported as skipped.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

SCHEMA_DIR = Path(
    os.environ.get("SENDGRID_SCHEMA_DIR")
    or Path(__file__).resolve().parents[3] / "shared" / "sendgrid"
)
UNCHECKED: Counter[str] = Counter()
"""Schema file -> how many bodies or answers were not compared with it."""


def comparable(schema_file: Path) -> bool:
    """True when ``schema_file`` is there; else the comparison is counted as left out."""
    if schema_file.is_file():
        return True
    UNCHECKED[str(schema_file)] += 1
    return False


def require(schema_file: Path) -> None:
    """For a test that is nothing but a schema comparison: skip it, saying why."""
    if not schema_file.is_file():
        pytest.skip(f"SendGrid's API description is not at {schema_file} (SENDGRID_SCHEMA_DIR)")


def summary() -> list[str]:
    return [
        f"{count} comparison(s) with {name} left out: the file is missing; set "
        "SENDGRID_SCHEMA_DIR to the folder of SendGrid's API descriptions to run them"
        for name, count in sorted(UNCHECKED.items())
    ]
