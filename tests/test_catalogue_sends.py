"""Bad-input catalogue, sends and the commands around them: an unknown list or issue, a
provider that refuses to connect or to log in, a missing secret, a forged token, options
that do not fit together. Each exits non-zero naming what is wrong, and no ledger row,
subscriber or archived file changes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bad_input import Breakage, Case, cases, expect_refusal, setting, written
from conftest import (
    SAMPLE_ISSUE,
    closed_port,
    configure,
)
from servers.sendgrid_combined import FakeSendGridApi
from servers.smtp_sink import SmtpSink

SEND = ("send", "--list", "members")
ISSUE = f"issues/{SAMPLE_ISSUE}"
INVALID_LINK = "this unsubscribe link is not valid; it may be incomplete or altered"
RUNNING: dict[str, Any] = {}
"""The loopback servers of this module, by name, while its tests run."""


@pytest.fixture(scope="module", autouse=True)
def servers() -> Iterator[None]:
    with SmtpSink(username="mailer", password="right-password") as smtp, FakeSendGridApi() as sg:
        RUNNING.update(smtp=smtp, sendgrid=sg)
        yield
        RUNNING.clear()


@pytest.fixture(autouse=True)
def no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets come from the environment: each case sets what it needs, and no more."""
    for name in ("SMTP_PASSWORD", "SENDGRID_API_KEY", "NEWSLETTER_SECRET"):
        monkeypatch.delenv(name, raising=False)


def quick_retries(config: Path) -> None:
    configure(config, sending={"max_attempts": 1, "retry_base": 0.0, "retry_cap": 0.0})


def smtp(
    port: int | None = None, password: str | None = "right-password", **extra: Any
) -> Breakage:
    """Send through the loopback SMTP server (or another port) with this password."""

    def point(config: Path) -> None:
        quick_retries(config)
        settings = {"host": "127.0.0.1", "port": port or RUNNING["smtp"].port,
                    "username": "mailer", "password": "${SMTP_PASSWORD}", "timeout": 5.0,
                    **extra}  # fmt: skip
        configure(config, provider={"type": "smtp", "smtp": settings})
        if password is not None:
            os.environ["SMTP_PASSWORD"] = password

    return point


def sendgrid(host: str | None = None, key: str | None = None) -> Breakage:
    """Send through the loopback SendGrid API (or another host) with this key."""

    def point(config: Path) -> None:
        quick_retries(config)
        fake = RUNNING["sendgrid"]
        settings = {"host": host or fake.url, "timeout": 5.0}
        configure(config, provider={"type": "sendgrid", "sendgrid": settings})
        if key is not None:
            os.environ["SENDGRID_API_KEY"] = key

    return point


def closed(make: Any) -> Breakage:
    """A provider at a loopback port nothing listens on."""
    return lambda config: make(closed_port())(config)


def nothing(config: Path) -> None:
    """The command alone is the bad input."""


def not_utf8(relative: str) -> Breakage:
    """A byte no UTF-8 text holds, at the end of a file of the project."""

    def spoil(config: Path) -> None:
        with (config.parent / relative).open("ab") as file:
            file.write(b"\xff")

    return spoil


def issue_record(change: dict[str, Any]) -> Breakage:
    def rewrite(config: Path) -> None:
        path = config.parent / ISSUE / "issue.json"
        record = json.loads(path.read_text(encoding="utf-8"))
        record.update(change)
        path.write_text(json.dumps(record), encoding="utf-8")

    return rewrite


CASES = cases(
    ("unknown list", nothing, ("send", "--list", "staff"), 7,
     "there is no list named 'staff' (lists: members)"),
    ("issue that does not exist", nothing, ("send", "999", "--list", "members"), 5,
     "no issue matches '999' in {project}/issues; it holds 001-2026-11-24"),
    ("issue name a path", nothing, ("send", "../../etc", "--list", "members"), 5,
     "no issue matches '../../etc' in {project}/issues"),
    ("no issue built yet", lambda config: (config.parent / ISSUE / "issue.json").unlink(),
     SEND, 5, "no issue matches 'latest': {project}/issues holds no issues yet"),
    ("older-than alone", nothing, (*SEND, "--older-than", "2h"), 2,
     "--older-than goes with --resend-unconfirmed"),
    ("older-than not a duration", nothing,
     (*SEND, "--resend-unconfirmed", "--older-than", "2 hours"), 2,
     "expected a duration such as 30m, 2h or 1d, got '2 hours'"),
    ("limit zero", nothing, (*SEND, "--limit", "0"), 2, "Invalid value for '--limit'"),
    ("rate zero", nothing, (*SEND, "--rate", "0"), 2, "Invalid value for '--rate'"),
    ("test address invalid", nothing, (*SEND, "--test-to", "ann@"), 2,
     "'ann@' is not a valid e-mail address: There must be something after the @-sign"),
    ("smtp connection refused", closed(smtp), SEND, 7, ": cannot connect: [Errno 111]"),
    ("smtp wrong password", smtp(password="wrong-password"), SEND, 7,
     ": the server refused the login of 'mailer': 535 5.7.8"),
    ("smtp password unset", smtp(password=None), SEND, 2,
     "provider.smtp.password: the environment variable SMTP_PASSWORD is not set"),
    ("smtp tls against a plain server", smtp(security="ssl"), SEND, 7,
     ": the TLS handshake failed: the server answered in plain text, not TLS"),
    ("sendgrid connection refused", closed(lambda port: sendgrid(f"http://127.0.0.1:{port}",
     "SG.test-key")), SEND, 7, "/v3/mail/send: the request could not be sent (ConnectError", True),
    ("sendgrid wrong key", sendgrid(key="SG.wrong"), SEND, 7,
     "/v3/suppression/spam_reports: the API key was refused (401)"),
    ("sendgrid key unset", sendgrid(), SEND, 2,
     "provider.sendgrid.api_key: the environment variable SENDGRID_API_KEY is not set"),
    ("issue record not json", written(f"{ISSUE}/issue.json", "{not json"), SEND, 5,
     f"{ISSUE}/issue.json: corrupt issue record: line 1: not valid JSON"),
    ("issue record bad date", issue_record({"date": "someday"}), SEND, 5,
     f"{ISSUE}/issue.json: corrupt issue record: 'date': expected YYYY-MM-DD, got 'someday'"),
    ("archived text missing", lambda config: (config.parent / ISSUE / "email.txt").unlink(),
     SEND, 5, f"issue {SAMPLE_ISSUE} is incomplete: {{project}}/{ISSUE}/email.txt: No such file "
     "or directory"),
    ("archived text not utf-8", not_utf8(f"{ISSUE}/email.txt"), SEND, 5,
     f"issue {SAMPLE_ISSUE} is incomplete: {{project}}/{ISSUE}/email.txt: not UTF-8 text"),
    ("report of an unknown issue", nothing, ("report", "999"), 5,
     "no issue matches '999' in {project}/issues"),
    ("report of an unknown state", nothing, ("report", "--state", "lost"), 2,
     "Invalid value for '--state'"),
    ("token garbage", nothing, ("unsubscribe", "--token", "not-a-token"), 2, INVALID_LINK),
    ("token empty", nothing, ("unsubscribe", "--token", ""), 2, INVALID_LINK),
    ("token of another secret", nothing, ("unsubscribe", "--token",
     "AQEBAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 2, INVALID_LINK),
    ("run now not a time", nothing, ("run", "--now", "yesterday"), 2,
     "Invalid value for --now: 'yesterday' is not a date and time"),
    ("run now with an impossible offset", nothing, ("run", "--now", "2026-11-24T08:05+99:00"),
     2, "Invalid value for --now: '2026-11-24T08:05+99:00' is not a date and time"),
    ("build on an impossible date", nothing, ("build", "--date", "2026-02-30"), 2,
     "Invalid value for '--date': '2026-02-30' does not match the format '%Y-%m-%d'"),
    ("build before any post", nothing, ("build", "--date", "1900-01-01"), 10,
     "at least 1 needed (selection.min_posts)"),
    ("one bad test address of two", nothing, (*SEND, "--test-to", "a@example.org,b@"), 2,
     "'b@' is not a valid e-mail address"),
    ("schedule without cron", setting("schedule", {"lists": ["members"]}), ("schedule",), 2,
     "no schedule.cron set; add e.g. cron: '0 8 * * 2'"),
    ("run without cron", setting("schedule", {"lists": ["members"]}), ("run",), 2,
     "no schedule.cron set"),
    ("preview of an unknown issue", nothing, ("preview", "--issue", "99"), 5,
     "no issue matches '99' in {project}/issues"),
    ("suppressions sync without sendgrid", nothing, ("suppressions", "sync"), 2,
     "provider.sendgrid.api_key: the environment variable SENDGRID_API_KEY is not set"),
)  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_a_send_that_cannot_go_changes_no_ledger_row(built_copy: Path, case: Case) -> None:
    expect_refusal(built_copy, case)
