"""`newsletter suppressions sync` against SendGrid's suppression endpoints on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import run_cli
from newsletter.config import LoadedConfig, load_config
from newsletter.errors import AuthenticationError, ConfigError, TransientProviderError
from newsletter.providers.sendgrid_api import SendgridApi
from newsletter.send_models import SubscriberStatus
from newsletter.store import open_store
from newsletter.suppressions import sync_suppressions
from servers.sendgrid_suppressions_fake import Failure, FakeSuppressions, check_replies

KEY = "SG.suppressions-key"
DAY = 86_400
NOV_20 = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp())


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSuppressions]:
    monkeypatch.setenv("SENDGRID_API_KEY", KEY)
    with FakeSuppressions(api_key=KEY) as server:
        yield server
        check_replies(server)


def _configure(config: Path, **sendgrid: Any) -> LoadedConfig:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["provider"]["sendgrid"].update(sendgrid)
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_config(config)


@pytest.fixture
def loaded(sample_project: Path, fake: FakeSuppressions) -> LoadedConfig:
    loaded = _configure(sample_project, host=fake.url, timeout=2.0)
    with open_store(loaded) as store:
        for name in ("ann", "bob", "cat", "dan", "eve", "fay", "gus"):
            store.add(f"{name}@example.com", name.title(), "members")
    return loaded


def _status(loaded: LoadedConfig, email: str) -> SubscriberStatus:
    with open_store(loaded) as store:
        found = store.get(email)
        assert found is not None
        return found.status


def _events(loaded: LoadedConfig, email: str) -> list[tuple[str, str, str]]:
    with open_store(loaded) as store:
        return [(str(e.status), e.source, e.detail) for e in store.events(email)]


def test_each_list_sets_its_status_over_several_pages(
    loaded: LoadedConfig, fake: FakeSuppressions
) -> None:
    for name in ("ann", "bob", "nobody1", "nobody2", "nobody3"):
        fake.add("bounces", f"{name}@example.com", created=NOV_20)
    fake.add("invalid_emails", "cat@example.com")
    fake.add("spam_reports", "dan@example.com", created=NOV_20)
    fake.add("unsubscribes", "eve@example.com")
    fake.add("unsubscribes", "stranger@example.org")

    report = sync_suppressions(loaded, page_size=2)

    assert _status(loaded, "ann@example.com") is SubscriberStatus.BOUNCED
    assert _status(loaded, "bob@example.com") is SubscriberStatus.BOUNCED
    assert _status(loaded, "cat@example.com") is SubscriberStatus.BOUNCED
    assert _status(loaded, "dan@example.com") is SubscriberStatus.COMPLAINED
    assert _status(loaded, "eve@example.com") is SubscriberStatus.UNSUBSCRIBED
    assert _status(loaded, "fay@example.com") is SubscriberStatus.SUBSCRIBED
    bounces = report.of("bounces")
    assert (bounces.fetched, bounces.updated, bounces.unchanged, bounces.unknown) == (5, 2, 0, 3)
    assert report.of("unsubscribes").unknown == 1
    assert report.updated == 5
    assert _events(loaded, "ann@example.com")[-1] == (
        "bounced",
        "sendgrid-sync",
        "bounces; 550 5.1.1 User unknown; status 5.1.1; created 2026-11-20T00:00:00Z",
    )
    assert _events(loaded, "dan@example.com")[-1] == (
        "complained",
        "sendgrid-sync",
        "spam_reports; from ip 10.63.202.100; created 2026-11-20T00:00:00Z",
    )
    bounce_pages = [s.query for s in fake.served if s.path == "/v3/suppression/bounces"]
    assert bounce_pages == [
        {"limit": "2", "offset": "0"},
        {"limit": "2", "offset": "2"},
        {"limit": "2", "offset": "4"},
    ]


def test_blocks_are_never_read(loaded: LoadedConfig, fake: FakeSuppressions) -> None:
    fake.add("blocks", "ann@example.com")

    report = sync_suppressions(loaded)

    assert "/v3/suppression/blocks" not in fake.paths()
    assert report.skipped == ("blocks",)
    assert _status(loaded, "ann@example.com") is SubscriberStatus.SUBSCRIBED


def test_a_status_is_never_weakened(loaded: LoadedConfig, fake: FakeSuppressions) -> None:
    with open_store(loaded) as store:
        store.set_status("ann@example.com", "complained", "webhook", "spamreport")
        store.set_status("bob@example.com", "bounced", "webhook", "bounce")
    fake.add("unsubscribes", "ann@example.com")
    fake.add("unsubscribes", "bob@example.com")
    fake.add("bounces", "ann@example.com")
    fake.add("bounces", "cat@example.com")
    fake.add("spam_reports", "cat@example.com")

    report = sync_suppressions(loaded)

    assert _status(loaded, "ann@example.com") is SubscriberStatus.COMPLAINED
    assert _status(loaded, "bob@example.com") is SubscriberStatus.BOUNCED
    assert _status(loaded, "cat@example.com") is SubscriberStatus.COMPLAINED
    assert report.of("unsubscribes").unchanged == 2
    assert report.of("bounces").unchanged == 2
    # On two lists: one event, for the stronger status.
    assert [e[0] for e in _events(loaded, "cat@example.com")] == ["subscribed", "complained"]
    assert [e[1] for e in _events(loaded, "ann@example.com")] == ["cli", "webhook"]


def test_unknown_addresses_are_counted_not_added(
    loaded: LoadedConfig, fake: FakeSuppressions
) -> None:
    fake.add("spam_reports", "stranger@example.org")
    fake.add("bounces", "two@@example.com")

    report = sync_suppressions(loaded)

    assert report.of("spam_reports").unknown == 1
    assert report.of("bounces").unknown == 1
    with open_store(loaded) as store:
        assert store.get("stranger@example.org") is None
        assert store.count() == 7


def test_a_second_sync_records_nothing_new(loaded: LoadedConfig, fake: FakeSuppressions) -> None:
    fake.add("bounces", "ann@example.com")
    fake.add("unsubscribes", "bob@example.com")
    sync_suppressions(loaded)
    before = [_events(loaded, f"{n}@example.com") for n in ("ann", "bob")]

    again = sync_suppressions(loaded)

    assert again.updated == 0
    assert again.of("bounces").unchanged == 1
    assert again.of("unsubscribes").unchanged == 1
    assert [_events(loaded, f"{n}@example.com") for n in ("ann", "bob")] == before


def test_since_asks_only_for_newer_entries(loaded: LoadedConfig, fake: FakeSuppressions) -> None:
    fake.add("bounces", "ann@example.com", created=NOV_20 - DAY)
    fake.add("bounces", "bob@example.com", created=NOV_20 + 60)

    report = sync_suppressions(loaded, since=datetime(2026, 11, 20))

    assert report.of("bounces").fetched == 1
    assert _status(loaded, "ann@example.com") is SubscriberStatus.SUBSCRIBED
    assert _status(loaded, "bob@example.com") is SubscriberStatus.BOUNCED
    first = next(s for s in fake.served if s.path == "/v3/suppression/bounces")
    assert first.query["start_time"] == str(NOV_20)


def test_the_asm_group_counts_as_unsubscribed(
    sample_project: Path, loaded: LoadedConfig, fake: FakeSuppressions
) -> None:
    loaded = _configure(sample_project, asm_group_id=42)
    fake.groups[42] = ["gus@example.com", "nobody@example.net"]
    fake.groups[7] = ["fay@example.com"]

    report = sync_suppressions(loaded)

    group = report.of("group_unsubscribes")
    assert (group.fetched, group.updated, group.unknown) == (2, 1, 1)
    assert _status(loaded, "gus@example.com") is SubscriberStatus.UNSUBSCRIBED
    assert _status(loaded, "fay@example.com") is SubscriberStatus.SUBSCRIBED
    assert _events(loaded, "gus@example.com")[-1][1:] == (
        "sendgrid-sync",
        "group_unsubscribes of ASM group 42",
    )
    assert "/v3/asm/groups/42/suppressions" in fake.paths()


def test_a_refused_key_is_an_authentication_error_with_sendgrids_words(
    loaded: LoadedConfig, fake: FakeSuppressions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.revoked")
    fake.add("bounces", "ann@example.com")

    with pytest.raises(AuthenticationError) as caught:
        sync_suppressions(loaded)

    assert caught.value.status == 401
    assert "authorization grant is invalid, expired, or revoked" in str(caught.value)
    assert "Suppressions" in str(caught.value)
    assert _status(loaded, "ann@example.com") is SubscriberStatus.SUBSCRIBED


@pytest.mark.parametrize(("status", "words"), [(429, "rate limit"), (500, "server error")])
def test_rate_limits_and_server_errors_are_worth_retrying(
    loaded: LoadedConfig, fake: FakeSuppressions, status: int, words: str
) -> None:
    fake.fail(Failure(status, "try again later"))

    with pytest.raises(TransientProviderError) as caught:
        sync_suppressions(loaded)

    assert words in str(caught.value)
    assert "try again later" in str(caught.value)


def test_no_answer_at_all_is_worth_retrying(
    sample_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", KEY)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    loaded = _configure(sample_project, host=f"http://127.0.0.1:{port}", timeout=2.0)

    with pytest.raises(TransientProviderError, match="no answer"):
        sync_suppressions(loaded)


def test_a_timeout_is_worth_retrying(
    sample_project: Path, loaded: LoadedConfig, fake: FakeSuppressions
) -> None:
    loaded = _configure(sample_project, timeout=0.2)
    fake.fail(Failure(500, "late", stall=30.0))  # let go when the fake stops

    with pytest.raises(TransientProviderError, match=r"no answer .*timed out"):
        sync_suppressions(loaded)


def test_a_client_given_is_used_as_it_is(
    loaded: LoadedConfig, fake: FakeSuppressions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENDGRID_API_KEY")
    fake.add("bounces", "ann@example.com")

    report = sync_suppressions(loaded, client=SendgridApi(fake.url, KEY, timeout=2.0))

    assert report.of("bounces").updated == 1
    assert {s.headers["Authorization"] for s in fake.served} == {f"Bearer {KEY}"}


def test_a_missing_key_is_a_config_error_before_any_request(
    loaded: LoadedConfig, fake: FakeSuppressions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENDGRID_API_KEY")

    with pytest.raises(ConfigError) as caught:
        sync_suppressions(loaded)

    assert "provider.sendgrid.api_key" in str(caught.value)
    assert "SENDGRID_API_KEY is not set" in str(caught.value)
    assert fake.served == []


# --- the command -------------------------------------------------------------------------


def test_the_command_prints_counts_per_list(
    sample_project: Path, loaded: LoadedConfig, fake: FakeSuppressions
) -> None:
    fake.add("bounces", "ann@example.com")
    fake.add("bounces", "ghost@example.com")
    fake.add("spam_reports", "bob@example.com")

    result = run_cli(["suppressions", "sync", "--config", str(sample_project)])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "bounces         -> bounced       fetched 2, updated 1, unchanged 0, unknown 1" in lines
    assert "spam_reports    -> complained    fetched 1, updated 1, unchanged 0, unknown 0" in lines
    assert lines[-1] == "2 subscriber(s) updated; not read: blocks (temporary)"
    assert _status(loaded, "bob@example.com") is SubscriberStatus.COMPLAINED


def test_the_command_passes_since_as_a_utc_day(
    sample_project: Path, loaded: LoadedConfig, fake: FakeSuppressions
) -> None:
    result = run_cli(
        ["suppressions", "sync", "--config", str(sample_project), "--since", "2026-11-20"]
    )

    assert result.exit_code == 0, result.output
    assert {s.query.get("start_time") for s in fake.served if "suppression/" in s.path} == {
        str(NOV_20)
    }


def test_the_command_rejects_a_malformed_day(sample_project: Path, loaded: LoadedConfig) -> None:
    result = run_cli(
        ["suppressions", "sync", "--config", str(sample_project), "--since", "20/11/2026"]
    )

    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output or "%Y-%m-%d" in result.output


def test_the_command_exits_with_the_error_status(
    sample_project: Path,
    loaded: LoadedConfig,
    fake: FakeSuppressions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.revoked")
    refused = run_cli(["suppressions", "sync", "--config", str(sample_project)])
    assert refused.exit_code == AuthenticationError.exit_code == 7
    assert "error: sendgrid" in refused.output
    assert "authorization grant is invalid" in refused.output

    monkeypatch.delenv("SENDGRID_API_KEY")
    missing = run_cli(["suppressions", "sync", "--config", str(sample_project)])
    assert missing.exit_code == 2
    assert "SENDGRID_API_KEY is not set" in missing.output


def test_lists_read_before_a_failure_stay_applied_and_a_rerun_finishes(
    loaded: LoadedConfig, fake: FakeSuppressions
) -> None:
    fake.add("spam_reports", "ann@example.com")
    fake.add("bounces", "bob@example.com")
    fake.fail(Failure(503, "busy", path="/v3/suppression/bounces"))

    with pytest.raises(TransientProviderError, match="busy"):
        sync_suppressions(loaded)
    assert _status(loaded, "ann@example.com") is SubscriberStatus.COMPLAINED
    assert _status(loaded, "bob@example.com") is SubscriberStatus.SUBSCRIBED

    report = sync_suppressions(loaded)

    assert (report.of("spam_reports").unchanged, report.of("bounces").updated) == (1, 1)
    assert _status(loaded, "bob@example.com") is SubscriberStatus.BOUNCED
