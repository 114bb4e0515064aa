"""What every provider shares: the fixed order of a delivery, and what its outcomes mean.

A provider delivers one batch at a time, always in the same order (check each recipient
-> build the provider's request -> say it is going out -> post it -> read per-recipient
outcomes); a provider supplies the hooks and nothing else. Its failures are mapped to our
exceptions, and the base turns those into outcomes for the batch's recipients:

- ``TransientProviderError``: certainly not delivered, worth retrying (429, 5xx, a refused
  connection, a request not fully written);
- ``DeliveryUnknownError``: the request went out and no answer came;
- any other ``ProviderError`` (a refused key or sender, a request the provider cannot
  take): not delivered, and the send stops, since retrying cannot mend it.

A provider returns outcomes; the send loop decides what follows (retry, wait, stop).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from itertools import compress
from types import TracebackType
from typing import Any, ClassVar, Self

from .. import addresses
from ..errors import (
    DeliveryUnknownError,
    NewsletterError,
    ProviderError,
    SendError,
    TransientProviderError,
)
from ..message import PreparedIssue
from ..send_models import Delivery, Outcome, Recipient, RecipientRow

GoingOut = Callable[[], bool]
"""Called right before a request goes out; False means it must not (the send stopped)."""

NOT_POSTED = "not posted: the send stopped before this batch went out"


def _always() -> bool:
    return True


class Provider(ABC):
    """A way of delivering messages. One instance is one connection (or outbox writer):
    it is opened once and delivers many batches, one at a time."""

    name: ClassVar[str]
    max_batch_size: int = 100
    workers: int = 1
    """Batches delivered at once, each by its own instance (SMTP connections, say)."""
    in_processes: ClassVar[bool] = False
    """Deliveries are mostly CPU work (building big requests): run workers as processes,
    each with a core of its own, instead of threads."""

    def __init__(self, *, message_id_domain: str | None = None) -> None:
        self.message_id_domain = message_id_domain
        self._opened = False

    # --- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Resolve credentials and connect; errors here come before anything is sent."""
        self._opened = True

    def close(self) -> None:
        self._opened = False

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the fixed order of a delivery -----------------------------------------------------

    def deliver(
        self,
        issue: PreparedIssue,
        rows: Sequence[RecipientRow],
        going_out: GoingOut = _always,
    ) -> Delivery:
        """Deliver one batch; an outcome for every recipient in ``rows``."""
        self.check_size(len(rows))
        ids = [row[0] for row in rows]
        if not self._opened:
            try:
                self.open()
            except ProviderError as exc:
                # Nothing went out: a refused connection waits for a retry like any other.
                return failure(ids, exc)
        refused = self.refusals(issue, rows)
        sendable = [row for row in rows if row[0] not in refused] if refused else rows
        if not sendable:
            return Delivery.of_all(ids, Outcome.REFUSED).with_refused(refused, ids)
        payload = self.build_payload(issue, sendable)
        posted = [row[0] for row in sendable]
        if not going_out():
            return Delivery.of_all(ids, Outcome.NOT_DELIVERED, NOT_POSTED)
        try:
            delivery = self.post(payload, posted)
        except ProviderError as exc:
            delivery = failure(posted, exc)
        return delivery.with_refused(refused, ids)

    def check_size(self, count: int) -> None:
        if count > self.max_batch_size:
            raise SendError(
                f"{self.name}: a batch of {count} recipients is more than this "
                f"provider takes at once ({self.max_batch_size}); split it"
            )

    def refusals(self, issue: PreparedIssue, rows: Sequence[RecipientRow]) -> dict[int, str]:
        """Recipients this transport cannot carry, each with why: they fail alone.

        The same checks as an import's (``addresses``), then the issue's own: an address
        twice in one batch, a merge value that is not text or would break the subject.
        """
        if not rows:
            return {}
        # Columns at C speed: no Python code runs per recipient unless one needs a look.
        ids, emails, names, attributes, _ = zip(*rows, strict=True)
        refused = addresses.column_refusals(ids, emails, names)
        keys = list(map(str.lower, emails))
        if len(set(keys)) != len(keys):
            seen: set[str] = set()
            for sid, email, key in zip(ids, emails, keys, strict=True):
                if sid in refused:
                    continue
                if key in seen:
                    refused[sid] = f"{email} appears twice in one batch; sent once only"
                seen.add(key)
        fields = issue.fields
        for sid, email, name, values, token in compress(rows, attributes):
            if sid not in refused and not fields.isdisjoint(values):
                try:
                    issue.values_for(Recipient(sid, email, name, values, token))
                except NewsletterError as exc:
                    refused[sid] = exc.message
        return refused

    def domain_for(self, issue: PreparedIssue) -> str:
        """Message-IDs name the sender's domain unless told otherwise."""
        return self.message_id_domain or issue.issue.from_address.rpartition("@")[2]

    # --- hooks -----------------------------------------------------------------------------

    @abstractmethod
    def build_payload(self, issue: PreparedIssue, rows: Sequence[RecipientRow]) -> Any:
        """The provider's request for these recipients (all of them checked)."""

    @abstractmethod
    def post(self, payload: Any, subscriber_ids: Sequence[int]) -> Delivery:
        """Hand the payload to the provider; the outcome of each recipient in it.

        Raises a ``ProviderError`` (see the module docstring) when the whole request
        failed, after mapping the provider's own exceptions.
        """


def failure(subscriber_ids: Sequence[int], exc: ProviderError) -> Delivery:
    """What a failed request means for every recipient in it."""
    if isinstance(exc, DeliveryUnknownError):
        return Delivery.of_all(subscriber_ids, Outcome.UNKNOWN, exc.message)
    if isinstance(exc, TransientProviderError):
        return Delivery.of_all(
            subscriber_ids, Outcome.NOT_DELIVERED, exc.message, retry_after=exc.retry_after
        )
    return Delivery.of_all(subscriber_ids, Outcome.NOT_DELIVERED, exc.message, halt=exc)


# --- retry policy: the send loop waits, the provider only says how long it was asked to -------


def backoff_delays(
    max_attempts: int,
    base: float = 1.0,
    cap: float = 60.0,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Waits before attempts 2..max_attempts: exponential with full jitter.

    Full jitter spreads out the retries of many senders hit by the same outage.
    """
    draw = rng or random.Random()
    for attempt in range(max_attempts - 1):
        yield draw.uniform(0.0, min(cap, base * 2**attempt))


def retry_delay(planned: float, retry_after: float | None, cap: float = 3600.0) -> float:
    """The wait before the next attempt: never sooner than the provider asked for."""
    if retry_after is None:
        return planned
    return min(cap, max(planned, retry_after))
