"""store.url: a PostgreSQL store named in newsletter.yml, its bad input, and `store migrate`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import closed_port, postgres_url, run_cli, set_setting, use_store
from newsletter.config import load_config, parse_config
from newsletter.errors import ConfigError, StoreError
from newsletter.store import Store
from newsletter.store.db import MIGRATIONS
from newsletter.store.postgres import translate
from newsletter.store_url import mask
from test_config import MINIMAL as MINIMAL_STORE_CONFIG


def config_problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(MINIMAL_STORE_CONFIG + text, "newsletter.yml")
    return caught.value.problems


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("url: postgresql://me:hunter2@db.example.org/news",
         "store.url: the password never lives in newsletter.yml"),
        ("url: mysql://db.example.org/news", "store.url: expected a URL such as postgresql://"),
        ("url: postgresql://db.example.org", "names no database; end it with /DATABASE"),
        ("url: postgresql://db.example.org:port/news", "the port of"),
        ("path: x.db\n  url: postgresql://db.example.org/news",
         "store.path and store.url name two stores"),
    ],
    ids=["literal password", "other scheme", "no database", "bad port", "both"],
)  # fmt: skip
def test_a_bad_store_url_names_the_setting_and_what_to_write(store: str, expected: str) -> None:
    found = config_problems(f"store:\n  {store}\n")
    assert len(found) == 1, found
    assert found[0].startswith("newsletter.yml:1") and expected in found[0], found
    assert "hunter2" not in found[0]


def test_the_password_comes_from_the_environment_when_the_store_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "newsletter.yml"
    config.write_text(
        MINIMAL_STORE_CONFIG
        + "store:\n  url: postgresql://me:${NL_STORE_PASSWORD}@127.0.0.1:5432/news\n"
    )
    monkeypatch.delenv("NL_STORE_PASSWORD", raising=False)
    loaded = load_config(config)  # validate and build need no password
    with pytest.raises(ConfigError, match=r"store\.url: the environment variable NL_STORE_PASSW"):
        _ = loaded.store_location
    monkeypatch.setenv("NL_STORE_PASSWORD", "p@ss/word")
    assert loaded.store_location == "postgresql://me:p%40ss%2Fword@127.0.0.1:5432/news"
    assert mask(str(loaded.store_location)) == "postgresql://me:***@127.0.0.1:5432/news"


@pytest.fixture
def cluster(postgres_cluster: Any) -> Any:
    postgres_url(postgres_cluster)  # skips (or fails) without a server
    return postgres_cluster


def test_a_wrong_password_names_the_setting_and_never_the_password(cluster: Any) -> None:
    url = cluster.base_url(password="not-the-Password-42")
    with pytest.raises(StoreError) as caught:
        Store.open(url)
    shown = f"{caught.value} {caught.value.hint}"
    assert "store.url (postgresql://postgres:***@127.0.0.1:" in shown
    assert "password authentication failed" in shown
    assert "not-the-Password-42" not in shown


@pytest.mark.parametrize("what", ["unreachable", "no such database"])
def test_an_unreachable_server_or_missing_database_is_named(cluster: Any, what: str) -> None:
    url = (
        f"postgresql://postgres:x@127.0.0.1:{closed_port()}/news"
        if what == "unreachable"
        else cluster.base_url(database="nowhere")
    )
    with pytest.raises(StoreError) as caught:
        Store.open(url)
    message = str(caught.value)
    assert message.startswith("store.url (postgresql://postgres:***@127.0.0.1:")
    assert "cannot connect to PostgreSQL" in message
    assert ("refused" if what == "unreachable" else 'database "nowhere" does not exist') in message
    assert "check the host, port, database and user in store.url" in (caught.value.hint or "")


def test_the_cli_exits_with_the_store_status_and_hides_the_password(
    sample_project: Path, cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NL_STORE_PASSWORD", "wrong-Secret-77")
    url = f"postgresql://postgres:${{NL_STORE_PASSWORD}}@127.0.0.1:{cluster.port}/postgres"
    set_setting(sample_project, "store", {"url": url})
    result = run_cli(["subscribers", "list", "--config", str(sample_project)])
    assert result.exit_code == 6, result.output
    assert "error: store.url (postgresql://postgres:***@127.0.0.1" in result.output
    assert "wrong-Secret-77" not in result.output


def test_store_migrate_brings_a_new_store_to_the_current_version_once(
    sample_project: Path, store_location: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_store(sample_project, store_location, monkeypatch)
    first = run_cli(["store", "migrate", "--config", str(sample_project)])
    latest = max(m.version for m in MIGRATIONS)
    assert first.exit_code == 0, first.output
    assert f"schema at version {latest} (applied 1, 2, 3, 4" in first.output
    assert "cluster-secret" not in first.output
    again = run_cli(["store", "migrate", "--config", str(sample_project)])
    assert again.exit_code == 0 and f"schema already at version {latest}" in again.output


MIGRATE = "from newsletter.store import Store; import sys; Store.open(sys.argv[1]).close()"


def test_a_migration_run_by_several_processes_at_once_is_applied_once(cluster: Any) -> None:
    url = cluster.url()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        for _ in range(4)
    ]
    outputs = [child.communicate(timeout=60) for child in children]
    assert [child.returncode for child in children] == [0] * 4, outputs
    with psycopg.connect(url) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
    assert sorted(versions) == sorted(m.version for m in MIGRATIONS)


def test_statements_are_translated_once_and_literals_are_left_alone() -> None:
    (statement,) = translate(
        "SELECT '?', x FROM t INDEXED BY t_i WHERE a = ? AND b LIKE '50%' AND c = 'it''s ?'"
    )
    assert statement == "SELECT '?', x FROM t WHERE a = %s AND b LIKE '50%%' AND c = 'it''s ?'"
    assert translate("CREATE TRIGGER send_ledger_removed AFTER DELETE")[0].startswith(
        "CREATE FUNCTION send_ledger_removed()"
    )
