"""Send an archived issue to its lists: the modes of a send, its start and its report.

A real send takes the issue's send lock, settles what an earlier run left (batches that
were being posted become unconfirmed; everything certainly not delivered is queued
again), then runs the send loop (``dispatch``) and keeps a summary of the run in the
ledger, which is the one source of truth: ``newsletter report``, ``run`` and the web read
it, never a file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from .archive import Archive, message_parts
from .config import LoadedConfig, resolve_secret
from .dispatch import ProgressCallback, RetryPolicy, RunTally, SendLoop
from .errors import (
    AuthenticationError,
    CheckFailedError,
    ConfigError,
    ProviderError,
    SendError,
)
from .message import PreparedIssue, build_mime
from .models import ArchivedIssue
from .providers import Provider, get_provider
from .send_models import Delivery, Outcome, OutgoingIssue, Recipient, RecipientRow, Subscriber
from .store import Ledger, Store
from .tokens import TokenSigner
from .workers import Workers, WorkerSetup

log = logging.getLogger(__name__)
TEST_PREFIX = "[TEST] "
SECRET_SETTING = "unsubscribe-secret"
UNCONFIRMED_STATUS = 11
"""Exit status of a send that reached everyone but left some outcomes unknown."""
INCOMPLETE_STATUS = 7


@dataclass(frozen=True)
class SendOptions:
    lists: tuple[str, ...] = ()
    dry_run: bool = False
    test_to: tuple[str, ...] = ()
    limit: int | None = None
    rate: float | None = None
    """Messages per second at most; None sends as fast as the provider takes them."""
    resend_unconfirmed: bool = False
    """Send again to recipients whose outcome is unknown (they may get a second copy)."""
    older_than: timedelta | None = None
    """With ``resend_unconfirmed``: only those unconfirmed for at least this long."""
    retry_refused: bool = False
    """Send again to recipients the provider refused before (after fixing the cause)."""
    skip_check: bool = False
    """Send even when the pre-send check finds something that blocks a send."""
    join: bool = False
    """Share the send with other senders (PostgreSQL store): no send lock is taken."""


@dataclass
class SendReport:
    issue_id: str
    lists: list[str]
    provider: str
    mode: str = "send"
    """send, dry-run or test."""
    status: str = "running"
    """complete; unconfirmed (everyone tried, some outcomes unknown); partial (--limit);
    incomplete (some still to retry: run again); stopped (an error ended it)."""
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    sent: int = 0
    refused: int = 0
    unconfirmed: int = 0
    """Made unconfirmed by this run (no answer came for their request)."""
    deferred: int = 0
    """Attempts of this run the provider did not take (retried, or left for the next run)."""
    already_sent: int = 0
    recovered_unconfirmed: int = 0
    """Left unconfirmed by an earlier run that stopped while posting."""
    requeued: int = 0
    """Put back in the queue at the start: left waiting by an earlier run, or asked for."""
    remaining: int = 0
    """Still to send after this run (queued, or members not yet reached with --limit)."""
    totals: dict[str, int] = field(default_factory=dict)
    """Every recipient of the issue per ledger state, after this run."""
    rate_per_s: float = 0.0
    error: str | None = None
    refusals: list[dict[str, str]] = field(default_factory=list)
    unconfirmed_list: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sample: str | None = None

    @property
    def exit_status(self) -> int:
        if self.status == "unconfirmed":
            return UNCONFIRMED_STATUS
        if self.status in ("incomplete", "stopped"):
            return INCOMPLETE_STATUS
        return 0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "sample"}


def list_id_for(loaded: LoadedConfig, list_name: str) -> str:
    """RFC 2919: a list's name plus a domain we control, stable for filters and clients."""
    newsletter = loaded.settings.newsletter
    host = urlsplit(newsletter.site_url).hostname or "localhost"
    return f"{newsletter.name} <{list_name}.{host}>"


def outgoing_for(
    loaded: LoadedConfig, issue: ArchivedIssue, list_name: str, *, test: bool = False
) -> OutgoingIssue:
    html, text = message_parts(issue)
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
        unsubscribe_base=loaded.unsubscribe_url.rstrip("/") + "/",
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


def policy_of(loaded: LoadedConfig) -> RetryPolicy:
    sending = loaded.settings.sending
    return RetryPolicy(sending.max_attempts, sending.retry_base, sending.retry_cap)


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
    make_provider: Callable[[], Provider] | None = None,
    progress: ProgressCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SendReport:
    """Send (or resume, dry-run or test-send) one archived issue; returns the report.

    A real send keeps the report's summary in the ledger. Raises SendError subclasses
    when the send cannot start or had to stop; the ledger then says how far it got.
    ``make_provider`` makes one provider instance per worker (default: from the config).
    """
    archive = Archive(loaded.issues_dir, newsletter=loaded.settings.newsletter)
    issue = archive.find(issue_ref)
    lists = _lists_for(loaded, options)
    real = not (options.test_to or options.dry_run)
    warnings = _check_first(loaded, issue, options.skip_check) if real else []
    factory = make_provider or (lambda: get_provider(loaded))
    probe = provider or factory()
    mode = "test" if options.test_to else ("dry-run" if options.dry_run else "send")
    report = SendReport(issue_id=issue.slug, lists=list(lists), provider=probe.name, mode=mode)
    report.notes.extend(warnings)
    report.started_at = _now()
    started = time.perf_counter()
    from .store import open_store

    with open_store(loaded) as store:
        list_ids = []
        for name in lists:
            found = store.find_list(name)
            if found is None:
                known = ", ".join(lst.name for lst in store.lists()) or "none yet"
                raise SendError(
                    f"there is no list named {name!r} (lists: {known})",
                    hint="add it under lists: in newsletter.yml, or check the spelling",
                )
            list_ids.append(found.id)
        secret = unsubscribe_secret(loaded, store)
        outgoing = outgoing_for(loaded, issue, lists[0], test=bool(options.test_to))
        prepared = PreparedIssue(outgoing)
        if options.test_to:
            _send_test(probe, prepared, options.test_to, secret, list_ids[0], report)
        elif options.dry_run:
            _dry_run(store, issue, lists, list_ids[0], outgoing, secret, report)
        else:
            if probe.name == "sendgrid":
                _sync_suppressions(loaded, report)
            run = _Run(loaded, store, issue, lists, list_ids, options, report)
            run.start(probe, provider is None)
            setup = WorkerSetup(issue=prepared, make_provider=factory, store=loaded.store_location)
            run.deliver(
                setup, TokenSigner(secret), probe, provider is not None, progress, sleep, started
            )
            return report
    _finish(report, started)
    return report


def _check_first(loaded: LoadedConfig, issue: ArchivedIssue, skip: bool) -> list[str]:
    """Run `newsletter check` before anything is sent; its warnings become the report's
    notes. A blocking finding stops the send before the ledger or provider is touched."""
    from .check import check_archived

    result = check_archived(loaded, issue)
    slug = issue.slug
    notes = [f"check: {finding.code}: {finding.message}" for finding in result.findings]
    if result.blocking and not skip:
        first = result.blocking[0]
        raise CheckFailedError(
            f"issue {slug} is not sent: the check found {len(result.blocking)} blocking "
            f"finding(s), first {first.code} at {first.element}: {first.message}",
            hint=f"{first.fix}; `newsletter check {slug}` lists them all; "
            "`newsletter send --skip-check` sends anyway",
        )
    return notes


@dataclass
class _Run:
    """One real run of a send, under the issue's send lock."""

    loaded: LoadedConfig
    store: Store
    issue: ArchivedIssue
    lists: Sequence[str]
    list_ids: Sequence[int]
    options: SendOptions
    report: SendReport

    def __post_init__(self) -> None:
        if self.options.join and not self.store.db.shares_sends:
            raise SendError(
                "--join shares a send between several senders, which needs a PostgreSQL "
                "store (store.url); a SQLite store has one sender per send",
                hint="send without --join, or move the store: newsletter store copy --to URL",
            )
        self.ledger = Ledger(self.store, joined=self.options.join)
        self.send_id = 0

    def start(self, probe: Provider, opened_here: bool) -> None:
        """Check the provider, take the lock, settle what an earlier run left."""
        if opened_here:
            probe.open()  # a missing key or a refused login shows before the ledger changes
        try:
            lock = None if self.options.join else self.ledger.acquire_lock(self.issue.slug)
        except BaseException:
            probe.close()
            raise
        if lock is not None and lock.replaced:
            self.report.notes.append(f"took over the send lock left by {lock.replaced}")
        try:
            self._settle_earlier_runs()
        except BaseException:
            probe.close()
            self.ledger.release_lock(self.issue.slug)
            raise
        report = self.report
        log.info(
            "send of %(issue)s to %(lists)s via %(provider)s started: %(already_sent)d sent "
            "before, %(requeued)d queued again, %(recovered_unconfirmed)d left unconfirmed by "
            "an earlier run",
            {"event": "send-started", "issue": self.issue.slug, "lists": ", ".join(self.lists),
             "provider": probe.name, "already_sent": report.already_sent,
             "requeued": report.requeued, "recovered_unconfirmed": report.recovered_unconfirmed},
        )  # fmt: skip

    def _settle_earlier_runs(self) -> None:
        ledger, report, options = self.ledger, self.report, self.options
        send = ledger.open_send(self.issue.slug, self.lists)
        self.send_id = send.id
        recovered = ledger.recover(send.id)
        report.recovered_unconfirmed = recovered.unconfirmed
        report.requeued = recovered.requeued
        if recovered.unconfirmed:
            report.notes.append(
                f"{recovered.unconfirmed} recipient(s) were being sent when an earlier run "
                "stopped: they may have received the issue, so they are unconfirmed and not "
                "sent again (see `newsletter report`; --resend-unconfirmed sends to them)"
            )
        if options.resend_unconfirmed:
            moved = ledger.requeue_unconfirmed(send.id, older_than=options.older_than)
            report.requeued += moved
            report.notes.append(
                f"sending again to {moved} unconfirmed recipient(s) (--resend-unconfirmed"
                + (f" --older-than {options.older_than}" if options.older_than else "")
                + "); they may get the issue twice"
            )
        if options.retry_refused:
            moved = ledger.requeue_refused(send.id)
            report.requeued += moved
            report.notes.append(
                f"trying again {moved} recipient(s) the provider refused earlier (--retry-refused)"
            )
        counts = ledger.counts(self.issue.slug)
        report.already_sent = counts["sent"]
        if not any(counts.values()) and not ledger.has_members(self.lists):
            self.ledger.release_lock(self.issue.slug)
            raise SendError(
                f"the list{'s' if len(self.lists) > 1 else ''} {', '.join(self.lists)} "
                "has no subscribed members",
                hint="add people with `newsletter subscribers import FILE.csv --list NAME`",
            )

    def deliver(
        self,
        setup: WorkerSetup,
        signer: TokenSigner,
        probe: Provider,
        one_instance: bool,
        progress: ProgressCallback | None,
        sleep: Callable[[float], None],
        started: float,
    ) -> None:
        report, ledger = self.report, self.ledger
        loop: SendLoop | None = None
        try:
            workers = Workers(setup, ledger, probe, one_instance=one_instance)
            try:
                total = ledger.unsent(self.issue.slug, self.lists) if progress else None
                loop = SendLoop(
                    ledger,
                    self.send_id,
                    self.issue.slug,
                    self.list_ids,
                    workers,
                    signer,
                    batch_size=probe.max_batch_size,
                    policy=policy_of(self.loaded),
                    limit=self.options.limit,
                    rate=self.options.rate,
                    total=total,
                    progress=progress,
                    sleep=sleep,
                )
                loop.run()
            finally:
                workers.shutdown()
            self._conclude(loop.tally)
        except BaseException as exc:
            report.status = "stopped"
            report.error = str(exc) or type(exc).__name__
            if loop is not None:
                self._count(loop.tally)
            raise
        finally:
            _finish(report, started)
            try:
                report.totals = ledger.counts(self.issue.slug)
                complete = report.status in ("complete", "unconfirmed")
                ledger.finish_run(self.send_id, report.as_dict(), complete=complete)
            finally:
                ledger.release_lock(self.issue.slug)
            log.info(
                "send of %(issue)s finished: %(status)s; %(sent)d sent, %(refused)d refused, "
                "%(unconfirmed)d unconfirmed, %(remaining)d remaining, in %(duration_s).1f s",
                {"event": "send-finished", "issue": report.issue_id, "status": report.status,
                 "sent": report.sent, "refused": report.refused,
                 "unconfirmed": report.unconfirmed, "remaining": report.remaining,
                 "deferred": report.deferred, "duration_s": report.duration_s},
            )  # fmt: skip

    def _count(self, tally: RunTally) -> None:
        report = self.report
        report.sent, report.refused = tally.accepted, tally.refused
        report.unconfirmed, report.deferred = tally.unconfirmed, tally.deferred
        report.refusals = [{"email": e, "error": r} for e, r in tally.refusals]
        report.unconfirmed_list = [{"email": e, "error": r} for e, r in tally.unknown]

    def _conclude(self, tally: RunTally) -> None:
        """The run's status, from what is left in the ledger."""
        report = self.report
        self._count(tally)
        counts = self.ledger.counts(self.issue.slug)
        waiting = counts["queued"]
        limited = self.options.limit is not None and tally.claimed >= self.options.limit
        report.remaining = self.ledger.unsent(self.issue.slug, self.lists) if limited else waiting
        if report.remaining and not limited:
            report.status = "incomplete"
            report.notes.append(
                f"{report.remaining} recipient(s) were not delivered after "
                f"{self.loaded.settings.sending.max_attempts} attempts (last: "
                f"{tally.last_failure or 'no reason given'}); they are queued: run the same "
                "command later to try them again"
            )
        elif report.remaining:
            report.status = "partial"
        elif counts["unconfirmed"]:
            report.status = "unconfirmed"
            report.notes.append(
                f"complete, but {counts['unconfirmed']} recipient(s) are unconfirmed: "
                "their request went out and no answer came, so they may or may not have the "
                f"issue. `newsletter report {self.issue.slug}` names them; SendGrid's Event "
                "Webhook settles them, or --resend-unconfirmed sends to them again"
            )
        else:
            report.status = "complete"


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
    issue: PreparedIssue,
    addresses: Sequence[str],
    secret: str,
    list_id: int,
    report: SendReport,
) -> None:
    """Send to named addresses with [TEST] in the subject; the ledger is not touched.

    The copies carry a genuine-looking unsubscribe link for subscriber id 0, which belongs
    to nobody, so clicking it in a test copy cannot unsubscribe a real reader.
    """
    from .addresses import normalise_address

    emails = [normalise_address(address) for address in addresses]
    signer = TokenSigner(secret)
    rows: list[RecipientRow] = [
        (index, email, "", {}, signer.make(0, email, list_id)) for index, email in enumerate(emails)
    ]
    with provider:
        delivery = provider.deliver(issue, rows)
    counts = delivery.counts()
    report.sent = counts[Outcome.ACCEPTED]
    report.refused = counts[Outcome.REFUSED]
    report.unconfirmed = counts[Outcome.UNKNOWN]
    report.deferred = counts[Outcome.NOT_DELIVERED]
    report.refusals = _failures(delivery, dict(enumerate(emails)))
    report.status = "complete" if report.sent == len(rows) else "stopped"
    if delivery.halt is not None:
        raise delivery.halt


def _failures(delivery: Delivery, emails: dict[int, str]) -> list[dict[str, str]]:
    failed = []
    for sid in delivery.subscriber_ids:
        outcome, reason = delivery.outcome_of(sid)
        if outcome is not Outcome.ACCEPTED:
            failed.append({"email": emails.get(sid, "?"), "error": f"{outcome}: {reason}"})
    return failed


def _dry_run(
    store: Store,
    issue: ArchivedIssue,
    lists: Sequence[str],
    list_id: int,
    outgoing: OutgoingIssue,
    secret: str,
    report: SendReport,
) -> None:
    """Counts of what a send would do now, and one personalised sample; nothing is written."""
    ledger = Ledger(store)
    done = ledger.counts(issue.slug)
    report.already_sent = done["sent"]
    report.totals = done
    report.remaining = ledger.unsent(issue.slug, lists)
    report.status = "complete"
    first = next(iter(store.subscribers_of(lists[0])), None)
    sample = first or Subscriber(id=0, email="sample@example.org", name="Sample Reader")
    token = TokenSigner(secret).make(sample.id, sample.email, list_id)
    recipient = Recipient(
        sample.id,
        sample.email,
        sample.name,
        dict(sample.attributes),
        outgoing.unsubscribe_url(token),
    )
    message = build_mime(
        outgoing, recipient, message_id_domain=outgoing.from_address.rpartition("@")[2]
    )
    report.sample = message.as_string()


__all__ = [
    "SendOptions",
    "SendReport",
    "outgoing_for",
    "send_issue",
    "unsubscribe_secret",
]
