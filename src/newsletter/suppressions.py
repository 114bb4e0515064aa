"""Bring SendGrid's suppression lists into the subscriber store.

SendGrid stops mail to addresses on its suppression lists whatever we send, so the store
should know about them too: otherwise our counts, exports and other providers keep treating
those people as reachable. Each list maps to one of our statuses:

  spam_reports                     -> complained
  bounces, invalid_emails          -> bounced
  unsubscribes (global)            -> unsubscribed
  the configured ASM group's list  -> unsubscribed (only when provider.sendgrid.asm_group_id
                                      is set)

Blocks are not read: SendGrid lists a block when a receiving server turned a message away
for a temporary reason (reputation, content, a full mailbox), and the next send may well
get through. Marking those people as bounced would drop readers for good over a passing
problem.

A status only ever moves towards the stronger one (subscribed < unsubscribed < bounced <
complained), so a person who complained is never turned into "unsubscribed" by a later
list, and running the sync twice records nothing new. Addresses SendGrid knows but the
store does not are counted and left out: the store holds only people who subscribed.

A sync that read every entry since the previous one (or all of them) records when it
started in the store, so the next can ask only for entries created since then
(``sync_since_last``, run before every SendGrid send), with a day's overlap for clocks
that disagree: reading an entry twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .config import LoadedConfig, resolve_secret
from .errors import ProviderError
from .providers.sendgrid_api import SendgridApi
from .send_models import SubscriberStatus
from .store import Store, open_store

SOURCE = "sendgrid-sync"
PAGE_SIZE = 500
"""SendGrid's largest page for the suppression lists."""
SKIPPED_KINDS = ("blocks",)
PERMISSION = "Suppressions (read access)"
"""The API key permission these endpoints need; Mail Send alone does not include it."""
SYNCED_AT_SETTING = "suppressions:synced-at"
"""When the last sync that left no gap started, in ISO 8601 UTC."""
SYNC_OVERLAP = timedelta(days=1)


@dataclass(frozen=True)
class SuppressionKind:
    """One of SendGrid's suppression lists and the status it means for us."""

    name: str
    path: tuple[str, ...]
    """Segments of the endpoint under /v3, walked with the client's fluent interface."""
    status: SubscriberStatus
    paged: bool = True
    """The ASM group list has no limit/offset/start_time: it comes in one answer."""


KINDS = (
    SuppressionKind("spam_reports", ("suppression", "spam_reports"), SubscriberStatus.COMPLAINED),
    SuppressionKind("bounces", ("suppression", "bounces"), SubscriberStatus.BOUNCED),
    SuppressionKind("invalid_emails", ("suppression", "invalid_emails"), SubscriberStatus.BOUNCED),
    SuppressionKind("unsubscribes", ("suppression", "unsubscribes"), SubscriberStatus.UNSUBSCRIBED),
)
"""Strongest status first, so an address on several lists gets one status event."""


def asm_group_kind(group_id: int) -> SuppressionKind:
    return SuppressionKind(
        "group_unsubscribes",
        ("asm", "groups", str(group_id), "suppressions"),
        SubscriberStatus.UNSUBSCRIBED,
        paged=False,
    )


@dataclass(frozen=True)
class KindCounts:
    kind: str
    status: SubscriberStatus
    fetched: int = 0
    updated: int = 0
    """Status changed, with a status event recorded."""
    unchanged: int = 0
    """Already in this status or a stronger one."""
    unknown: int = 0
    """Not in the store (or not a usable address); not added."""


@dataclass(frozen=True)
class SyncReport:
    kinds: tuple[KindCounts, ...]
    since: datetime | None = None
    skipped: tuple[str, ...] = SKIPPED_KINDS

    def of(self, kind: str) -> KindCounts:
        for counts in self.kinds:
            if counts.kind == kind:
                return counts
        raise KeyError(kind)

    @property
    def updated(self) -> int:
        return sum(counts.updated for counts in self.kinds)


@dataclass
class _Tally:
    fetched: int = 0
    updated: int = 0
    unchanged: int = 0
    unknown: int = 0
    seen: set[str] = field(default_factory=set)


def sync_suppressions(
    loaded: LoadedConfig,
    *,
    since: datetime | None = None,
    client: Any = None,
    page_size: int = PAGE_SIZE,
) -> SyncReport:
    """Read SendGrid's suppression lists (entries created at or after ``since``) into the store.

    ``client`` is a ``SendgridApi``; without one it is made from provider.sendgrid, and a
    missing API key raises ConfigError before any request. Raises AuthenticationError for a
    refused key and TransientProviderError for rate limits, 5xx answers and timeouts; lists
    already read stay applied, and running again is safe.
    """
    settings = loaded.settings.provider.sendgrid
    if not 1 <= page_size <= PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {PAGE_SIZE}, got {page_size}")
    if client is None:
        api_key = resolve_secret(settings.api_key, field="provider.sendgrid.api_key")
        client = SendgridApi(settings.host, api_key, timeout=settings.timeout)
    kinds = list(KINDS)
    if settings.asm_group_id is not None:
        kinds.append(asm_group_kind(settings.asm_group_id))
    start_time = _epoch(since) if since is not None else None
    fetcher = _Fetcher(client, page_size, start_time)
    results = []
    started = datetime.now(UTC)
    with open_store(loaded) as store:
        previous = _synced_at(store)
        # A sync from a later day than the last one leaves a gap: it must not move the mark.
        leaves_no_gap = since is None or (previous is not None and _aware(since) <= previous)
        for kind in kinds:
            tally = _Tally()
            for record in fetcher.records(kind):
                _apply(store, kind, record, tally)
            results.append(
                KindCounts(
                    kind.name,
                    kind.status,
                    tally.fetched,
                    tally.updated,
                    tally.unchanged,
                    tally.unknown,
                )
            )
        if leaves_no_gap:
            store.set_setting(SYNCED_AT_SETTING, started.isoformat(timespec="seconds"))
    return SyncReport(tuple(results), since=since)


def last_synced(loaded: LoadedConfig) -> datetime | None:
    """When the last sync that left no gap started; None if there has been none."""
    with open_store(loaded) as store:
        return _synced_at(store)


def sync_since_last(
    loaded: LoadedConfig, *, client: Any = None, overlap: timedelta = SYNC_OVERLAP
) -> SyncReport:
    """Read only what SendGrid added since the last sync (less ``overlap``); all on the first.

    Raises as ``sync_suppressions`` does; the mark moves only when every list was read.
    """
    previous = last_synced(loaded)
    since = previous - overlap if previous is not None else None
    return sync_suppressions(loaded, since=since, client=client)


def _synced_at(store: Store) -> datetime | None:
    value = store.get_setting(SYNCED_AT_SETTING)
    try:
        return _aware(datetime.fromisoformat(value)) if value else None
    except ValueError:
        return None  # unreadable: the next sync reads everything and writes a good one


def _apply(store: Store, kind: SuppressionKind, record: dict[str, Any], tally: _Tally) -> None:
    tally.fetched += 1
    email = str(record.get("email") or "")
    subscriber = store.get(email) if email else None
    if subscriber is None:
        tally.unknown += 1
        return
    if subscriber.status.strength >= kind.status.strength:
        tally.unchanged += 1
        return
    store.set_status(subscriber.id, kind.status, SOURCE, _detail(kind, record))
    tally.updated += 1


def _detail(kind: SuppressionKind, record: dict[str, Any]) -> str:
    """What SendGrid said, so 'why is this person bounced' has an answer in the history."""
    parts = [kind.name if kind.paged else f"{kind.name} of ASM group {kind.path[2]}"]
    reason = str(record.get("reason") or "").strip()
    if reason:
        parts.append(reason[:300])
    if record.get("status"):
        parts.append(f"status {record['status']}")
    if record.get("ip"):
        parts.append(f"from ip {record['ip']}")
    created = record.get("created")
    if isinstance(created, int | float):
        stamp = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        parts.append(f"created {stamp}")
    return "; ".join(parts)


def _aware(moment: datetime) -> datetime:
    """A date without a zone is taken as UTC, as SendGrid's timestamps are."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _epoch(moment: datetime) -> int:
    return int(_aware(moment).timestamp())


@dataclass(frozen=True)
class _Fetcher:
    client: SendgridApi
    page_size: int
    start_time: int | None

    def records(self, kind: SuppressionKind) -> Iterator[dict[str, Any]]:
        if not kind.paged:
            for item in self._get(kind, None):
                yield {"email": item} if isinstance(item, str) else item
            return
        offset = 0
        while True:
            query: dict[str, Any] = {"limit": self.page_size, "offset": offset}
            if self.start_time is not None:
                query["start_time"] = self.start_time
            page = self._get(kind, query)
            yield from (item for item in page if isinstance(item, dict))
            if len(page) < self.page_size:
                return
            offset += len(page)

    def _get(self, kind: SuppressionKind, query: dict[str, Any] | None) -> list[Any]:
        path = "/v3/" + "/".join(kind.path)
        page = self.client.get_json(path, query, permission=PERMISSION)
        if page is None:
            return []
        if not isinstance(page, list):
            raise ProviderError(
                f"sendgrid {self.client.host}{path}: expected a list of suppressions, "
                f"got {page!r:.200}"
            )
        return page
