"""A SendGrid send reads SendGrid's suppression lists into the store before the first batch.

One loopback server answers both Mail Send and the suppression endpoints, as the single
provider.sendgrid.host does; every request body and every answer is checked against
SendGrid's own API description.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from conftest import ledger_counts, run_cli
from newsletter.config import load_config
from newsletter.send_models import SubscriberStatus
from newsletter.store import open_store
from servers.sendgrid_combined import FakeSendGridApi
from servers.sendgrid_suppressions_fake import Failure

ISSUE = "001-2026-11-24"
SUBSCRIBERS = 25
BOUNCED = "ben.okafor@example.com"
LATE_BOUNCE = "zoe.fischer@example.org"
"""The last sample subscriber: never in the first ten of a send."""
DAY = 86_400
LISTS_READ = {
    "/v3/suppression/spam_reports",
    "/v3/suppression/bounces",
    "/v3/suppression/invalid_emails",
    "/v3/suppression/unsubscribes",
}


@pytest.fixture
def sendgrid(sendgrid_api: FakeSendGridApi) -> FakeSendGridApi:
    return sendgrid_api


def send(config: Path, *extra: str) -> Any:
    return run_cli(["send", ISSUE, "--config", str(config), "--list", "members", *extra])


def sent_to(fake: FakeSendGridApi) -> list[str]:
    return [p["to"][0]["email"] for r in fake.mail.requests for p in r.body["personalizations"]]


def status_of(config: Path, email: str) -> SubscriberStatus:
    with open_store(load_config(config)) as store:
        found = store.get(email)
        assert found is not None
        return found.status


def start_times(fake: FakeSendGridApi) -> set[str | None]:
    return {served.query.get("start_time") for served in fake.suppressions.served}


def test_a_send_first_marks_suppressed_addresses_and_leaves_them_out(
    built_project: Path, sendgrid: FakeSendGridApi
) -> None:
    sendgrid.suppressions.add("bounces", BOUNCED)
    sendgrid.suppressions.add("spam_reports", "stranger@example.net")

    result = send(built_project)

    assert result.exit_code == 0, result.output
    assert "sent 24, refused 0" in result.stdout
    assert (
        "note: read SendGrid's suppression lists: 1 subscriber(s) newly marked bounced, "
        "complained or unsubscribed" in result.stdout
    )
    assert status_of(built_project, BOUNCED) is SubscriberStatus.BOUNCED
    recipients = sent_to(sendgrid)
    assert len(recipients) == len(set(recipients)) == SUBSCRIBERS - 1
    assert BOUNCED not in recipients
    assert set(sendgrid.suppressions.paths()) == LISTS_READ
    assert start_times(sendgrid) == {None}  # the first sync reads everything
    assert ledger_counts(built_project)["sent"] == SUBSCRIBERS - 1


def test_the_next_send_asks_only_for_entries_since_the_last_sync_less_a_day(
    built_project: Path, sendgrid: FakeSendGridApi
) -> None:
    first = send(built_project, "--limit", "10")
    assert first.exit_code == 0, first.output
    assert "sent 10" in first.stdout
    assert start_times(sendgrid) == {None}
    sendgrid.suppressions.served.clear()
    sendgrid.suppressions.add("bounces", LATE_BOUNCE, created=int(time.time()))

    second = send(built_project)

    assert second.exit_code == 0, second.output
    assert "sent 14" in second.stdout
    assert "1 subscriber(s) newly marked" in second.stdout
    assert status_of(built_project, LATE_BOUNCE) is SubscriberStatus.BOUNCED
    assert LATE_BOUNCE not in sent_to(sendgrid)
    asked = start_times(sendgrid)
    assert len(asked) == 1 and None not in asked
    (start,) = asked
    assert start is not None
    assert abs(int(start) - (time.time() - DAY)) < 60


def test_the_sync_command_also_sets_where_the_next_send_starts(
    built_project: Path, sendgrid: FakeSendGridApi
) -> None:
    synced = run_cli(["suppressions", "sync", "--config", str(built_project)])
    assert synced.exit_code == 0, synced.output
    sendgrid.suppressions.served.clear()

    result = send(built_project)

    assert result.exit_code == 0, result.output
    assert "sent 25" in result.stdout
    asked = start_times(sendgrid)
    assert asked and None not in asked


def test_a_sync_server_error_still_sends_with_a_note(
    built_project: Path, sendgrid: FakeSendGridApi
) -> None:
    sendgrid.suppressions.add("bounces", BOUNCED)
    sendgrid.suppressions.fail(Failure(500, "try again later"))

    result = send(built_project)

    assert result.exit_code == 0, result.output
    assert "sent 25, refused 0" in result.stdout
    assert "note: SendGrid's suppression lists were not read" in result.stdout
    assert "server error (500): try again later" in result.stdout
    assert status_of(built_project, BOUNCED) is SubscriberStatus.SUBSCRIBED
    # The failed sync set no mark: the next send reads every list in full again.
    sendgrid.suppressions.served.clear()
    again = send(built_project)
    assert again.exit_code == 0, again.output
    assert start_times(sendgrid) == {None}
    assert status_of(built_project, BOUNCED) is SubscriberStatus.BOUNCED


def test_a_key_without_suppression_access_still_sends_with_a_note(
    built_project: Path, sendgrid: FakeSendGridApi
) -> None:
    sendgrid.suppressions.fail(Failure(403, "access forbidden"))

    result = send(built_project)

    assert result.exit_code == 0, result.output
    assert "sent 25, refused 0" in result.stdout
    assert "the API key was refused (403): access forbidden" in result.stdout
    assert "give the key Suppressions (read access)" in result.stdout


def test_a_refused_key_stops_before_anything_is_sent(
    built_project: Path, sendgrid: FakeSendGridApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.revoked")

    result = send(built_project)

    assert result.exit_code == 7
    assert "the API key was refused (401)" in result.stderr
    assert "authorization grant is invalid, expired, or revoked" in result.stderr
    assert sendgrid.mail.requests == []
    assert sum(ledger_counts(built_project).values()) == 0
    assert not (built_project.parent / "issues" / ISSUE / "send-report.json").exists()


def test_dry_runs_and_test_sends_do_not_read_the_lists(
    built_project: Path, sendgrid: FakeSendGridApi
) -> None:
    sendgrid.suppressions.add("bounces", BOUNCED)

    dry = send(built_project, "--dry-run")
    test = send(built_project, "--test-to", "editor@example.org")

    assert dry.exit_code == 0, dry.output
    assert "would send: 25" in dry.stdout
    assert test.exit_code == 0, test.output
    assert sent_to(sendgrid) == ["editor@example.org"]
    assert sendgrid.suppressions.served == []
    assert status_of(built_project, BOUNCED) is SubscriberStatus.SUBSCRIBED
