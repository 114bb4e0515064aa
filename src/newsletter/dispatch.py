"""The one send loop: claim a batch, hand it to a worker, settle what came of it.

listmonk's campaign manager is the model: a bounded queue of work and N workers, and an
error budget that pauses the campaign when the provider fails instead of burning through
the list. Here:

- A claim is a commit of its own that does not wait for the disk, and each batch's answer
  another that does; at most one batch more than there are workers is claimed, so a worker
  never waits for its next batch, and a claimed batch only becomes ``sending`` (a durable
  mark) when its worker posts it.
- Outcomes are data. Accepted and refused recipients are done; those certainly not
  delivered wait for a retry time with exponential back-off and full jitter (never sooner
  than the provider asked); unknown outcomes become unconfirmed and are never re-sent by
  the loop.
- A batch that fails whole (nobody accepted or refused) counts against the budget: the
  loop pauses before claiming more, longer each time, and stops after ``max_attempts``
  failures in a row. A failure retrying cannot mend (a refused key) stops it at once.
- Whatever stops the loop, claimed batches that did not go out go back to the queue,
  the ones out are waited for and recorded, and recipients waiting to retry are queued.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .errors import NewsletterError, SendError
from .providers.base import retry_delay
from .send_models import Delivery, Outcome
from .store.db import parse_time
from .store.ledger import Claim, Ledger
from .tokens import TokenSigner
from .workers import Task, Workers

log = logging.getLogger(__name__)
HEARTBEAT_S = 1.0
RECHECK_S = 0.05
"""The least wait for a retry that was due and still not claimed."""
MAX_LISTED = 100
"""Refused and unconfirmed recipients named in a run's summary; the ledger has them all."""

ProgressCallback = Callable[[int, int | None], None]
"""Called with (recipients settled, recipients this run will try, if known)."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    """Attempts per recipient in one run, and failed batches in a row before the send stops."""
    base: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """The wait before attempt ``attempt + 1``: full jitter, at least what was asked."""
        planned = rng.uniform(0.0, min(self.cap, self.base * 2 ** max(0, attempt - 1)))
        return retry_delay(planned, retry_after)


@dataclass
class RunTally:
    """What one run did, for its report; the ledger holds the full story."""

    accepted: int = 0
    refused: int = 0
    unconfirmed: int = 0
    deferred: int = 0
    """Not delivered by an attempt of this run (each time), so tried again."""
    batches: int = 0
    claimed: int = 0
    refusals: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    last_failure: str = ""

    def add(self, claim: Claim, delivery: Delivery) -> None:
        counts = delivery.counts()
        self.accepted += counts[Outcome.ACCEPTED]
        self.refused += counts[Outcome.REFUSED]
        self.unconfirmed += counts[Outcome.UNKNOWN]
        self.deferred += counts[Outcome.NOT_DELIVERED]
        self.batches += 1
        if counts[Outcome.REFUSED] or counts[Outcome.UNKNOWN]:
            listed = {Outcome.REFUSED: self.refusals, Outcome.UNKNOWN: self.unknown}
            for sid, email in zip(claim.subscriber_ids, claim.emails, strict=True):
                outcome, reason = delivery.outcome_of(sid)
                target = listed.get(outcome)
                if target is not None and len(target) < MAX_LISTED:
                    target.append((email, reason))
        if counts[Outcome.NOT_DELIVERED] or counts[Outcome.UNKNOWN]:
            self.last_failure = delivery.reason or next(
                (reason for _, reason in delivery.exceptions.values() if reason), ""
            )

    @property
    def settled(self) -> int:
        return self.accepted + self.refused + self.unconfirmed


class SendLoop:
    """One run of a send, under its lock; ``run`` returns this run's tally."""

    def __init__(
        self,
        ledger: Ledger,
        send_id: int,
        issue_id: str,
        list_ids: Sequence[int],
        workers: Workers,
        signer: TokenSigner,
        *,
        batch_size: int,
        policy: RetryPolicy,
        limit: int | None = None,
        rate: float | None = None,
        total: int | None = None,
        progress: ProgressCallback | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.ledger = ledger
        self.send_id = send_id
        self.issue_id = issue_id
        self.workers = workers
        self.signer = signer
        self.batch_size = max(1, min(batch_size, int(rate))) if rate else batch_size
        self.policy = policy
        self.limit = limit
        self.rate = rate
        self.total = total if limit is None or total is None else min(total, limit)
        self.progress = progress
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.tally = RunTally()
        self._lists = list(list_ids)
        self._after = dict.fromkeys(self._lists, 0)
        self._failures = 0
        self._paused_until = 0.0
        self._started = time.monotonic()
        # Paced sends go one batch at a time, so a pause really holds the next one back.
        self._capacity = workers.count if rate else workers.count + 1
        self._released: set[int] = set()
        self._last_beat = float("-inf")
        # Beyond the highest row an earlier run left, a claim need not look for one.
        self._last_row = ledger.last_row(send_id)

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> RunTally:
        pending: dict[Future[Delivery], Claim] = {}
        stop: NewsletterError | None = None
        try:
            while True:
                while stop is None and len(pending) < self._capacity and not self._paused():
                    claim = self._claim()
                    if claim is None:
                        break
                    pending[self.workers.submit(self._task(claim))] = claim
                if not pending:
                    if stop is not None or not (
                        self._wait_for_retries() or self._take_over_abandoned()
                    ):
                        break
                    continue
                done, _ = wait(pending, timeout=self._pause_left(), return_when=FIRST_COMPLETED)
                for future in done:
                    # The claim leaves ``pending`` only once its answer is recorded: an
                    # interruption in the middle of recording it (Ctrl-C, SIGTERM) leaves
                    # it to ``_finish_outstanding``, not 'sending' with nobody to settle it.
                    claim = pending[future]
                    if claim.batch_no in self._released:
                        del pending[future]
                        continue
                    halt = self._settle(claim, self._delivery(future, claim))
                    del pending[future]
                    if halt is not None and stop is None:
                        stop = halt
                        self._release(pending)
        except BaseException:
            self._release(pending)
            self._finish_outstanding(pending)
            raise
        finally:
            self.ledger.requeue_waiting(self.send_id)
        if stop is not None:
            raise stop
        return self.tally

    def _task(self, claim: Claim) -> Task:
        """The claim as its worker needs it, with each recipient's unsubscribe token.

        Tokens are signed here, while the worker builds and posts the batch before: the
        two halves of the work take about as long, so neither process waits on the other.
        """
        ids, emails, lists = claim.subscriber_ids, claim.emails, claim.list_ids
        if lists and lists[0] == lists[-1] and len(set(lists)) == 1:
            tokens = self.signer.make_many(ids, emails, lists[0])
        else:
            tokens = list(map(self.signer.make, ids, emails, lists))
        return Task(claim.send_id, claim.batch_no, ids, tokens, claim.details)

    # --- claims ----------------------------------------------------------------------------

    def _claim(self) -> Claim | None:
        """The next batch: recipients whose retry is due first, then those queued by an
        earlier run, then new members, list by list. The send lock is checked in the same
        commit. ``--limit`` counts recipients tried for the first time in this run.

        The commit does not wait for the disk: a claim lost to a power cut took nobody
        anywhere, since a batch goes out only after its own durable ``sending`` mark; so
        a send waits for the disk twice per batch (that mark, the answer), not three times.
        """
        room = self.batch_size
        fresh_room = room if self.limit is None else min(room, self.limit - self.tally.claimed)
        with self.ledger.transaction(durable=False):
            self._heartbeat()
            claim = None
            if self.ledger.has_waiting(self.send_id):
                claim = self.ledger.claim_retries(
                    self.send_id, max_attempts=self.policy.max_attempts, limit=room
                )
                if claim is not None:
                    log.info(
                        "batch %(batch)d: trying %(recipients)d recipient(s) again",
                        {"event": "batch-retry", "batch": claim.batch_no,
                         "recipients": len(claim)},
                    )  # fmt: skip
                if claim is not None or fresh_room <= 0:
                    return claim
                claim = self.ledger.claim_queued(self.send_id, limit=fresh_room)
            while claim is None and self._lists and fresh_room > 0:
                list_id = self._lists[0]
                after = self._after[list_id]
                # Where senders share the send, another may have claimed beyond ``after``.
                fresh = after >= self._last_row and not self.ledger.db.shares_sends
                claim = self.ledger.claim_new(self.send_id, list_id, after, fresh_room, fresh=fresh)
                if claim is None:
                    self._lists.pop(0)
                else:
                    self._after[list_id] = max(after, claim.subscriber_ids[-1])
                    self._last_row = max(self._last_row, claim.subscriber_ids[-1])
        if claim is not None:
            self.tally.claimed += len(claim)
        return claim

    def _heartbeat(self) -> None:
        """Say the send is alive (and find out if the lock was lost), once a second at most:
        the lock goes stale only after minutes."""
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_S:
            self.ledger.heartbeat(self.issue_id)
            self._last_beat = now

    def _take_over_abandoned(self) -> bool:
        """Where senders share the send, the batches of one that is gone (killed, its host
        down) are settled as a new run would: posted ones become unconfirmed, the others go
        back to the queue and this run sends them. Whether any went back."""
        if not self.ledger.db.shares_sends:
            return False
        recovered = self.ledger.recover(self.send_id, waiting=False)
        if recovered.unconfirmed or recovered.requeued:
            log.info(
                "took over a stopped sender's batches: %(requeued)d queued again, "
                "%(unconfirmed)d left unconfirmed",
                {"event": "send-taken-over", "requeued": recovered.requeued,
                 "unconfirmed": recovered.unconfirmed},
            )  # fmt: skip
        return recovered.requeued > 0

    def _wait_for_retries(self) -> bool:
        """Nothing to claim and nothing out: wait for the next retry or pause to end; False
        when nobody is left to try in this run.

        Nothing is claimed during a pause, so a retry already due waits for the pause to
        end (it used to be found due, waited for 0 s and looked for again, a thousand times
        a second for the whole pause). A retry that is due and was still not claimed (a
        sender sharing the send took it) is looked for again ``RECHECK_S`` later.
        """
        if self._paused():
            seconds = self._pause_left() or 0.0
        else:
            due = self.ledger.next_retry_at(self.send_id, max_attempts=self.policy.max_attempts)
            if due is None:
                return False
            seconds = max(RECHECK_S, _seconds_until(due))
        log.info(
            "waiting %(seconds).1f s for the next retry or the end of a pause",
            {"event": "wait", "seconds": round(seconds, 3)},
        )
        self.sleep(seconds + 0.001)
        return True

    def _paused(self) -> bool:
        return time.monotonic() < self._paused_until

    def _pause_left(self) -> float | None:
        left = self._paused_until - time.monotonic()
        return left if left > 0 else None

    # --- answers ---------------------------------------------------------------------------

    def _delivery(self, future: Future[Delivery], claim: Claim) -> Delivery:
        """The worker's answer, or what a worker that failed outright means: unknown if its
        batch had gone out, else not delivered; either way the send stops."""
        try:
            return future.result()
        except Exception as exc:
            error = (
                exc
                if isinstance(exc, NewsletterError)
                else SendError(
                    f"a worker delivering batch {claim.batch_no} failed: "
                    f"{type(exc).__name__}: {exc}",
                    hint="nothing unconfirmed was marked sent; run the same command again "
                    "to resume",
                )
            )
            went_out = self.ledger.batch_state(claim.send_id, claim.batch_no) == "sending"
            outcome = Outcome.UNKNOWN if went_out else Outcome.NOT_DELIVERED
            return Delivery.of_all(claim.subscriber_ids, outcome, str(error), halt=error)

    def _settle(self, claim: Claim, delivery: Delivery) -> NewsletterError | None:
        """Record a batch's answer and decide what follows: go on, pause, or stop."""
        counts = delivery.counts()
        failed_whole = bool(delivery.subscriber_ids) and not (
            counts[Outcome.ACCEPTED] or counts[Outcome.REFUSED]
        )
        self._failures = self._failures + 1 if failed_whole else 0
        attempt = max(1, self._failures)
        retry_in = self.policy.delay(attempt, delivery.retry_after, self.rng)
        self.ledger.settle(claim, delivery, retry_in=retry_in)
        self.tally.add(claim, delivery)
        _log_batch(claim, counts, self.tally)
        if self.progress is not None:
            self.progress(self.tally.settled, self.total)
        if delivery.halt is not None:
            log.error(
                "batch %(batch)d: the send stops: %(reason)s",
                {"event": "send-halted", "batch": claim.batch_no, "reason": str(delivery.halt)},
            )
            return delivery.halt
        if failed_whole:
            log.warning(
                "batch %(batch)d not delivered (%(reason)s): %(failures)d of %(max_attempts)d "
                "failed batches in a row; pausing %(pause).1f s, then trying again",
                {"event": "backoff", "batch": claim.batch_no,
                 "reason": self.tally.last_failure or "no reason given",
                 "failures": self._failures, "max_attempts": self.policy.max_attempts,
                 "pause": round(retry_in, 3)},
            )  # fmt: skip
        if self._failures >= self.policy.max_attempts:
            return SendError(
                f"the provider failed {self._failures} batches in a row; the last: "
                f"{self.tally.last_failure}",
                hint="nobody was marked sent without the provider's answer; those not "
                "delivered are queued again: run the same command later to resume",
            )
        if self._failures:
            self._pause(retry_in)
        elif self.rate:
            self._pause(self.tally.claimed / self.rate - (time.monotonic() - self._started))
        return None

    def _pause(self, seconds: float) -> None:
        """Hold back the next claim: waits through ``sleep`` so tests can record them."""
        if seconds <= 0:
            return
        if self.rate and not self._failures:
            self.sleep(seconds)
            return
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    # --- stopping ----------------------------------------------------------------------------

    def _release(self, pending: dict[Future[Delivery], Claim]) -> None:
        """Claimed batches that have not gone out go back to the queue; a worker that picks
        one up later finds it released and does not post it."""
        for future, claim in pending.items():
            if self.ledger.release(claim.send_id, claim.batch_no):
                self._released.add(claim.batch_no)
                future.cancel()

    def _finish_outstanding(self, pending: dict[Future[Delivery], Claim]) -> None:
        """After an interruption: record the answers of the batches already out."""
        for future, claim in list(pending.items()):
            if claim.batch_no in self._released:
                continue
            try:
                delivery = future.result()
            except BaseException:  # the worker itself failed; its batch says how far it got
                continue
            if self.ledger.batch_state(claim.send_id, claim.batch_no) == "sending":
                self.ledger.settle(claim, delivery, retry_in=0.0)
                self.tally.add(claim, delivery)


def _log_batch(claim: Claim, counts: dict[Outcome, int], tally: RunTally) -> None:
    """One line per batch, never per recipient: a 1,000,000 send logs 1,000 of them."""
    if not log.isEnabledFor(logging.INFO):
        return
    log.info(
        "batch %(batch)d: %(accepted)d sent, %(refused)d refused, %(unconfirmed)d "
        "unconfirmed, %(not_delivered)d not delivered (%(settled)d settled in this run)",
        {"event": "batch", "batch": claim.batch_no, "recipients": len(claim),
         "accepted": counts[Outcome.ACCEPTED], "refused": counts[Outcome.REFUSED],
         "unconfirmed": counts[Outcome.UNKNOWN],
         "not_delivered": counts[Outcome.NOT_DELIVERED], "settled": tally.settled},
    )  # fmt: skip


def _seconds_until(moment: str) -> float:
    return (parse_time(moment) - datetime.now(UTC)).total_seconds()
