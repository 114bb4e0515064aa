"""What every provider shares: the order of a send, and how a retry waits.

The base fixes the order (check recipients -> build the provider's payload -> post it ->
read per-recipient results -> translate the provider's failures into our errors), so a
provider only supplies the hooks. A recipient whose data cannot be sent (a line break in
a header, a merge value that is not text, an address twice in one batch) fails alone,
with a result that says why; it never stops the rest of the send.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Self

from ..errors import NewsletterError, ProviderError, SendError, TransientProviderError
from ..message import PreparedIssue
from ..models import DeliveryResult, OutgoingIssue, Recipient

Checked = list[tuple[Recipient, dict[str, str]]]
"""Recipients that passed the checks, each with their merge values."""

RecipientRow = tuple[int, str, str, dict[str, Any], str]
"""A recipient as a plain tuple (id, address, name, merge values, unsubscribe URL): a big
send makes a million, and a tuple costs a fraction of a ``Recipient``."""


@dataclass(frozen=True)
class PreparedBatch:
    """A batch checked and turned into the provider's request, not yet posted."""

    payload: Any
    """None when every recipient was refused before posting."""
    subscriber_ids: list[int]
    """Every recipient handed in, in order."""
    rejected: dict[int, str]
    """Refused before posting (a line break in a header, an address twice): id -> why."""


@dataclass(frozen=True)
class BatchOutcome:
    """A posted batch's answer in bulk: everyone not in ``failed`` was accepted."""

    provider_id: str | None
    failed: dict[int, str]


class Provider(ABC):
    """A way of delivering messages; one instance is opened once and sends many batches."""

    name: ClassVar[str]
    max_batch_size: int = 100
    prepares_ahead: ClassVar[bool] = False
    """True if the provider offers ``prepare_rows`` and ``deliver``: the sender then builds
    the next request while the current one is on its way."""
    prepares_apart: ClassVar[bool] = False
    """True if ``prepare_rows`` may run in a forked process and its ``PreparedBatch``
    pickles: a big send then builds its requests there, on a core of its own."""

    def __init__(self, *, message_id_domain: str | None = None) -> None:
        self.message_id_domain = message_id_domain
        self._prepared: PreparedIssue | None = None
        self._opened = False

    # --- lifecycle: connections are made once and reused across batches -------------------

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

    # --- the fixed order of a send ------------------------------------------------------

    def send(self, issue: OutgoingIssue, recipients: Sequence[Recipient]) -> list[DeliveryResult]:
        """Deliver one batch; a result per recipient, in the order given.

        Raises AuthenticationError, TransientProviderError (worth retrying the batch) or
        ProviderError (stop the send); per-recipient refusals come back as results.
        """
        self.check_size(len(recipients))
        if not self._opened:
            self.open()
        prepared = self._prepare(issue)
        checked, rejected = self.validate(prepared, recipients)
        results = {result.subscriber_id: result for result in rejected}
        if checked:
            payload = self.build_payload(prepared, checked)
            reply = self.post_mapped(payload)
            for result in self.parse_results(payload, reply):
                results[result.subscriber_id] = result
        return [results[recipient.subscriber_id] for recipient in recipients]

    def prepare_rows(self, issue: OutgoingIssue, rows: Sequence[RecipientRow]) -> PreparedBatch:
        """Check a batch and build its request without sending it (``prepares_ahead``)."""
        raise NotImplementedError(f"{self.name} sends whole batches with send()")

    def deliver(self, batch: PreparedBatch) -> BatchOutcome:
        """Post a prepared batch; raises like ``send``."""
        raise NotImplementedError(f"{self.name} sends whole batches with send()")

    def check_size(self, count: int) -> None:
        if count > self.max_batch_size:
            raise SendError(
                f"{self.name}: a batch of {count} recipients is more than this "
                f"provider takes at once ({self.max_batch_size}); split it"
            )

    def post_mapped(self, payload: Any) -> Any:
        """``post``, with the provider's own failures turned into our errors."""
        try:
            return self.post(payload)
        except NewsletterError:
            raise
        except Exception as exc:
            mapped = self.map_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    def validate(
        self, prepared: PreparedIssue, recipients: Sequence[Recipient]
    ) -> tuple[Checked, list[DeliveryResult]]:
        checked: Checked = []
        rejected: list[DeliveryResult] = []
        seen: set[str] = set()
        for recipient in recipients:
            address = recipient.email.lower()
            if address in seen:
                rejected.append(
                    DeliveryResult(
                        recipient.subscriber_id,
                        ok=False,
                        error=f"{recipient.email} appears twice in one batch; sent once only",
                    )
                )
                continue
            seen.add(address)
            try:
                values = prepared.values_for(recipient)
            except NewsletterError as exc:
                rejected.append(DeliveryResult(recipient.subscriber_id, ok=False, error=str(exc)))
                continue
            checked.append((recipient, values))
        return checked, rejected

    def domain_for(self, issue: OutgoingIssue) -> str:
        """Message-IDs name the sender's domain unless told otherwise."""
        return self.message_id_domain or issue.from_address.rpartition("@")[2]

    def _prepare(self, issue: OutgoingIssue) -> PreparedIssue:
        # A send hands the same issue with every batch; prepare it once.
        if self._prepared is None or self._prepared.issue is not issue:
            self._prepared = PreparedIssue(issue)
        return self._prepared

    # --- hooks ---------------------------------------------------------------------------

    @abstractmethod
    def build_payload(self, prepared: PreparedIssue, checked: Checked) -> Any:
        """The provider's request for these recipients."""

    @abstractmethod
    def post(self, payload: Any) -> Any:
        """Hand the payload to the provider and return its reply."""

    @abstractmethod
    def parse_results(self, payload: Any, reply: Any) -> list[DeliveryResult]:
        """A result for every recipient of the payload."""

    def map_error(self, exc: Exception) -> ProviderError | None:
        """Our error for a failure of ``post``, or None to let it through unchanged."""
        return None


# --- retry policy: the sender waits, the provider only says whether waiting helps ----------


def backoff_delays(
    max_attempts: int,
    base: float = 1.0,
    cap: float = 60.0,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Waits before attempts 2..max_attempts: exponential with full jitter.

    Full jitter spreads out the retries of many workers hit by the same outage.
    """
    draw = rng or random.Random()
    for attempt in range(max_attempts - 1):
        yield draw.uniform(0.0, min(cap, base * 2**attempt))


def retry_delay(planned: float, error: TransientProviderError, cap: float = 3600.0) -> float:
    """The wait before the next attempt: never sooner than the provider asked for."""
    if error.retry_after is None:
        return planned
    return min(cap, max(planned, error.retry_after))
