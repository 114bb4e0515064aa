"""``newsletter suppressions ...``: SendGrid's suppression lists, brought into the store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from ..suppressions import SyncReport, sync_suppressions
from .common import DAY, config_option, handle_errors, load


@click.group()
def suppressions() -> None:
    """Keep the subscriber store in step with SendGrid's suppression lists."""


@suppressions.command("sync")
@config_option
@click.option(
    "--since",
    type=DAY,
    default=None,
    metavar="YYYY-MM-DD",
    help="Only entries SendGrid added on or after this day (UTC); default: all of them.",
)
@handle_errors
def sync(config_path: Path | None, since: datetime | None) -> None:
    """Mark subscribers SendGrid suppresses as bounced, complained or unsubscribed.

    Reads bounces and invalid e-mails (-> bounced), spam reports (-> complained), global
    unsubscribes and the unsubscribes of provider.sendgrid.asm_group_id (-> unsubscribed)
    with the API key named by provider.sendgrid.api_key. Blocks are left alone: they are
    temporary refusals. A status is never weakened (a complaint stays a complaint), every
    change is recorded in the subscriber's history, and addresses not in the store are
    counted but not added. Running it again changes nothing new.
    """
    loaded = load(config_path)
    report = sync_suppressions(loaded, since=since.replace(tzinfo=UTC) if since else None)
    _print_report(report)


def _print_report(report: SyncReport) -> None:
    width = max(len(counts.kind) for counts in report.kinds)
    for counts in report.kinds:
        click.echo(
            f"{counts.kind:<{width}}  -> {counts.status:<12}  fetched {counts.fetched}, "
            f"updated {counts.updated}, unchanged {counts.unchanged}, "
            f"unknown {counts.unknown}"
        )
    skipped = ", ".join(report.skipped)
    click.echo(f"{report.updated} subscriber(s) updated; not read: {skipped} (temporary)")
