"""Commands for timers: run what is due, and show when things will be due."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from .common import config_option, handle_errors, json_option, load, print_json
from .sending import print_report, stop_on_sigterm


def _parse_now(value: str | None, zone: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date and time; use e.g. 2026-11-24T08:05", param_hint="--now"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


@click.command()
@config_option
@click.option(
    "--now",
    "now_text",
    metavar="YYYY-MM-DDTHH:MM",
    help="Act as if it were this time (in the schedule's zone unless an offset is given).",
)
@json_option
@handle_errors
def run(config_path: Path | None, now_text: str | None, as_json: bool) -> None:
    """Build and send the issue that is due, once; do nothing when nothing is due.

    Meant for cron, systemd timers and CI schedules: call it every few minutes. Exit
    status 0 when done or nothing is due, 10 when an issue is due but no new content
    qualifies, 8 when another run holds the lock, 11 when the send completed with some
    recipients unconfirmed, 7 when it stopped or left recipients for the next run.
    """
    from ..run import run_due
    from ..schedule import schedule_of

    loaded = load(config_path)
    schedule = schedule_of(loaded)
    with stop_on_sigterm():
        outcome = run_due(loaded, now=_parse_now(now_text, schedule.zone))
    if as_json:
        from .shapes import run_shape

        print_json(run_shape(outcome))
        sys.exit(outcome.exit_code)
    if outcome.took_over_from is not None:
        click.echo(f"note: took over the run lock left by {outcome.took_over_from}")
    if outcome.built is not None:
        click.echo(f"built issue {outcome.built.rendered.meta.number}: {outcome.built.path}")
    click.echo(outcome.message)
    if outcome.report is not None:
        print_report(loaded, outcome.report)
    if outcome.action == "nothing-new":
        click.echo("nothing new to send", err=True)
    sys.exit(outcome.exit_code)


@click.command()
@config_option
@click.option(
    "--count",
    type=click.IntRange(1, 100),
    default=5,
    show_default=True,
    help="How many upcoming slots to show.",
)
@json_option
@handle_errors
def schedule(config_path: Path | None, count: int, as_json: bool) -> None:
    """Show the next times `newsletter run` will build and send, in the schedule's zone."""
    # Not from ..run: listing the slots needs neither the build nor the send path.
    from ..schedule import schedule_of

    loaded = load(config_path)
    plan = schedule_of(loaded)
    now = datetime.now(UTC)
    latest, upcoming = plan.latest_due(now), plan.next_due(now, count=count)
    if as_json:
        from .shapes import schedule_shape

        print_json(schedule_shape(plan, latest, upcoming))
        return
    click.echo(f"schedule '{plan.expression}' in {plan.zone.key} (catch-up: {plan.catch_up})")
    if latest is not None:
        click.echo(f"  latest slot: {latest.due:%a %d %b %Y %H:%M %Z}")
    for slot in upcoming:
        click.echo(f"  next:        {slot.due:%a %d %b %Y %H:%M %Z}")
