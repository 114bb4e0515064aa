"""A big SendGrid send builds its requests in a second process: the same requests as when
they are built in the sending process, and whoever leaves mid-send is still not sent."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from conftest import SAMPLE_ISSUE, ledger_counts
from newsletter.config import load_config
from newsletter.send import SendOptions, SendReport, send_issue, unsubscribe_secret
from newsletter.store import open_store
from servers.sendgrid_fake import Reply

SUBSCRIBERS = 25


def _forks() -> list[int]:
    """Every fork this process makes from now on, counted as it happens."""
    forks: list[int] = []
    os.register_at_fork(after_in_parent=lambda: forks.append(1))
    return forks


def _personalizations(fake: Any) -> list[list[dict[str, Any]]]:
    return [request.body["personalizations"] for request in fake.requests]


def test_the_builder_process_sends_the_same_requests(
    built_project: Path, sendgrid_api: Any
) -> None:
    loaded = load_config(built_project)
    with open_store(loaded) as store:
        unsubscribe_secret(loaded, store)  # made now, so both sends sign with it
    store_path = Path(loaded.store_path)
    pristine = store_path.with_name("before-send.db")
    shutil.copy(store_path, pristine)
    forks = _forks()

    here = send_issue(loaded, SAMPLE_ISSUE, SendOptions(lists=("members",), build_apart=False))
    assert (here.sent, here.status, len(forks)) == (SUBSCRIBERS, "complete", 0)
    built_here = _personalizations(sendgrid_api.mail)

    for suffix in ("-wal", "-shm"):
        Path(f"{store_path}{suffix}").unlink(missing_ok=True)
    shutil.copy(pristine, store_path)
    sendgrid_api.mail.requests.clear()
    apart = send_issue(loaded, SAMPLE_ISSUE, SendOptions(lists=("members",), build_apart=True))
    assert (apart.sent, apart.status, len(forks)) == (SUBSCRIBERS, "complete", 1)
    assert _personalizations(sendgrid_api.mail) == built_here
    assert [len(batch) for batch in built_here] == [10, 10, 5]
    assert ledger_counts(built_project)["sent"] == SUBSCRIBERS


def test_who_leaves_after_the_builder_read_them_is_not_sent(
    built_project: Path, sendgrid_api: Any
) -> None:
    fake = sendgrid_api.mail
    loaded = load_config(built_project)
    with open_store(loaded) as store:
        last = max(store.subscribers_of("members"), key=lambda subscriber: subscriber.id)
    # The first answer waits, so the builder has read every page before anyone leaves.
    fake.script(Reply(delay=1.5))
    reports: list[SendReport] = []
    sending = threading.Thread(
        target=lambda: reports.append(
            send_issue(loaded, SAMPLE_ISSUE, SendOptions(lists=("members",), build_apart=True))
        )
    )
    sending.start()
    deadline = time.monotonic() + 10
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(fake.requests) == 1
    time.sleep(0.3)
    with open_store(loaded) as store:
        store.unsubscribe(last.email, source="web")
    sending.join(timeout=30)

    report = reports[0]
    addresses = [p["to"][0]["email"] for batch in _personalizations(fake) for p in batch]
    assert last.email not in addresses
    assert len(addresses) == len(set(addresses)) == SUBSCRIBERS - 1
    assert (report.sent, report.skipped, report.status) == (SUBSCRIBERS - 1, 1, "complete")
    counts = ledger_counts(built_project)
    assert (counts["sent"], counts["skipped"], counts["queued"]) == (SUBSCRIBERS - 1, 1, 0)
