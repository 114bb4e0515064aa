"""`newsletter report`: what became of an issue's send, from the ledger."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import config_option, handle_errors, load

STATES = ("queued", "sending", "retry", "sent", "unconfirmed", "refused", "skipped")


@click.command()
@config_option
@click.argument("issue", default="latest")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (a stable shape).")
@click.option("--csv", "as_csv", is_flag=True, help="Print the listed recipients as CSV.")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATES),
    help="List the recipients in this state (repeat for several); default: unconfirmed, "
    "refused and those still waiting.",
)
@click.option("--all", "everyone", is_flag=True, help="List every recipient with a ledger row.")
@handle_errors
def report(
    config_path: Path | None,
    issue: str,
    as_json: bool,
    as_csv: bool,
    states: tuple[str, ...],
    everyone: bool,
) -> None:
    """Show what became of ISSUE's send: recipients per state, and who needs a look.

    Unconfirmed recipients are those whose request went out with no answer: they may or
    may not have the issue. SendGrid's Event Webhook settles them; `newsletter send
    --resend-unconfirmed` sends to them again.
    """
    import orjson

    from ..report import issue_report, write_csv

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    found = issue_report(load(config_path), issue, states=states or None, everyone=everyone)
    if as_json:
        click.echo(orjson.dumps(found.as_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    if as_csv:
        write_csv(found, sys.stdout)
        return
    click.echo(f"issue {found.issue_id} to {', '.join(found.lists) or '-'}: {found.status}")
    counts = found.counts
    click.echo(
        "  "
        + ", ".join(f"{state} {counts.get(state, 0)}" for state in STATES)
        + f"; not yet reached {found.not_yet_reached}"
    )
    run = found.last_run
    if run:
        click.echo(
            f"  last run {run.get('started_at')}: {run.get('status')}, sent {run.get('sent')}, "
            f"{run.get('duration_s')} s"
        )
        for note in run.get("notes") or []:
            click.echo(f"  note: {note}")
    for item in found.recipients:
        error = f": {item.error}" if item.error else ""
        click.echo(f"  {item.state:<11} {item.email}{error}")
