"""Fixtures shared across the suite: a throw-away copy of the bundled sample project."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
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
