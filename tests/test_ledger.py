"""The send ledger and the per-issue send lock, with real second processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from newsletter.errors import SendInProgressError
from newsletter.send_models import Delivery, Outcome
from newsletter.store import Ledger, Store
from newsletter.store.ledger import Claim
from newsletter.store.subscribers import NewSubscriber

ISSUE = "001-2026-11-24"


@pytest.fixture
def store(store_location: Path | str) -> Iterator[Store]:
    opened = Store.open(store_location)
    opened.ensure_list("members")
    opened.upsert_many([NewSubscriber(f"p{i}@example.org") for i in range(1, 11)], "members")
    yield opened
    opened.close()


@pytest.fixture
def ledger(store: Store) -> Ledger:
    return Ledger(store, owner="here:1")


def ids(store: Store) -> list[int]:
    return [s.id for s in store.subscribers_of("members")]


def delivery(claim: Claim, outcome: Outcome, reason: str = "", **exceptions: object) -> Delivery:
    return Delivery.of_all(claim.subscriber_ids, outcome, reason)


def started(ledger: Ledger) -> int:
    return ledger.open_send(ISSUE, ["members"]).id


def members_id(store: Store) -> int:
    return store.list_id("members")


def test_a_claim_takes_members_in_id_order_and_never_twice(store: Store, ledger: Ledger) -> None:
    send = started(ledger)
    first = ledger.claim_new(send, members_id(store), 0, 4)
    assert first is not None and first.subscriber_ids == ids(store)[:4]
    rows = ledger.batch_rows(
        send, first.batch_no, first.subscriber_ids[0], first.subscriber_ids[-1]
    )
    assert [row[1] for row in rows] == [f"p{i}@example.org" for i in range(1, 5)]
    assert {row[4] for row in rows} == {members_id(store)}
    # Claimed members have a row now: a claim from the start again skips them (unless it
    # is told no row lies beyond where it starts, which is how a fresh send claims).
    second = ledger.claim_new(send, members_id(store), 0, 4)
    assert second is not None and second.subscriber_ids == ids(store)[4:8]
    assert second.batch_no == first.batch_no + 1
    counts = ledger.counts(ISSUE)
    assert counts["queued"] == 8 and sum(counts.values()) == 8
    assert ledger.not_reached(ISSUE, ["members"]) == 2
    assert ledger.unsent(ISSUE, ["members"]) == 2
    assert ledger.issues() == [ISSUE]


def test_a_batch_moves_through_sending_to_its_outcome(store: Store, ledger: Ledger) -> None:
    send = started(ledger)
    claim = ledger.claim_new(send, members_id(store), 0, 5)
    assert claim is not None
    assert ledger.mark_sending(send, claim.batch_no) is True
    assert ledger.mark_sending(send, claim.batch_no) is False  # only a claimed batch goes out
    assert ledger.counts(ISSUE)["sending"] == 5
    first, second = claim.subscriber_ids[:2]
    answer = Delivery(
        tuple(claim.subscriber_ids),
        Outcome.ACCEPTED,
        exceptions={
            first: (Outcome.REFUSED, "550 no such mailbox"),
            second: (Outcome.NOT_DELIVERED, "451 try later"),
        },
        provider_id="msg-1",
    )
    ledger.settle(claim, answer, retry_in=60)
    counts = ledger.counts(ISSUE)
    assert (counts["sent"], counts["refused"], counts["retry"], counts["sending"]) == (3, 1, 1, 0)
    refused = ledger.entries(ISSUE, "refused")
    assert [(e.subscriber_id, e.error) for e in refused] == [(first, "550 no such mailbox")]
    [waiting] = ledger.entries(ISSUE, "retry")
    assert (waiting.subscriber_id, waiting.attempts) == (second, 1)
    assert waiting.retry_at is not None
    sent = ledger.entries(ISSUE, "sent")
    assert {e.provider_id for e in sent} == {"msg-1"}
    # Not due yet: nothing to claim; once due, it is claimed before anyone new.
    assert ledger.claim_retries(send, max_attempts=6, limit=10) is None
    store.db.execute("UPDATE send_ledger SET retry_at = '2000-01-01T00:00:00.000000Z'")
    again = ledger.claim_retries(send, max_attempts=6, limit=10)
    assert again is not None and again.subscriber_ids == [second]
    assert ledger.counts(ISSUE)["retry"] == 0 and ledger.counts(ISSUE)["queued"] == 1


def test_a_stop_leaves_only_what_was_being_posted_unconfirmed(store: Store, ledger: Ledger) -> None:
    send = started(ledger)
    posted = ledger.claim_new(send, members_id(store), 0, 3)
    waiting = ledger.claim_new(send, members_id(store), 0, 3)
    deferred = ledger.claim_new(send, members_id(store), 0, 2)
    assert posted and waiting and deferred
    ledger.mark_sending(send, posted.batch_no)
    ledger.mark_sending(send, deferred.batch_no)
    ledger.settle(deferred, delivery(deferred, Outcome.NOT_DELIVERED, "429"), retry_in=30)
    # The process stops here: one batch out, one claimed, two recipients waiting to retry.
    recovered = Ledger(store, owner="later:2").recover(send)
    assert (recovered.unconfirmed, recovered.requeued) == (3, 5)
    counts = ledger.counts(ISSUE)
    assert (counts["unconfirmed"], counts["queued"], counts["sending"], counts["retry"]) == (
        3,
        5,
        0,
        0,
    )
    assert {e.subscriber_id for e in ledger.entries(ISSUE, "unconfirmed")} == set(
        posted.subscriber_ids
    )
    # The queued ones are claimed again, the unconfirmed never without being asked.
    again = ledger.claim_queued(send, limit=10)
    assert again is not None
    assert set(again.subscriber_ids) == set(waiting.subscriber_ids + deferred.subscriber_ids)
    assert ledger.requeue_unconfirmed(send) == 3
    # Claimed and not yet posted is still queued: 5 claimed again, 3 asked for.
    assert ledger.counts(ISSUE)["queued"] == 8


def test_requeue_unconfirmed_older_than_keeps_recent_ones(store: Store, ledger: Ledger) -> None:
    send = started(ledger)
    claim = ledger.claim_new(send, members_id(store), 0, 4)
    assert claim is not None
    ledger.mark_sending(send, claim.batch_no)
    ledger.settle(claim, delivery(claim, Outcome.UNKNOWN, "read timeout"), retry_in=0)
    assert ledger.counts(ISSUE)["unconfirmed"] == 4
    assert ledger.requeue_unconfirmed(send, older_than=timedelta(hours=1)) == 0
    store.db.execute("UPDATE send_batches SET finished_at = '2026-01-01T00:00:00.000000Z'")
    assert ledger.requeue_unconfirmed(send, older_than=timedelta(hours=1)) == 4


def test_a_webhook_confirmation_settles_unconfirmed_and_is_never_overwritten(
    store: Store, ledger: Ledger
) -> None:
    send = started(ledger)
    claim = ledger.claim_new(send, members_id(store), 0, 3)
    assert claim is not None
    one, two, three = claim.subscriber_ids
    ledger.mark_sending(send, claim.batch_no)
    # The provider's event arrives while the request is still out.
    assert ledger.confirm(ISSUE, one, Outcome.ACCEPTED, "event=processed") is True
    ledger.settle(claim, delivery(claim, Outcome.UNKNOWN, "no answer"), retry_in=0)
    assert ledger.confirm(ISSUE, two, Outcome.REFUSED, "event=dropped reason=Bounced") is True
    assert ledger.confirm(ISSUE, two, Outcome.REFUSED, "event=dropped") is False  # once
    assert ledger.confirm(ISSUE, 999, Outcome.ACCEPTED, "unknown subscriber") is False
    states = {e.subscriber_id: e.state for e in ledger.entries(ISSUE)}
    assert states == {one: "sent", two: "refused", three: "unconfirmed"}
    # A sent recipient is not changed by a later event either.
    assert ledger.confirm(ISSUE, one, Outcome.REFUSED, "event=dropped") is False


def test_released_batch_goes_back_and_cannot_be_posted(store: Store, ledger: Ledger) -> None:
    send = started(ledger)
    claim = ledger.claim_new(send, members_id(store), 0, 4)
    assert claim is not None
    assert ledger.release(send, claim.batch_no) is True
    assert ledger.mark_sending(send, claim.batch_no) is False
    assert ledger.counts(ISSUE)["queued"] == 4
    out = ledger.claim_queued(send, limit=2)
    assert out is not None and out.subscriber_ids == claim.subscriber_ids[:2]
    ledger.mark_sending(send, out.batch_no)
    assert ledger.release(send, out.batch_no) is False  # already going out


def test_who_left_while_waiting_is_skipped_and_not_claimed(store: Store, ledger: Ledger) -> None:
    send = started(ledger)
    claim = ledger.claim_new(send, members_id(store), 0, 3)
    assert claim is not None
    ledger.release(send, claim.batch_no)
    leaver = claim.subscriber_ids[1]
    store.unsubscribe(leaver)
    again = ledger.claim_queued(send, limit=10)
    assert again is not None and leaver not in again.subscriber_ids
    assert [e.subscriber_id for e in ledger.entries(ISSUE, "skipped")] == [leaver]
    # A member who left before their turn is never claimed at all.
    gone = ids(store)[5]
    store.unsubscribe(gone)
    rest = ledger.claim_new(send, members_id(store), 0, 10)
    assert rest is not None and gone not in rest.subscriber_ids


def test_counts_stay_true_when_recipients_move_or_are_removed(store: Store, ledger: Ledger) -> None:
    send = started(ledger)
    claim = ledger.claim_new(send, members_id(store), 0, 5)
    assert claim is not None
    ledger.mark_sending(send, claim.batch_no)
    deferred = claim.subscriber_ids[0]
    ledger.settle(
        claim,
        Delivery(
            tuple(claim.subscriber_ids),
            Outcome.ACCEPTED,
            exceptions={deferred: (Outcome.NOT_DELIVERED, "451")},
        ),
        retry_in=0,
    )
    store.db.execute("UPDATE send_ledger SET retry_at = '2000-01-01T00:00:00.000000Z'")
    retried = ledger.claim_retries(send, max_attempts=6, limit=5)
    assert retried is not None
    ledger.mark_sending(send, retried.batch_no)
    ledger.settle(retried, delivery(retried, Outcome.ACCEPTED), retry_in=0)
    store.remove(claim.subscriber_ids[1])
    counts = ledger.counts(ISSUE)
    assert counts["sent"] == 4 and sum(counts.values()) == 4
    by_rows = {state: 0 for state in counts}
    for entry in ledger.entries(ISSUE):
        by_rows[entry.state] += 1
    assert by_rows == counts


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
        [sys.executable, "-c", HOLDER, str(store.db.location), ISSUE, "60"],
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
            [sys.executable, "-c", HOLDER, str(store.db.location), ISSUE, "3"],
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


def test_a_claim_of_new_members_carries_their_columns_while_all_are_in_the_store(
    store: Store, ledger: Ledger
) -> None:
    send = started(ledger)
    claim = ledger.claim_new(send, members_id(store), 0, 4)
    assert claim is not None and claim.details is not None
    first, last = claim.subscriber_ids[0], claim.subscriber_ids[-1]
    columns = ledger.batch_columns(send, claim.batch_no, first, last)
    assert [text.split("\x1e") for text in claim.details] == list(columns[1:4])
    assert ledger.batch_intact(send, claim.batch_no, first, last, len(claim))
    store.remove(claim.subscriber_ids[1])
    assert not ledger.batch_intact(send, claim.batch_no, first, last, len(claim))


def test_a_batch_reads_the_same_as_columns_even_with_odd_stored_values(
    store: Store, ledger: Ledger
) -> None:
    send = started(ledger)
    # Stored before names were checked: a record separator and a comma in values.
    store.db.execute("UPDATE subscribers SET name = 'Odd\x1eName, Jr' WHERE id = 2")
    store.db.execute('UPDATE subscribers SET attributes = \'{"a":"x\\u001ey"}\' WHERE id = 3')
    claim = ledger.claim_new(send, members_id(store), 0, 5)
    assert claim is not None
    assert claim.details is None  # the worker reads such a batch itself
    assert claim.emails == [f"p{i}@example.org" for i in range(1, 6)]
    first, last = claim.subscriber_ids[0], claim.subscriber_ids[-1]
    rows = ledger.batch_rows(send, claim.batch_no, first, last)
    columns = ledger.batch_columns(send, claim.batch_no, first, last)
    assert [list(column) for column in zip(*rows, strict=True)] == [
        list(column) for column in columns
    ]
    assert columns[2][1] == "Odd\x1eName, Jr"
    store.db.execute("UPDATE subscribers SET name = 'Plain' WHERE id = 2")
    assert ledger.batch_columns(send, claim.batch_no, first, last)[2][1] == "Plain"
