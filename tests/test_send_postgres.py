"""Several senders on one send of a PostgreSQL store, a sender killed, the server gone.

Each recipient gets the issue once: whatever a loopback SMTP sink received, plus whoever
the ledger says is unconfirmed (their request was out when its sender died), is everyone,
and nobody is received twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    SAMPLE_ISSUE,
    build_first_issue,
    configure,
    import_members,
    ledger_counts,
    postgres_url,
    run_cli,
    use_store,
)
from newsletter.config import load_config
from newsletter.store import Ledger, open_store
from servers.postgres_cluster import PostgresCluster
from servers.smtp_sink import SmtpSink

PEOPLE = 400


def people_csv(folder: Path) -> Path:
    path = folder / "people.csv"
    rows = [f"reader{i:04d}@example.org,Reader {i}" for i in range(PEOPLE)]
    path.write_text("email,first_name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def project_on(
    sample_project: Path, url: str, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The sample project on a PostgreSQL store, PEOPLE members, sending to ``sink`` in
    batches of 10 over two connections."""
    use_store(sample_project, url, monkeypatch)
    configure(
        sample_project,
        provider={"type": "smtp", "smtp": {"host": sink.host, "port": sink.port,
                                           "security": "none", "connections": 2,
                                           "batch_size": 10}},
    )  # fmt: skip
    import_members(sample_project, people_csv(sample_project.parent))
    return build_first_issue(sample_project)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink(delay=0.01) as running:
        yield running


@pytest.fixture
def shared_project(
    sample_project: Path, postgres_cluster: Any, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> Path:
    return project_on(sample_project, postgres_url(postgres_cluster), sink, monkeypatch)


def start_sender(config: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", SAMPLE_ISSUE, "--config", str(config),
         "--list", "members", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy(),
    )  # fmt: skip


def wait_for(sink: SmtpSink, received: int, *processes: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while len(sink.received) < received and time.monotonic() < deadline:
        assert all(p.poll() is None for p in processes), "a sender ended too early"
        time.sleep(0.02)
    assert len(sink.received) >= received


def received_once_or_unconfirmed(config: Path, sink: SmtpSink) -> dict[str, int]:
    """Check the guarantee; the ledger's counts."""
    got = Counter(address for message in sink.received for address in message.rcpt_tos)
    assert max(got.values()) == 1, [a for a, n in got.items() if n > 1]
    with open_store(load_config(config)) as store:
        unconfirmed = {e.email for e in Ledger(store).entries(SAMPLE_ISSUE, "unconfirmed")}
    everyone = {f"reader{i:04d}@example.org" for i in range(PEOPLE)}
    assert set(got) | unconfirmed == everyone
    counts = ledger_counts(config)
    assert counts["sent"] + counts["unconfirmed"] == len(everyone)
    assert counts["sent"] == len(set(got) - unconfirmed)
    return counts


def test_two_senders_share_a_send_and_each_recipient_gets_it_once(
    shared_project: Path, sink: SmtpSink
) -> None:
    senders = [start_sender(shared_project, "--join") for _ in range(2)]
    outputs = [sender.communicate(timeout=120)[0] for sender in senders]
    assert [sender.returncode for sender in senders] == [0, 0], outputs
    counts = received_once_or_unconfirmed(shared_project, sink)
    assert counts["unconfirmed"] == 0
    sent = [int(out.split("sent ", 1)[1].split(",")[0]) for out in outputs]
    assert min(sent) > 0 and sum(sent) == PEOPLE, outputs


def test_when_one_sender_is_killed_the_other_finishes_its_work(
    shared_project: Path, sink: SmtpSink
) -> None:
    victim, survivor = (start_sender(shared_project, "--join") for _ in range(2))
    wait_for(sink, 100, victim, survivor)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    output = survivor.communicate(timeout=120)[0]
    assert survivor.returncode in (0, 11), output  # 11: the victim's batch in flight
    counts = received_once_or_unconfirmed(shared_project, sink)
    assert counts["unconfirmed"] <= 2 * 10  # one batch per connection of the victim
    assert counts["queued"] == counts["sending"] == 0


def test_join_needs_a_postgresql_store(built_project: Path) -> None:
    result = run_cli(["send", SAMPLE_ISSUE, "--config", str(built_project), "--join"])
    assert result.exit_code == 7, result.output
    assert "--join shares a send between several senders, which needs a PostgreSQL" in (
        result.output
    )


@pytest.fixture
def own_cluster(postgres_cluster: Any) -> Iterator[PostgresCluster]:
    """A cluster of its own, for a test that stops its server."""
    postgres_url(postgres_cluster)  # skips (or fails) without PostgreSQL
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.stop()


def test_a_send_whose_server_goes_away_stops_clearly_and_a_rerun_finishes_once(
    sample_project: Path, own_cluster: PostgresCluster, sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    config = project_on(sample_project, own_cluster.url(), sink, monkeypatch)
    sender = start_sender(config)
    wait_for(sink, 60, sender)
    own_cluster.kill_server()
    # Waits for the sender to stop, with a deadline: a send that went on waiting for the
    # server would be stopped by ``TimeoutExpired`` and the test would fail.
    output = sender.communicate(timeout=60)[0]
    assert sender.returncode == 6, output
    assert "lost the connection to the PostgreSQL store" in output
    assert "running the command again carries on from there" in output
    assert "cluster-secret" not in output

    own_cluster.restart_server()
    rerun = run_cli(["send", SAMPLE_ISSUE, "--config", str(config), "--list", "members"])
    assert rerun.exit_code in (0, 11), rerun.output
    received_once_or_unconfirmed(config, sink)


HOLD_RUN_LOCK = (
    "import sys, time, os, socket; from datetime import UTC, datetime; "
    "from newsletter.lock import LockHolder; "
    "from newsletter.store.postgres import hold_run_lock; "
    "held = hold_run_lock(sys.argv[1], LockHolder('other-host', os.getpid(), datetime.now(UTC))); "
    "print('locked', flush=True); time.sleep(60)"
)


def test_runs_on_two_hosts_take_turns_through_the_store(
    sample_project: Path, postgres_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other host's run holds the store's run lock; this host's file lock is free."""
    url = postgres_url(postgres_cluster)
    here = sample_project
    use_store(here, url, monkeypatch)
    import_members(here)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_RUN_LOCK, url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        refused = run_cli(["run", "--config", str(here), "--now", "2026-11-24T08:05"])
        assert refused.exit_code == 8, refused.output
        assert f"another `newsletter run` (pid {holder.pid} on host other-host" in refused.stderr
        assert "holds the run lock of the store at postgresql://postgres:***@" in refused.stderr
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    ran = run_cli(["run", "--config", str(here), "--now", "2026-11-24T08:05"])
    assert ran.exit_code == 0, ran.output
    assert "issue 001-2026-11-24 sent: 25 sent, 0 refused, 0 unconfirmed" in ran.stdout


def test_an_unsubscribe_that_lands_during_a_send_is_honoured_from_the_next_batch(
    shared_project: Path, sink: SmtpSink
) -> None:
    """As from `serve` on another host: its own connection to the store, mid-send."""
    sender = start_sender(shared_project)
    wait_for(sink, 20, sender)
    leaving = [f"reader{i:04d}@example.org" for i in range(PEOPLE - 5, PEOPLE)]
    with open_store(load_config(shared_project)) as store:
        for address in leaving:
            store.unsubscribe(address, source="one-click")
    output = sender.communicate(timeout=120)[0]
    assert sender.returncode == 0, output
    got = {address for message in sink.received for address in message.rcpt_tos}
    assert not got & set(leaving)
    assert len(got) == PEOPLE - len(leaving)
