"""Send an archived issue to its lists: batching, the ledger, retries, pacing and the report.

The ledger is the single source of truth. Recipients are queued once per issue, claimed
(in flight) before a batch goes to the provider and marked sent only after it accepted,
so a rerun after a crash sends exactly what was not sent. Recipients left in flight by a
crash are unknown: by default they are reported and not re-sent (a duplicate is worse
than a gap the operator can close with ``--resend-in-flight``).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from .archive import Archive, atomic_write
from .builder import Builder, can_fork
from .config import LoadedConfig, resolve_secret
from .errors import (
    AuthenticationError,
    ConfigError,
    ProviderError,
    SendError,
    StoreError,
    TransientProviderError,
)
from .message import build_mime
from .models import ArchivedIssue, DeliveryResult, OutgoingIssue, Recipient, Subscriber
from .providers import Provider, backoff_delays, get_provider, retry_delay
from .providers.base import BatchOutcome, PreparedBatch, RecipientRow
from .store import Ledger, Store
from .store.ledger import ClaimedBatch, PageSpan, PendingPage
from .tokens import TokenSigner

REPORT_NAME = "send-report.json"
TEST_PREFIX = "[TEST] "
MAX_REPORTED_FAILURES = 100
SECRET_SETTING = "unsubscribe-secret"
NO_ATTRIBUTES = ("{}", "")
GIL_SWITCH_S = 0.00005
BUILD_APART_FROM = 10
"""Batches from which a send's requests are built in a second process by default."""


@dataclass(frozen=True)
class SendOptions:
    lists: tuple[str, ...] = ()
    dry_run: bool = False
    test_to: tuple[str, ...] = ()
    limit: int | None = None
    rate: float | None = None
    """Messages per second at most; None sends as fast as the provider takes them."""
    resend_in_flight: bool = False
    retry_failed: bool = False
    """Send again to recipients the provider refused last time (after fixing the cause)."""
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    build_apart: bool | None = None
    """Build a SendGrid send's requests in a second process; None decides by its size."""


@dataclass
class SendReport:
    issue_id: str
    lists: list[str]
    provider: str
    mode: str = "send"
    """send, dry-run or test."""
    status: str = "running"
    """running, complete, partial (--limit or stopped early), failed."""
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    already_sent: int = 0
    in_flight_unresolved: int = 0
    requeued_in_flight: int = 0
    requeued_failed: int = 0
    remaining: int = 0
    retries: int = 0
    rate_per_s: float = 0.0
    error: str | None = None
    failures: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sample: str | None = None

    def to_json(self) -> bytes:
        data = {k: v for k, v in asdict(self).items() if k != "sample"}
        return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


ProgressCallback = Callable[[int, int], None]
"""Called with (recipients done, recipients in this run) after each batch."""


def list_id_for(loaded: LoadedConfig, list_name: str) -> str:
    """RFC 2919: a list's name plus a domain we control, stable for filters and clients."""
    newsletter = loaded.settings.newsletter
    host = urlsplit(newsletter.site_url).hostname or "localhost"
    return f"{newsletter.name} <{list_name}.{host}>"


def outgoing_for(
    loaded: LoadedConfig, issue: ArchivedIssue, list_name: str, *, test: bool = False
) -> OutgoingIssue:
    try:
        html = Path(issue.html_path).read_text(encoding="utf-8")
        text = Path(issue.text_path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SendError(
            f"issue {issue.slug} is incomplete: {exc}",
            hint="rebuild it: remove its folder and run `newsletter build` again",
        ) from None
    settings = loaded.settings
    categories = [issue.slug, *settings.provider.sendgrid.categories]
    return OutgoingIssue(
        issue_id=issue.slug,
        subject=(TEST_PREFIX if test else "") + issue.subject,
        html=html,
        text=text,
        from_name=settings.newsletter.sender.name,
        from_address=settings.newsletter.sender.address,
        reply_to=settings.newsletter.reply_to,
        list_id=list_id_for(loaded, list_name),
        unsubscribe_mailto=settings.unsubscribe.mailto,
        categories=tuple(dict.fromkeys(categories))[:10],
    )


def unsubscribe_secret(loaded: LoadedConfig, store: Store) -> str:
    """The configured secret, or one the store generated, so the defaults need no setup.

    A multi-host deployment sets ``unsubscribe.secret`` so the web endpoint and the sender
    agree without sharing the database file.
    """
    try:
        return resolve_secret(loaded.settings.unsubscribe.secret, field="unsubscribe.secret")
    except ConfigError:
        return store.get_secret(SECRET_SETTING)


class RecipientFactory:
    """Turns subscribers into recipients with signed unsubscribe links.

    Tokens name a list by its id in the store; ``list_ids`` maps the names the ledger
    keeps to those ids.
    """

    def __init__(self, loaded: LoadedConfig, secret: str, list_ids: Mapping[str, int]) -> None:
        self.base = loaded.unsubscribe_url.rstrip("/")
        self.secret = secret
        self.signer = TokenSigner(secret)
        self.list_ids = dict(list_ids)

    def __call__(self, subscriber: Subscriber, list_name: str) -> Recipient:
        token = self.signer.make(subscriber.id, subscriber.email, self.list_ids[list_name])
        return Recipient(
            subscriber_id=subscriber.id,
            email=subscriber.email,
            name=subscriber.name,
            merge_values=dict(subscriber.attributes),
            unsubscribe_url=f"{self.base}/{token}",
        )

    def rows(self, page: PendingPage) -> list[RecipientRow]:
        """A ledger page as recipient rows: the same values as ``__call__``, as tuples."""
        ids, emails, names, attributes, list_names, _ = zip(*page.rows, strict=True)
        base = self.base + "/"
        if len(set(list_names)) == 1:
            urls = self.signer.make_many(ids, emails, self.list_ids[list_names[0]], prefix=base)
        else:
            urls = [
                base + self.signer.make(sid, email, self.list_ids[name])
                for sid, email, name in zip(ids, emails, list_names, strict=True)
            ]
        loads = orjson.loads
        values = [loads(raw) if raw not in NO_ATTRIBUTES else {} for raw in attributes]
        return list(zip(ids, emails, names, values, urls, strict=True))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _lists_for(loaded: LoadedConfig, options: SendOptions) -> tuple[str, ...]:
    if options.lists:
        return options.lists
    if loaded.settings.schedule.lists:
        return tuple(loaded.settings.schedule.lists)
    raise SendError(
        "no list to send to",
        hint="name one with --list NAME, or set schedule.lists in newsletter.yml",
    )


def send_issue(
    loaded: LoadedConfig,
    issue_ref: str,
    options: SendOptions,
    *,
    provider: Provider | None = None,
    progress: ProgressCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SendReport:
    """Send (or resume, dry-run or test-send) one archived issue; returns the report.

    The report is also written as send-report.json in the issue folder, except for test
    sends. Raises SendError subclasses when the send cannot start or had to stop; the
    report on disk then says how far it got.
    """
    archive = Archive(loaded.issues_dir, newsletter=loaded.settings.newsletter)
    issue = archive.find(issue_ref)
    lists = _lists_for(loaded, options)
    provider = provider or get_provider(loaded)
    mode = "test" if options.test_to else ("dry-run" if options.dry_run else "send")
    report = SendReport(issue_id=issue.slug, lists=list(lists), provider=provider.name, mode=mode)
    report.started_at = _now()
    started = time.perf_counter()
    from .store import open_store

    with open_store(loaded) as store:
        for name in lists:
            if store.find_list(name) is None:
                known = ", ".join(lst.name for lst in store.lists()) or "none yet"
                raise SendError(
                    f"there is no list named {name!r} (lists: {known})",
                    hint="add it under lists: in newsletter.yml, or check the spelling",
                )
        list_ids = {mailing_list.name: mailing_list.id for mailing_list in store.lists()}
        recipients_for = RecipientFactory(loaded, unsubscribe_secret(loaded, store), list_ids)
        outgoing = outgoing_for(loaded, issue, lists[0], test=bool(options.test_to))
        if options.test_to:
            _send_test(provider, outgoing, options.test_to, recipients_for, lists[0], report)
        elif options.dry_run:
            _dry_run(store, issue, lists, outgoing, recipients_for, report)
        else:
            if provider.name == "sendgrid":
                _sync_suppressions(loaded, report)
            _Delivery(
                Ledger(store),
                issue,
                lists,
                outgoing,
                recipients_for,
                provider,
                options,
                report,
                progress,
                sleep,
            ).run(started)
            return report
    _finish(report, started)
    return report


def _sync_suppressions(loaded: LoadedConfig, report: SendReport) -> None:
    """Bring in SendGrid's suppressions first, so the store's counts match what goes out.

    Only a key SendGrid does not know at all (401) stops the send: the same key would be
    refused for Mail Send. Any other failure leaves the send to go on with what the store
    already knows, since SendGrid drops mail to the addresses it suppresses anyway; a key
    limited to Mail Send (403 here) is a sound setup, not a reason to stop.
    """
    from .suppressions import PERMISSION, sync_since_last

    try:
        synced = sync_since_last(loaded)
    except AuthenticationError as exc:
        if exc.status != 403:
            raise
        report.notes.append(
            f"SendGrid's suppression lists were not read ({exc.message}); give the key "
            f"{PERMISSION} to keep the store in step with them"
        )
        return
    except ProviderError as exc:
        report.notes.append(
            f"SendGrid's suppression lists were not read ({exc.message}); sending with what "
            "the store knows, and SendGrid still drops mail to the addresses it suppresses"
        )
        return
    since = f" since {synced.since:%Y-%m-%d %H:%M} UTC" if synced.since else ""
    report.notes.append(
        f"read SendGrid's suppression lists{since}: {synced.updated} subscriber(s) newly "
        "marked bounced, complained or unsubscribed"
    )


def _finish(report: SendReport, started: float) -> None:
    report.finished_at = _now()
    report.duration_s = round(time.perf_counter() - started, 3)
    if report.duration_s > 0:
        report.rate_per_s = round(report.sent / report.duration_s, 1)


def _send_test(
    provider: Provider,
    outgoing: OutgoingIssue,
    addresses: Sequence[str],
    recipients_for: RecipientFactory,
    list_name: str,
    report: SendReport,
) -> None:
    """Send to named addresses with [TEST] in the subject; the ledger is not touched."""
    from .store.subscribers import normalise_address

    recipients = []
    for index, address in enumerate(addresses):
        email = normalise_address(address)
        # Id 0 belongs to nobody: the test copy's unsubscribe link is genuine in form but
        # cannot unsubscribe a real subscriber.
        recipients.append(recipients_for(Subscriber(id=index, email=email), list_name))
    with provider:
        results = provider.send(outgoing, recipients)
    _count(results, {r.subscriber_id: r.email for r in recipients}, report)
    report.status = "complete" if not report.failed else "failed"


def _dry_run(
    store: Store,
    issue: ArchivedIssue,
    lists: Sequence[str],
    outgoing: OutgoingIssue,
    recipients_for: RecipientFactory,
    report: SendReport,
) -> None:
    """Counts of what a send would do now, and one personalised sample; nothing is written."""
    ledger = Ledger(store)
    done = ledger.counts(issue.slug)
    report.already_sent = done.get("sent", 0)
    report.in_flight_unresolved = done.get("in_flight", 0)
    would_send = ledger.count_unsent(issue.slug, lists)
    report.remaining = would_send
    report.status = "complete"
    first = next(iter(store.subscribers_of(lists[0])), None)
    sample = first or Subscriber(id=0, email="sample@example.org", name="Sample Reader")
    message = build_mime(
        outgoing,
        recipients_for(sample, lists[0]),
        message_id_domain=outgoing.from_address.rpartition("@")[2],
    )
    report.sample = message.as_string()


@dataclass
class _Delivery:
    """One real send of one issue: what every step of it shares."""

    ledger: Ledger
    issue: ArchivedIssue
    lists: Sequence[str]
    outgoing: OutgoingIssue
    recipients_for: RecipientFactory
    provider: Provider
    options: SendOptions
    report: SendReport
    progress: ProgressCallback | None
    sleep: Callable[[float], None]

    @property
    def issue_id(self) -> str:
        return self.issue.slug

    def run(self, started: float) -> None:
        """Under the issue's send lock: queue, settle what a crash left, deliver, report."""
        lock = self.ledger.acquire_lock(self.issue_id)
        if lock.replaced:
            self.report.notes.append(f"took over the send lock left by {lock.replaced}")
        try:
            total = self._prepare()
            self._deliver(total)
            # Whoever left during the send was not claimed: they are skipped, not waiting.
            self.report.skipped += self.ledger.skip_unsubscribed(self.issue_id)
            self.report.remaining = self.ledger.counts(self.issue_id).get("queued", 0)
            self.report.status = "complete" if self.report.remaining == 0 else "partial"
        except BaseException as exc:
            self.report.status = "failed"
            self.report.error = str(exc) or type(exc).__name__
            raise
        finally:
            _finish(self.report, started)
            try:
                atomic_write(Path(self.issue.path) / REPORT_NAME, self.report.to_json())
            finally:
                self.ledger.release_lock(self.issue_id)

    def _prepare(self) -> int:
        """Queue the lists' members, apply the in-flight policy; how many this run sends."""
        ledger, report, options = self.ledger, self.report, self.options
        # Counted before queuing, when a first send has nothing to count: under the send
        # lock only queuing adds rows, all of them queued.
        counts = ledger.counts(self.issue_id)
        for name in self.lists:
            counts["queued"] += ledger.queue_list(self.issue_id, name)
        if sum(counts.values()) == 0:
            raise SendError(
                f"the list{'s' if len(self.lists) > 1 else ''} {', '.join(self.lists)} "
                "has no subscribed members",
                hint="add people with `newsletter subscribers import FILE.csv --list NAME`",
            )
        report.already_sent = counts.get("sent", 0)
        if counts.get("in_flight", 0):
            if options.resend_in_flight:
                report.requeued_in_flight = ledger.requeue_in_flight(self.issue_id)
                report.notes.append(
                    f"re-sending {report.requeued_in_flight} recipients whose earlier "
                    "delivery was interrupted (--resend-in-flight)"
                )
            else:
                report.in_flight_unresolved = counts["in_flight"]
                report.notes.append(
                    f"{counts['in_flight']} recipients were being sent when an earlier run "
                    "stopped; they may have received the issue and are not re-sent. "
                    "Use --resend-in-flight to send to them again"
                )
        if options.retry_failed and counts.get("failed", 0):
            report.requeued_failed = ledger.requeue_failed(self.issue_id)
            report.notes.append(
                f"trying again {report.requeued_failed} recipients the provider refused "
                "earlier (--retry-failed)"
            )
        skipped_now = ledger.skip_unsubscribed(self.issue_id)
        report.skipped = skipped_now + counts.get("skipped", 0)
        # Under the send lock nothing else moves a row: no need to count them all again.
        total = (
            counts.get("queued", 0)
            + report.requeued_in_flight
            + report.requeued_failed
            - skipped_now
        )
        return total if options.limit is None else min(total, options.limit)

    def _deliver(self, total: int) -> None:
        if self.provider.prepares_ahead:
            self._deliver_ahead(total)
            return
        done = 0
        window_start = time.monotonic()
        with self.provider:
            batches = self.ledger.pending_with_lists(
                self.issue_id, limit=self.options.limit, chunk=self._batch_size()
            )
            for chunk in batches:
                batch_id = uuid.uuid4().hex
                claimed = set(self.ledger.claim(self.issue_id, (s.id for s, _ in chunk), batch_id))
                recipients = [self.recipients_for(s, n) for s, n in chunk if s.id in claimed]
                if not recipients:
                    continue
                self._send_batch(recipients)
                done += len(recipients)
                self.ledger.heartbeat(self.issue_id)
                self._after_batch(done, total, window_start)

    def _deliver_ahead(self, total: int) -> None:
        """Build the next batches' requests while the posting thread claims, posts, records.

        Building is Python work; the ledger's commits and the request wait on the disk and
        the network with the GIL released, so one thread posts while this one builds, up
        to one batch ahead. Only the posting thread touches the ledger's states, one batch
        at a time: batch N+1 is claimed (committed in flight) in the commit that records
        batch N's answer, right before it is posted, so a send killed at any point leaves
        at most the one batch on its way in flight. A big send builds in a forked process
        instead (``builder``), with a GIL and a core of its own; this thread then only
        hands its batches on.
        """
        handoff: queue.Queue[_Ready | None] = queue.Queue(maxsize=1)
        stop = threading.Event()
        switch = sys.getswitchinterval()
        # The posting thread takes the GIL back after each commit and send; at the default
        # 5 ms it would wait most of a batch's building time for it, every time.
        sys.setswitchinterval(GIL_SWITCH_S)
        with (
            _restored_switch(switch),
            self.provider,
            # Forked before the posting thread starts: a fork copies only the thread forking.
            self._ready_batches(total) as batches,
            ThreadPoolExecutor(1, thread_name_prefix="send") as poster,
        ):
            posting = poster.submit(self._post_ahead, handoff, stop, total)
            try:
                for ready in batches:
                    if not _hand_over(handoff, ready, posting):
                        break
                else:
                    _hand_over(handoff, None, posting)
            except BaseException:
                # Stopped while building: the batch on its way still gets recorded, the
                # ones not yet claimed are left queued.
                stop.set()
                _drain(handoff)
                _hand_over(handoff, None, posting)
                posting.exception()
                raise
            posting.result()

    @contextmanager
    def _ready_batches(self, total: int) -> Iterator[Iterator[_Ready]]:
        """The batches to post, built here or, for a big send, in a builder process."""
        chunk = self._batch_size()
        if self._builds_apart(total, chunk):
            with Builder(
                self.ledger.db.path,
                self.issue_id,
                limit=self.options.limit,
                chunk=chunk,
                rows_of=self.recipients_for.rows,
                prepare=self._prepare_rows,
            ) as builder:
                yield (
                    _Ready(
                        built.span,
                        built.batch,
                        _RowsLater(built.page, self.recipients_for),
                        posted,
                    )
                    for built, posted in builder
                )
            return
        pages = self.ledger.pending_pages(self.issue_id, limit=self.options.limit, chunk=chunk)
        with closing(pages):
            yield (self._built_here(page) for page in pages)

    def _builds_apart(self, total: int, chunk: int) -> bool:
        if not (self.provider.prepares_apart and can_fork()):
            return False
        if self.options.build_apart is not None:
            return self.options.build_apart
        return total >= BUILD_APART_FROM * chunk

    def _built_here(self, page: PendingPage) -> _Ready:
        rows = self.recipients_for.rows(page)
        return _Ready(page.span, self._prepare_rows(rows), _given(rows))

    def _prepare_rows(self, rows: list[RecipientRow]) -> PreparedBatch:
        return self.provider.prepare_rows(self.outgoing, rows)

    def _post_ahead(
        self, handoff: queue.Queue[_Ready | None], stop: threading.Event, total: int
    ) -> None:
        """The posting thread: claim, post and record each prepared batch in turn."""
        ledger = self.ledger
        done = 0
        window_start = time.monotonic()
        ready = handoff.get()
        if ready is None or stop.is_set():
            return
        claimed = ledger.claim_batch(self.issue_id, ready.span, heartbeat=True)
        while True:
            batch, rows = ready.batch, ready.rows
            outcome = None
            if claimed.subscriber_ids:
                if claimed.subscriber_ids != batch.subscriber_ids:
                    # A row changed since it was read: post exactly what was claimed.
                    keep = set(claimed.subscriber_ids)
                    kept = [row for row in rows() if row[0] in keep]
                    rows = _given(kept)
                    batch = self._prepare_rows(kept)
                outcome = self._post_with_retries(batch, claimed)
                failed = {**batch.rejected, **outcome.failed}
                if self.options.rate:
                    # Paced: the answer is recorded before the pause, not after it.
                    ledger.settle_batch(claimed, outcome.provider_id, failed)
                    outcome = None
                    done += self._counted(batch, rows, failed)
                    self._after_batch(done, total, window_start)
            ready.posted()
            ready = handoff.get()
            if ready is None or stop.is_set():
                if outcome is not None:
                    ledger.settle_batch(claimed, outcome.provider_id, failed)
                    done += self._counted(batch, rows, failed)
                    self._after_batch(done, total, window_start)
                return
            if outcome is None:
                claimed = ledger.claim_batch(self.issue_id, ready.span, heartbeat=True)
                continue
            _, next_claimed = ledger.settle_and_claim(
                claimed, outcome.provider_id, failed, ready.span
            )
            claimed = next_claimed
            done += self._counted(batch, rows, failed)
            self._after_batch(done, total, window_start)

    def _counted(
        self,
        batch: PreparedBatch,
        rows: Callable[[], list[RecipientRow]],
        failed: dict[int, str],
    ) -> int:
        """Count a settled batch in the report; how many recipients it settled."""
        emails = {row[0]: row[1] for row in rows()} if failed else {}
        _count_parts(len(batch.subscriber_ids) - len(failed), failed, emails, self.report)
        return len(batch.subscriber_ids)

    def _batch_size(self) -> int:
        size = self.provider.max_batch_size
        if self.options.rate:
            # Pacing per batch: keep each burst to about a second's worth of messages.
            size = max(1, min(size, int(self.options.rate)))
        return size

    def _after_batch(self, done: int, total: int, window_start: float) -> None:
        if self.progress is not None:
            self.progress(done, total)
        if self.options.rate:
            ahead = done / self.options.rate - (time.monotonic() - window_start)
            if ahead > 0:
                self.sleep(ahead)

    def _post_with_retries(self, batch: PreparedBatch, claimed: ClaimedBatch) -> BatchOutcome:
        """A provider that prepares ahead takes or refuses a request whole: it is retried
        whole, and released whole when the send has to stop."""
        options = self.options
        delays = backoff_delays(options.max_attempts, options.backoff_base, options.backoff_cap)
        while True:
            try:
                return self.provider.deliver(batch)
            except ProviderError as exc:
                self._wait_or_stop(exc, delays, claimed.subscriber_ids)

    def _send_batch(self, recipients: list[Recipient]) -> None:
        """One batch with retries for passing failures, each outcome recorded as it is known.

        A provider may settle part of a batch before failing (an SMTP server deferring one
        recipient after accepting others): those results are recorded at once and only the
        rest is retried, so nobody gets a second copy. What is left when the send has to
        stop goes back to the queue: the provider refused it, so nobody in it got the issue.
        """
        options = self.options
        emails = {r.subscriber_id: r.email for r in recipients}
        left = recipients
        delays = backoff_delays(options.max_attempts, options.backoff_base, options.backoff_cap)
        while left:
            try:
                self._record(self.provider.send(self.outgoing, left), emails)
                return
            except ProviderError as exc:
                if exc.results:
                    self._record(exc.results, emails)
                    settled = {result.subscriber_id for result in exc.results}
                    left = [r for r in left if r.subscriber_id not in settled]
                self._wait_or_stop(exc, delays, [r.subscriber_id for r in left])

    def _wait_or_stop(
        self, exc: ProviderError, delays: Iterator[float], unsent: Sequence[int]
    ) -> None:
        """After a refused request: wait before the caller retries, or, for a hard refusal
        or once the retries are spent, put ``unsent`` back in the queue and stop."""
        delay = next(delays, None) if isinstance(exc, TransientProviderError) else None
        if delay is None:
            self.ledger.release(self.issue_id, unsent)
            if isinstance(exc, TransientProviderError):
                raise SendError(
                    f"the provider kept failing after {self.options.max_attempts} attempts: {exc}",
                    hint="nothing unconfirmed was marked sent; run the same command again "
                    "later to resume",
                ) from exc
            raise exc
        self.report.retries += 1
        self.sleep(retry_delay(delay, exc))  # type: ignore[arg-type]

    def _record(self, results: Iterable[DeliveryResult], emails: dict[int, str]) -> None:
        sent_by_id: dict[str | None, list[int]] = defaultdict(list)
        failed: dict[int, str] = {}
        for result in results:
            if result.ok:
                sent_by_id[result.provider_id].append(result.subscriber_id)
            else:
                failed[result.subscriber_id] = result.error or "refused"
        for provider_id, ids in sent_by_id.items():
            self.ledger.mark_sent(self.issue_id, ids, provider_id)
        if failed:
            self.ledger.mark_failed(self.issue_id, failed)
        _count_parts(sum(len(v) for v in sent_by_id.values()), failed, emails, self.report)


@dataclass(frozen=True)
class _Ready:
    """A page read and its request built, waiting for the posting thread."""

    span: PageSpan
    batch: PreparedBatch
    rows: Callable[[], list[RecipientRow]]
    """The batch's recipient rows, for a rebuild or the report of a failure."""
    posted: Callable[[], None] = lambda: None
    """Called once its request is posted (or will not be): its body's memory may go."""


def _given(rows: list[RecipientRow]) -> Callable[[], list[RecipientRow]]:
    return lambda: rows


@dataclass(frozen=True)
class _RowsLater:
    """Rows built in the builder process, made again here only if they are needed."""

    page: Callable[[], PendingPage]
    recipients_for: RecipientFactory

    def __call__(self) -> list[RecipientRow]:
        return self.recipients_for.rows(self.page())


def _hand_over(
    handoff: queue.Queue[_Ready | None], ready: _Ready | None, posting: Future[None]
) -> bool:
    """Queue the next batch for the posting thread; False if that thread has stopped."""
    while not posting.done():
        try:
            handoff.put(ready, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _drain(handoff: queue.Queue[_Ready | None]) -> None:
    with suppress(queue.Empty):
        handoff.get_nowait()


@contextmanager
def _restored_switch(interval: float) -> Iterator[None]:
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def _count(results: Iterable[DeliveryResult], emails: dict[int, str], report: SendReport) -> None:
    results = list(results)
    failed = {r.subscriber_id: r.error or "refused" for r in results if not r.ok}
    _count_parts(len(results) - len(failed), failed, emails, report)


def _count_parts(
    sent: int, failed: dict[int, str], emails: dict[int, str], report: SendReport
) -> None:
    report.sent += sent
    report.failed += len(failed)
    for subscriber_id, error in failed.items():
        if len(report.failures) < MAX_REPORTED_FAILURES:
            report.failures.append({"email": emails.get(subscriber_id, "?"), "error": error})


def read_report(issue: ArchivedIssue) -> dict[str, Any] | None:
    path = Path(issue.path) / REPORT_NAME
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise StoreError(f"{path}: cannot read the send report: {exc}") from None
