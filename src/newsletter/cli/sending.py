"""Commands that reach subscribers: send an issue, apply an unsubscribe token."""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import config_option, handle_errors, json_option, load, print_json

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
    "--resend-unconfirmed",
    is_flag=True,
    help="Also send to recipients whose outcome is unknown (their request went out and no "
    "answer came): they may get the issue twice.",
)
@click.option(
    "--older-than",
    metavar="DURATION",
    callback=lambda ctx, param, value: parse_duration(value) if value else None,
    help="With --resend-unconfirmed: only those unconfirmed for at least this long "
    "(e.g. 2h, 30m, 1d), so webhook events still on their way can settle the rest.",
)
@click.option(
    "--retry-refused",
    is_flag=True,
    help="Also send again to recipients the provider refused on an earlier run "
    "(once the cause is fixed).",
)
@click.option(
    "--skip-check",
    is_flag=True,
    help="Send even if `newsletter check` finds something that check.blocking lists.",
)
@click.option(
    "--join",
    is_flag=True,
    help="Share the send with other senders of the same issue (PostgreSQL store): each "
    "recipient still gets it once, and the batches of a sender that dies are taken over.",
)
@json_option
@handle_errors
def send(
    config_path: Path | None,
    issue: str,
    lists: tuple[str, ...],
    dry_run: bool,
    test_to: str | None,
    limit: int | None,
    rate: float | None,
    resend_unconfirmed: bool,
    older_than: timedelta | None,
    retry_refused: bool,
    skip_check: bool,
    join: bool,
    as_json: bool,
) -> None:
    """Send ISSUE (a number, folder name or 'latest') to the subscribers of its lists.

    Safe to run again: recipients already sent are never sent again, so a rerun after a
    crash or an outage resumes where the send stopped. Recipients whose outcome is unknown
    (the request went out, no answer came) are unconfirmed and not re-sent unless asked.

    Exit status: 0 complete; 11 complete but some recipients unconfirmed (see
    `newsletter report`); 7 stopped, or some recipients still to retry (run again).
    """
    from ..send import SendOptions, send_issue

    if older_than is not None and not resend_unconfirmed:
        raise click.UsageError("--older-than goes with --resend-unconfirmed")
    loaded = load(config_path)
    options = SendOptions(
        lists=lists,
        dry_run=dry_run,
        test_to=_addresses(test_to),
        limit=limit,
        rate=rate,
        resend_unconfirmed=resend_unconfirmed,
        older_than=older_than,
        retry_refused=retry_refused,
        skip_check=skip_check,
        join=join,
    )
    show_bar = sys.stderr.isatty() and not (dry_run or options.test_to or as_json)
    with _progress_bar(show_bar) as bar, stop_on_sigterm():
        callback = None
        if bar is not None:
            task = bar.add_task("sending", total=None)  # type: ignore[attr-defined]

            def callback(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)  # type: ignore[attr-defined]

        report = send_issue(loaded, issue, options, progress=callback)

    if as_json:
        from .shapes import send_shape

        print_json(send_shape(report))
        sys.exit(report.exit_status)
    if report.mode == "dry-run":
        click.echo(f"dry run of issue {report.issue_id} to {', '.join(report.lists)}:")
        click.echo(f"  would send: {report.remaining}   already sent: {report.already_sent}")
        if report.totals.get("unconfirmed"):
            click.echo(f"  unconfirmed from earlier runs: {report.totals['unconfirmed']}")
        click.echo("  sample message (first recipient):")
        for line in (report.sample or "").splitlines()[:60]:
            click.echo(f"    {line}")
        return
    print_report(loaded, report)
    sys.exit(report.exit_status)


def parse_duration(text: str) -> timedelta:
    """'90s', '30m', '2h', '1d' (or a sum such as '1h30m') as a timedelta."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.fullmatch(r"(?:\d+[smhd])+", text.strip().lower())
    if not parts:
        raise click.BadParameter(f"expected a duration such as 30m, 2h or 1d, got {text!r}")
    seconds = sum(
        int(number) * units[unit] for number, unit in re.findall(r"(\d+)([smhd])", text.lower())
    )
    return timedelta(seconds=seconds)


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """A timer or systemd stops a send with SIGTERM: stop it as Ctrl-C would, so claimed
    batches go back to the queue and the ones out are recorded."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave the default
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def print_report(loaded: LoadedConfig, report: SendReport) -> None:
    """The final report of a send, as `send` and `run` print it."""
    if report.mode == "test":
        click.echo(
            f"test copy of issue {report.issue_id} sent to {report.sent} address(es) "
            f"through {report.provider}"
        )
    else:
        status = {
            "complete": "complete",
            "unconfirmed": "complete, with unconfirmed recipients",
            "partial": "partial (--limit)",
            "incomplete": "incomplete: some recipients wait for another run",
        }.get(report.status, report.status)
        click.echo(
            f"issue {report.issue_id} to {', '.join(report.lists)} via {report.provider}: {status}"
        )
        click.echo(
            f"  sent {report.sent}, refused {report.refused}, unconfirmed {report.unconfirmed}, "
            f"already sent before {report.already_sent}, remaining {report.remaining}"
        )
        totals = report.totals
        if totals:
            click.echo(
                "  in all: "
                + ", ".join(f"{state} {count}" for state, count in totals.items() if count)
            )
        click.echo(
            f"  {report.duration_s:.1f} s, {report.rate_per_s:.0f} messages/s, "
            f"{report.deferred} attempt(s) not delivered and retried"
        )
    for note in report.notes:
        click.echo(f"  note: {note}")
    for failure in report.refusals[:20]:
        click.echo(f"  refused: {failure['email']}: {failure['error']}", err=True)
    for item in report.unconfirmed_list[:20]:
        click.echo(f"  unconfirmed: {item['email']}: {item['error']}", err=True)
    if report.provider == "outbox" and report.sent:
        outbox = loaded.resolve(loaded.settings.provider.outbox.directory) / report.issue_id
        click.echo(f"  messages written to {outbox}/")


@click.command()
@config_option
@click.option("--token", required=True, help="The token at the end of an unsubscribe link.")
@handle_errors
def unsubscribe(config_path: Path | None, token: str) -> None:
    """Verify an unsubscribe token and unsubscribe the person it names.

    They leave the token's list; a link from an issue sent before lists had statuses of
    their own leaves every list."""
    from ..send import unsubscribe_secret
    from ..store import open_store
    from ..unsubscribe import unsubscribe_by_token

    loaded = load(config_path)
    with open_store(loaded) as store:
        holder = unsubscribe_by_token(store, unsubscribe_secret(loaded, store), token)
    left = "every list" if holder.list_left is None else f"the list '{holder.list_left}'"
    click.echo(f"unsubscribed {holder.subscriber.email} from {left}")
