"""Commands that reach subscribers: send an issue, apply an unsubscribe token."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import config_option, handle_errors, load

if TYPE_CHECKING:
    from ..config import LoadedConfig
    from ..send import SendReport


def _addresses(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[object]:
    """A rich progress bar on a terminal; nothing when output goes to a file or a timer's log."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeRemainingColumn,
    )

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as progress:
        yield progress


@click.command()
@config_option
@click.argument("issue", default="latest")
@click.option(
    "--list",
    "lists",
    multiple=True,
    help="List to send to (repeat for several); default: schedule.lists in newsletter.yml.",
)
@click.option(
    "--dry-run", is_flag=True, help="Show counts and one personalised sample; send nothing."
)
@click.option(
    "--test-to",
    metavar="ADDR[,ADDR]",
    help="Send only to these addresses, subject prefixed [TEST]; the ledger is untouched.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Send to at most N recipients this run.")
@click.option(
    "--rate", type=click.FloatRange(min=0.01), help="At most this many messages per second."
)
@click.option(
    "--resend-in-flight",
    is_flag=True,
    help="Also send to recipients whose delivery an earlier run left unfinished "
    "(they may get the issue twice).",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Also send again to recipients the provider refused on an earlier run.",
)
@handle_errors
def send(
    config_path: Path | None,
    issue: str,
    lists: tuple[str, ...],
    dry_run: bool,
    test_to: str | None,
    limit: int | None,
    rate: float | None,
    resend_in_flight: bool,
    retry_failed: bool,
) -> None:
    """Send ISSUE (a number, folder name or 'latest') to the subscribers of its lists.

    Safe to run again: recipients already sent are never sent again, so a rerun after a
    crash or an outage resumes where the send stopped. The report is printed and saved
    as send-report.json in the issue folder.
    """
    from ..send import SendOptions, send_issue

    loaded = load(config_path)
    options = SendOptions(
        lists=lists,
        dry_run=dry_run,
        test_to=_addresses(test_to),
        limit=limit,
        rate=rate,
        resend_in_flight=resend_in_flight,
        retry_failed=retry_failed,
    )
    show_bar = sys.stderr.isatty() and not dry_run and not options.test_to
    with _progress_bar(show_bar) as bar:
        callback = None
        if bar is not None:
            task = bar.add_task("sending", total=None)  # type: ignore[attr-defined]

            def callback(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)  # type: ignore[attr-defined]

        report = send_issue(loaded, issue, options, progress=callback)

    if report.mode == "dry-run":
        click.echo(f"dry run of issue {report.issue_id} to {', '.join(report.lists)}:")
        click.echo(f"  would send: {report.remaining}   already sent: {report.already_sent}")
        if report.in_flight_unresolved:
            click.echo(f"  left in flight by an earlier run: {report.in_flight_unresolved}")
        click.echo("  sample message (first recipient):")
        for line in (report.sample or "").splitlines()[:60]:
            click.echo(f"    {line}")
        return
    print_report(loaded, report)
    if report.failed:
        sys.exit(7)


def print_report(loaded: LoadedConfig, report: SendReport) -> None:
    """The final report of a send, as `send` and `run` print it."""
    if report.mode == "test":
        click.echo(
            f"test copy of issue {report.issue_id} sent to {report.sent} address(es) "
            f"through {report.provider}"
        )
    else:
        click.echo(
            f"issue {report.issue_id} to {', '.join(report.lists)} via {report.provider}: "
            f"{report.status}"
        )
        click.echo(
            f"  sent {report.sent}, failed {report.failed}, skipped {report.skipped}, "
            f"already sent before {report.already_sent}, remaining {report.remaining}"
        )
        click.echo(
            f"  {report.duration_s:.1f} s, {report.rate_per_s:.0f} messages/s, "
            f"{report.retries} retries"
        )
    for note in report.notes:
        click.echo(f"  note: {note}")
    for failure in report.failures[:20]:
        click.echo(f"  failed: {failure['email']}: {failure['error']}", err=True)
    if report.provider == "outbox" and report.sent:
        outbox = loaded.resolve(loaded.settings.provider.outbox.directory) / report.issue_id
        click.echo(f"  messages written to {outbox}/")


@click.command()
@config_option
@click.option("--token", required=True, help="The token at the end of an unsubscribe link.")
@handle_errors
def unsubscribe(config_path: Path | None, token: str) -> None:
    """Verify an unsubscribe token and unsubscribe the person it names."""
    from ..send import unsubscribe_secret
    from ..store import open_store
    from ..unsubscribe import unsubscribe_by_token

    loaded = load(config_path)
    with open_store(loaded) as store:
        holder = unsubscribe_by_token(store, unsubscribe_secret(loaded, store), token)
    click.echo(f"unsubscribed {holder.subscriber.email}")
