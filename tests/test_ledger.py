"""The send ledger and the per-issue send lock, with real second processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.errors import SendInProgressError
from newsletter.store import Ledger, Store
from newsletter.store.subscribers import NewSubscriber

ISSUE = "001-2026-11-24"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store.db")
    opened.ensure_list("members")
    opened.upsert_many([NewSubscriber(f"p{i}@example.org") for i in range(1, 11)], "members")
    yield opened
    opened.close()


@pytest.fixture
def ledger(store: Store) -> Ledger:
    return Ledger(store, owner="here:1")


def ids(store: Store) -> list[int]:
    return [s.id for s in store.subscribers_of("members")]


def test_queue_is_idempotent(store: Store, ledger: Ledger) -> None:
    assert ledger.queue(ISSUE, "members", ids(store)[:4]) == 4
    assert ledger.queue(ISSUE, "members", ids(store)[:4]) == 0
    assert ledger.queue_list(ISSUE, "members") == 6
    assert ledger.queue_list(ISSUE, "members") == 0
    assert ledger.counts(ISSUE) == {
        "queued": 10,
        "in_flight": 0,
        "sent": 0,
        "failed": 0,
        "skipped": 0,
    }
    assert ledger.issues() == [ISSUE]


def test_claim_send_fail_and_counts(store: Store, ledger: Ledger) -> None:
    ledger.queue_list(ISSUE, "members")
    first = next(ledger.pending(ISSUE, chunk=4))
    batch = [s.id for s in first]
    assert ledger.claim(ISSUE, batch, "batch-1") == batch
    assert ledger.claim(ISSUE, batch, "batch-2") == []  # never handed out twice
    assert [e.batch_id for e in ledger.in_flight(ISSUE)] == ["batch-1"] * 4
    ledger.mark_sent(ISSUE, batch[:3], provider_id="msg-123")
    ledger.mark_failed(ISSUE, {batch[3]: "550 mailbox unavailable"})
    assert ledger.counts(ISSUE) == {
        "queued": 6,
        "in_flight": 0,
        "sent": 3,
        "failed": 1,
        "skipped": 0,
    }
    failed = ledger.entries(ISSUE, "failed")
    assert [(e.email, e.error) for e in failed] == [("p4@example.org", "550 mailbox unavailable")]
    assert {e.provider_id for e in ledger.entries(ISSUE, "sent")} == {"msg-123"}
    assert ledger.claim(ISSUE, batch, "batch-3") == []  # sent or failed: not claimable
    assert ledger.requeue_failed(ISSUE) == 1
    assert ledger.counts(ISSUE)["queued"] == 7


def test_pending_excludes_people_who_left_and_skip_marks_them(store: Store, ledger: Ledger) -> None:
    ledger.queue_list(ISSUE, "members")
    store.unsubscribe("p2@example.org", source="link")
    store.set_status("p5@example.org", "bounced", "provider")
    pending = [s.email for chunk in ledger.pending(ISSUE, chunk=3) for s in chunk]
    assert pending == [f"p{i}@example.org" for i in (1, 3, 4, 6, 7, 8, 9, 10)]
    assert ledger.skip_unsubscribed(ISSUE) == 2
    assert ledger.counts(ISSUE)["skipped"] == 2
    limited = [len(chunk) for chunk in ledger.pending(ISSUE, limit=5, chunk=2)]
    assert limited == [2, 2, 1]


def test_pending_can_be_claimed_while_iterating(store: Store, ledger: Ledger) -> None:
    ledger.queue_list(ISSUE, "members")
    for number, chunk in enumerate(ledger.pending(ISSUE, chunk=3)):
        claimed = ledger.claim(ISSUE, [s.id for s in chunk], f"b{number}")
        ledger.mark_sent(ISSUE, claimed, f"m{number}")
    assert ledger.counts(ISSUE)["sent"] == 10
    assert list(ledger.pending(ISSUE)) == []


def test_requeue_in_flight_after_a_crash(store: Store, ledger: Ledger) -> None:
    ledger.queue_list(ISSUE, "members")
    ledger.claim(ISSUE, ids(store)[:5], "b1")
    ledger.mark_sent(ISSUE, ids(store)[:2], "m1")
    assert ledger.requeue_in_flight(ISSUE) == 3
    assert ledger.counts(ISSUE) == {
        "queued": 8,
        "in_flight": 0,
        "sent": 2,
        "failed": 0,
        "skipped": 0,
    }


HOLDER = textwrap.dedent(
    """
    import sys, time
    from newsletter.store import Ledger, Store
    store = Store.open(sys.argv[1])
    ledger = Ledger(store)
    try:
        ledger.acquire_lock(sys.argv[2])
        print("locked", ledger.owner, flush=True)
    except Exception as exc:
        print("refused", type(exc).__name__, flush=True)
    time.sleep(float(sys.argv[3]))
    """
)


def test_lock_held_by_a_live_process_is_refused_and_taken_over_once_it_dies(
    tmp_path: Path, store: Store, ledger: Ledger
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store.db.path), ISSUE, "60"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        status, owner = child.stdout.readline().split()
        assert status == "locked"
        assert owner == f"{socket.gethostname()}:{child.pid}"
        with pytest.raises(SendInProgressError) as caught:
            ledger.acquire_lock(ISSUE)
        message = str(caught.value)
        assert f"issue {ISSUE} is already being sent by {owner} since" in message
        assert "wait for it to finish, or if that process is gone" in message
        assert caught.value.exit_code == 8
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    lock = ledger.acquire_lock(ISSUE)
    assert (lock.owner, lock.replaced) == ("here:1", owner)
    assert ledger.lock_holder(ISSUE).owner == "here:1"


def test_only_one_of_several_racing_processes_gets_the_lock(store: Store) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(store.db.path), ISSUE, "3"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    # Every child stays alive until all have tried, so no lock is left by a dead process.
    outcomes = [child.stdout.readline().split()[0] for child in children]
    for child in children:
        child.kill()
        child.wait()
        child.stdout.close()
    assert sorted(outcomes) == ["locked", "refused", "refused"]


def test_stale_heartbeat_is_taken_over_and_fresh_one_is_not(store: Store, ledger: Ledger) -> None:
    other = Ledger(store, owner="elsewhere.example.org:4242")
    other.acquire_lock(ISSUE)
    with pytest.raises(SendInProgressError, match=r"elsewhere\.example\.org:4242"):
        ledger.acquire_lock(ISSUE)
    store.db.execute(
        "UPDATE send_locks SET heartbeat_at = '2020-01-01T00:00:00.000000Z' WHERE issue_id = ?",
        (ISSUE,),
    )
    assert ledger.acquire_lock(ISSUE).replaced == "elsewhere.example.org:4242"
    with pytest.raises(SendInProgressError, match=r"lost the send lock .* here:1 took it over"):
        other.heartbeat(ISSUE)
    assert other.release_lock(ISSUE) is False
    before = ledger.lock_holder(ISSUE).heartbeat_at
    time.sleep(0.01)
    ledger.heartbeat(ISSUE)
    assert ledger.lock_holder(ISSUE).heartbeat_at > before
    assert ledger.release_lock(ISSUE) is True
    assert ledger.lock_holder(ISSUE) is None
    assert other.acquire_lock(ISSUE).replaced is None
