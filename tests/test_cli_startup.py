"""What each command loads at start-up: `--help` none of the commands, and a command only
what its own path needs. Speed itself is measured by bench/bench_startup.py, not here."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest

from newsletter.cli import COMMANDS, SUMMARIES, main


def imported_by(args: list[str], cwd: Path | None = None) -> set[str]:
    """The modules ``newsletter ARGS`` imports, read from ``python -X importtime``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "newsletter", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 10), done.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def probed_first_line(sample_project: Path, lines: list[str]) -> str:
    """The first line a Python script of ``lines`` prints, run in the sample project."""
    done = subprocess.run(
        [sys.executable, "-c", "\n".join(lines)],
        cwd=sample_project.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()[0]


def test_the_help_lists_each_command_by_its_own_first_sentence() -> None:
    context = click.Context(main)
    assert set(SUMMARIES) == set(COMMANDS)
    for name in COMMANDS:
        command = main.get_command(context, name)
        assert command is not None
        assert SUMMARIES[name] == command.get_short_help_str(limit=1000), name


def test_help_imports_no_command_and_no_library() -> None:
    loaded = imported_by(["--help"])
    assert "click" in loaded
    assert not {f"newsletter.cli.{module}" for module, _ in COMMANDS.values()} & loaded
    assert not {"newsletter.config", "pydantic", "premailer", "jinja2", "httpx"} & loaded


@pytest.mark.parametrize(
    ("args", "absent"),
    [
        (["schedule"], {"premailer", "httpx", "newsletter.build", "newsletter.send"}),
        (["validate"], {"premailer", "requests", "httpx", "newsletter.send"}),
        (["report", "--help"], {"premailer", "httpx"}),
    ],
)
def test_a_command_loads_only_what_its_path_needs(
    sample_project: Path, args: list[str], absent: set[str]
) -> None:
    loaded = imported_by(args, cwd=sample_project.parent)
    assert "newsletter.config" in loaded or "--help" in args
    assert not absent & loaded


def test_a_dry_run_of_an_unchanged_project_loads_no_renderer_reader_or_checker(
    sample_project: Path,
) -> None:
    args = ["build", "--dry-run", "--date", "2026-11-24"]
    first = imported_by(args, cwd=sample_project.parent)
    assert {"premailer", "jinja2", "markdown", "feedparser"} <= first  # nothing kept yet

    again = imported_by(args, cwd=sample_project.parent)

    assert not {"premailer", "cssutils", "jinja2", "mjml", "markdown", "feedparser"} & again
    # the config was checked by the first run: CLDR, cron and address rules are not asked again
    assert not {"babel", "croniter", "email_validator", "yaml"} & again
    # nor what only a write, a fresh read or a misspelt key needs: the archive's and the
    # cache's temporary files, the HTML cleaner, close-match suggestions, strptime for --date
    assert not {"tempfile", "shutil", "nh3", "html", "difflib", "_strptime"} & again


def test_the_script_collects_garbage_again_before_the_command_runs(sample_project: Path) -> None:
    """`run` pauses the collector while modules load; a long send must not run without it."""
    first_line = probed_first_line(
        sample_project,
        [
            "import gc, sys",
            "import newsletter.logs as logs",
            "configure = logs.configure",
            "def probed(*args):",
            "    print('collecting' if gc.isenabled() else 'paused', gc.get_freeze_count() > 0)",
            "    return configure(*args)",
            "logs.configure = probed",
            "from newsletter import run",
            "sys.argv = ['newsletter', 'schedule']",
            "run()",
        ],
    )
    assert first_line == "collecting True"


def test_click_itself_loads_with_the_collector_paused(sample_project: Path) -> None:
    """The script's entry point pauses the collector before the command line's first import."""
    first_line = probed_first_line(
        sample_project,
        [
            "import gc, sys",
            "class Probe:",
            "    def find_spec(self, name, path=None, target=None):",
            "        if name == 'click':",
            "            print('collecting' if gc.isenabled() else 'paused')",
            "sys.meta_path.insert(0, Probe())",
            "from newsletter import run",
            "sys.argv = ['newsletter', 'schedule']",
            "run()",
        ],
    )
    assert first_line == "paused"
    entry = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert entry["project"]["scripts"]["newsletter"] == "newsletter:run"
