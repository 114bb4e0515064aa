"""`newsletter store copy --to URL`: a SQLite store moved to PostgreSQL, resumable, verified."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import SAMPLE_ISSUE, ledger_counts, postgres_url, run_cli, use_store
from newsletter.config import load_config
from newsletter.errors import StoreError
from newsletter.store import Store
from newsletter.store.copy import copy_store, fingerprint, tables
from newsletter.store.db import open_database


@pytest.fixture
def sent_project(built_project: Path) -> Path:
    """The built sample project (SQLite) with issue 1 sent to the outbox."""
    sent = run_cli(["send", SAMPLE_ISSUE, "--config", str(built_project)])
    assert sent.exit_code == 0, sent.output
    return built_project


@pytest.fixture
def target_url(postgres_cluster: Any) -> str:
    return postgres_url(postgres_cluster)


def test_a_copied_store_holds_the_same_rows_and_carries_on_where_the_old_one_was(
    sent_project: Path, target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = ledger_counts(sent_project)
    result = run_cli(["store", "copy", "--to", target_url, "--config", str(sent_project)])
    assert result.exit_code == 0, result.output
    assert "subscribers: 25 row(s), 25 copied now, verified" in result.output
    assert "send_ledger: 25 row(s), 25 copied now, verified" in result.output
    assert "cluster-secret" not in result.output

    again = run_cli(["store", "copy", "--to", target_url, "--config", str(sent_project)])
    assert again.exit_code == 0, again.output
    assert "subscribers: 25 row(s), 0 copied now, verified" in again.output

    use_store(sent_project, target_url, monkeypatch)
    assert ledger_counts(sent_project) == before
    rerun = run_cli(["send", SAMPLE_ISSUE, "--config", str(sent_project)])
    assert rerun.exit_code == 0, rerun.output
    assert "sent 0, refused 0, unconfirmed 0, already sent before 25" in rerun.output
    added = run_cli(
        ["subscribers", "add", "new.reader@example.org", "--list", "members",
         "--config", str(sent_project)]
    )  # fmt: skip
    assert added.exit_code == 0, added.output  # ids carry on after the copied ones
    with Store.open(target_url) as store:
        assert store.count("members") == 26


def test_an_interrupted_copy_resumes_without_copying_a_row_twice(
    sent_project: Path, target_url: str
) -> None:
    source_path = load_config(sent_project).store_path
    source, target = open_database(source_path), open_database(target_url)
    chunks: list[tuple[str, int]] = []

    def stop_in_subscribers(name: str, copied: int) -> None:
        chunks.append((name, copied))
        if name == "subscribers" and copied >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_store(source, target, chunk=5, on_chunk=stop_in_subscribers)
    assert target.scalar("SELECT COUNT(*) FROM subscribers") == 10
    done = copy_store(source, target, chunk=7)
    copied = {table.name: table.copied for table in done}
    assert copied["subscribers"] == 15 and copied["lists"] == 0
    for table in tables(source):
        assert fingerprint(source, table) == fingerprint(target, table), table.name
    source.close()
    target.close()


def test_a_target_that_differs_after_the_copy_is_named(sent_project: Path, target_url: str) -> None:
    source = open_database(load_config(sent_project).store_path)
    target = open_database(target_url)
    copy_store(source, target)
    target.execute("UPDATE subscribers SET name = 'Changed' WHERE id = 3")
    with pytest.raises(StoreError, match=r"after the copy, subscribers differ from .*\.db"):
        copy_store(source, target)
    source.close()
    target.close()


def test_copy_wants_a_postgresql_url(sent_project: Path) -> None:
    result = run_cli(["store", "copy", "--to", "other.db", "--config", str(sent_project)])
    assert result.exit_code == 6
    assert "error: --to expects a postgresql:// URL, got 'other.db'" in result.output
