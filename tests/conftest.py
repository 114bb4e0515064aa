"""Fixtures shared across the suite: a throw-away copy of the bundled sample project."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from click.testing import CliRunner, Result

if TYPE_CHECKING:
    import httpx

REPO = Path(__file__).resolve().parents[1]


def make_sample_project(folder: Path) -> Path:
    """Copy newsletter.yml, samples/ and templates/ into ``folder``; its config."""
    project = folder / "project"
    project.mkdir()
    shutil.copy(REPO / "newsletter.yml", project / "newsletter.yml")
    shutil.copytree(REPO / "samples", project / "samples")
    shutil.copytree(REPO / "templates", project / "templates")
    return project / "newsletter.yml"


@pytest.fixture
def sample_project(tmp_path: Path) -> Path:
    """A copy of newsletter.yml, samples/ and templates/ in a temporary folder; its config."""
    return make_sample_project(tmp_path)


def copy_project(config: Path, folder: Path) -> Path:
    """A copy of a whole project (store included) into ``folder``, for tests that share one
    built project per module and each break their own copy."""
    target = folder / "project"
    shutil.copytree(config.parent, target)
    return target / config.name


def run_cli(args: Sequence[str]) -> Result:
    """Run the ``newsletter`` command in-process, as a user would from a shell."""
    from newsletter.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


SAMPLE_ISSUE = "001-2026-11-24"
"""The issue ``built_project`` builds from the sample content."""


def import_members(config: Path, csv: Path | None = None) -> Path:
    """Put a CSV file (by default samples/subscribers.csv, 25 people) on the project's
    'members' list."""
    csv = csv or config.parent / "samples" / "subscribers.csv"
    imported = run_cli(
        ["subscribers", "import", str(csv), "--config", str(config), "--list", "members"]
    )
    assert imported.exit_code == 0, imported.output
    return config


@pytest.fixture
def list_store(store_location: Path | str) -> Iterator[Any]:
    """An empty store (SQLite, then PostgreSQL) with the lists 'members' and 'partners'."""
    from newsletter.store import Store

    opened = Store.open(store_location)
    opened.ensure_list("members")
    opened.ensure_list("partners")
    yield opened
    opened.close()


def build_first_issue(config: Path) -> Path:
    """Build issue 1 of the project for 2026-11-24."""
    built = run_cli(["build", "--config", str(config), "--date", "2026-11-24"])
    assert built.exit_code == 0, built.output
    return config


@pytest.fixture
def members_project(sample_project: Path) -> Path:
    """The sample project with samples/subscribers.csv (25 people) on the 'members' list."""
    return import_members(sample_project)


@pytest.fixture
def built_project(members_project: Path) -> Path:
    """``members_project`` with issue 1 built for 2026-11-24."""
    return build_first_issue(members_project)


@pytest.fixture(scope="module")
def built_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project like ``built_project``, made once per test module and never changed: each
    test works on its own copy (``built_copy``)."""
    return build_first_issue(import_members(make_sample_project(tmp_path_factory.mktemp("built"))))


@pytest.fixture
def built_copy(built_once: Path, tmp_path: Path) -> Path:
    """A copy of the module's built project, store included, for one test to break."""
    return copy_project(built_once, tmp_path)


def configure(config: Path, **sections: Any) -> None:
    """Replace whole top-level sections of a project's newsletter.yml."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data.update(sections)
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


REMOVE = object()
"""``set_setting``'s value for a key to take out."""


def set_setting(config: Path, dotted: str, value: Any) -> None:
    """Set one setting of a project's newsletter.yml by its path (``sources.0.path``);
    a value of ``REMOVE`` deletes the key."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    *parents, last = [int(part) if part.isdigit() else part for part in dotted.split(".")]
    node = data
    for part in parents:
        node = node[part]
    if value is REMOVE:
        del node[last]
    else:
        node[last] = value
    config.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def edit(path: Path, old: str, new: str) -> None:
    """Replace the first ``old`` in a text file, failing if it is not there."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Any]:
    """One PostgreSQL cluster for the whole run, started by the first test that needs it;
    the reason it could not start instead, for ``store_location`` to skip (or fail) with."""
    from servers.postgres_cluster import PostgresCluster

    try:
        cluster = PostgresCluster()
        cluster.start()
    except (FileNotFoundError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        yield str(exc).splitlines()[0]
        return
    yield cluster
    cluster.stop()


def postgres_url(cluster: Any) -> str:
    """A fresh PostgreSQL store's URL; without a server, the PostgreSQL case is skipped, or
    fails where NEWSLETTER_REQUIRE_POSTGRES=1 (CI, once scripts/test installed it)."""
    if isinstance(cluster, str):
        reason = f"PostgreSQL store tests: no server ({cluster})"
        if os.environ.get("NEWSLETTER_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + "; NEWSLETTER_REQUIRE_POSTGRES=1 requires one")
        pytest.skip(reason)
    url: str = cluster.url()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a store lives, once for each backend: a SQLite file, a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "data" / "newsletter.db"
    return postgres_url(request.getfixturevalue("postgres_cluster"))


def use_store(config: Path, location: Path | str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point a project at a store: store.path for a file, else store.url with its password
    as newsletter.yml holds it, a ``${VAR}`` set in the environment."""
    if isinstance(location, Path):
        set_setting(config, "store", {"path": str(location)})
        return
    from servers.postgres_cluster import PASSWORD

    monkeypatch.setenv("NEWSLETTER_TEST_STORE_PASSWORD", PASSWORD)
    url = location.replace(f":{PASSWORD}@", ":${NEWSLETTER_TEST_STORE_PASSWORD}@", 1)
    set_setting(config, "store", {"url": url})


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Comparisons left out for want of SendGrid's API descriptions, said once: the tests
    around them ran and passed, so none of them is reported as skipped."""
    from servers.sendgrid_schema import summary

    lines = summary()
    if lines:
        terminalreporter.section("SendGrid schema comparisons left out")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def client(project: Path) -> Iterator[httpx.Client]:
    """An HTTP client of the web app for the test module's own ``project`` fixture, whose
    loopback server stops after the test; each module configures its project its way."""
    from servers.web_app import running_app  # the web stack loads only for tests that ask

    with running_app(project) as http:
        yield http
