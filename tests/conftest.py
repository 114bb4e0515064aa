"""Fixtures shared across the suite: a throw-away copy of the bundled sample project."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def sample_project(tmp_path: Path) -> Path:
    """A copy of newsletter.yml, samples/ and templates/ in a temporary folder; its config."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "newsletter.yml", project / "newsletter.yml")
    shutil.copytree(REPO / "samples", project / "samples")
    shutil.copytree(REPO / "templates", project / "templates")
    return project / "newsletter.yml"


def run_cli(args: Sequence[str]) -> Result:
    """Run the ``newsletter`` command in-process, as a user would from a shell."""
    from newsletter.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


SAMPLE_ISSUE = "001-2026-11-24"
"""The issue ``built_project`` builds from the sample content."""


@pytest.fixture
def members_project(sample_project: Path) -> Path:
    """The sample project with samples/subscribers.csv (25 people) on the 'members' list."""
    imported = run_cli(
        ["subscribers", "import", str(sample_project.parent / "samples" / "subscribers.csv"),
         "--config", str(sample_project), "--list", "members"]
    )  # fmt: skip
    assert imported.exit_code == 0, imported.output
    return sample_project


@pytest.fixture
def built_project(members_project: Path) -> Path:
    """``members_project`` with issue 1 built for 2026-11-24."""
    built = run_cli(["build", "--config", str(members_project), "--date", "2026-11-24"])
    assert built.exit_code == 0, built.output
    return members_project


def configure(config: Path, **sections: Any) -> None:
    """Replace whole top-level sections of a project's newsletter.yml."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data.update(sections)
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def ledger_counts(config: Path, issue: str = SAMPLE_ISSUE) -> dict[str, int]:
    from newsletter.config import load_config
    from newsletter.store import Ledger, open_store

    with open_store(load_config(config)) as store:
        return Ledger(store).counts(issue)


@pytest.fixture
def sendgrid_api(built_project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A SendGrid-compatible server on loopback that ``built_project`` sends through.

    Every Mail Send body is checked against SendGrid's published schema, and every
    suppression-list answer against its response schema, when the test ends.
    """
    from servers.sendgrid_combined import FakeSendGridApi
    from servers.sendgrid_fake import validate_against_schema
    from servers.sendgrid_suppressions_fake import check_replies

    with FakeSendGridApi() as fake:
        monkeypatch.setenv("SENDGRID_API_KEY", fake.api_key)
        configure(
            built_project,
            provider={
                "type": "sendgrid",
                "sendgrid": {"host": fake.url, "batch_size": 10, "timeout": 2.0},
            },
        )
        yield fake
        for request in fake.mail.requests:
            validate_against_schema(request.body)
        check_replies(fake.suppressions)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Comparisons left out for want of SendGrid's API descriptions, said once: the tests
    around them ran and passed, so none of them is reported as skipped."""
    from servers.sendgrid_schema import summary

    lines = summary()
    if lines:
        terminalreporter.section("SendGrid schema comparisons left out")
        for line in lines:
            terminalreporter.write_line(line)
