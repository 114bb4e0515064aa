"""``newsletter subscribers ...``: who is on which list, from CSV files or one at a time."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from ..config import LoadedConfig
from ..errors import ImportFileError, StoreError
from ..replace_file import replacing
from ..send_models import Subscriber, SubscriberStatus
from ..store import ImportReport, Store, export_csv, import_csv, open_store
from .common import config_option, handle_errors, load

list_option = click.option(
    "--list",
    "list_name",
    metavar="LIST",
    default=None,
    help="Name of a list from newsletter.yml (may be left out when it defines only one).",
)

status_option = click.option(
    "--status",
    type=click.Choice([str(status) for status in SubscriberStatus]),
    default=None,
    help="Only subscribers with this status.",
)


@contextmanager
def _opened(config_path: Path | None) -> Iterator[tuple[LoadedConfig, Store]]:
    loaded = load(config_path)
    with open_store(loaded) as store:
        yield loaded, store


def _choose_list(loaded: LoadedConfig, given: str | None) -> str:
    if given:
        return given
    names = [lst.name for lst in loaded.settings.lists]
    if len(names) == 1:
        return names[0]
    raise StoreError(
        "say which list with --list" + (f" (lists: {', '.join(names)})" if names else ""),
        hint=None if names else "define lists under 'lists:' in newsletter.yml",
    )


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, target = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {value!r}", param_hint=option)
        pairs[key.strip()] = target.strip()
    return pairs


@click.group()
def subscribers() -> None:
    """Manage subscribers: import and export CSV files, add, remove, unsubscribe, list,
    show everything held about one, forget one.

    Subscribers live in the SQLite file named by store.path in newsletter.yml; lists are
    those under 'lists:'. Someone who unsubscribed, bounced or complained is never put back
    on a list unless you pass --force (only do that when they asked to rejoin).
    """


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@list_option
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="COLUMN=FIELD",
    help="Read COLUMN as FIELD: email, name, first_name, last_name, '-' to ignore it, or "
    "any other word to keep it as that attribute. Repeat for several columns.",
)
@click.option(
    "--encoding",
    default=None,
    help="The file's text encoding (default: UTF-8, falling back to Windows-1252).",
)
@click.option("--force", is_flag=True, help="Also re-subscribe people who left earlier.")
@config_option
@handle_errors
def import_command(
    file: Path,
    list_name: str | None,
    mappings: tuple[str, ...],
    encoding: str | None,
    force: bool,
    config_path: Path | None,
) -> None:
    """Add or update the subscribers in a CSV FILE on a list.

    The header row names the columns: 'email' (or 'e-mail', 'email address') is required;
    'name', or 'first_name' and 'last_name', give the name; every other column is kept as
    an attribute usable in templates. Rows that cannot be used are listed with their line
    numbers; the others are imported. Importing the same file again changes nothing.
    """
    mapping = _pairs(mappings, "--map")
    with _opened(config_path) as (loaded, store):
        chosen = _choose_list(loaded, list_name)
        report = import_csv(store, file, chosen, mapping=mapping, force=force, encoding=encoding)
    _print_report(report)
    if report.all_failed:
        raise ImportFileError(
            f"{file}: none of its {report.rows} rows could be imported; see the lines above",
            hint="check the column names and the separator, or use --map COLUMN=email",
        )


def _print_report(report: ImportReport) -> None:
    click.echo(
        f"{report.path} -> list '{report.list_name}': {report.rows} rows; "
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.skipped_unsubscribed} skipped (left earlier), {report.invalid} invalid, "
        f"{report.duplicates} duplicate(s)"
        + (f", {report.erased} erased earlier" if report.erased else "")
    )
    if report.errors:
        click.echo(f"{len(report.errors) + report.more_errors} row(s) not imported:")
        for error in report.errors:
            click.echo(f"  {report.path}:{error.line}: {error.message}")
        if report.more_errors:
            click.echo(f"  ... and {report.more_errors} more after line {report.errors[-1].line}")
    for note in report.notes:
        click.echo(f"note: {note}")


@subscribers.command("export")
@list_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: standard output).",
)
@status_option
@config_option
@handle_errors
def export_command(
    list_name: str | None, output: Path | None, status: str | None, config_path: Path | None
) -> None:
    """Write a list as CSV: email, name, status and one column per attribute.

    The file can be imported again (the status column is not read back: an import never
    changes anyone's status).
    """
    wanted = SubscriberStatus(status) if status else None
    with _opened(config_path) as (loaded, store):
        chosen = _choose_list(loaded, list_name)
        if output is None:
            export_csv(store, chosen, sys.stdout, status=wanted)
            return
        try:
            with replacing(output) as out:
                written = export_csv(store, chosen, out, status=wanted)
        except OSError as exc:
            raise StoreError(f"{output}: cannot write the file: {exc.strerror or exc}") from None
    click.echo(f"wrote {written} subscribers of '{chosen}' to {output}", err=True)


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="", help="The person's name, as greetings will use it.")
@list_option
@click.option(
    "--attr",
    "attributes",
    multiple=True,
    metavar="KEY=VALUE",
    help="An attribute to store with the subscriber (repeatable).",
)
@click.option("--force", is_flag=True, help="Re-subscribe someone who left (if they asked).")
@config_option
@handle_errors
def add_command(
    email: str,
    name: str,
    list_name: str | None,
    attributes: tuple[str, ...],
    force: bool,
    config_path: Path | None,
) -> None:
    """Add EMAIL to a list (or update the name and attributes of someone already on it)."""
    from ..store.erasure import ERASED_REASON, erased_at, lift

    extra = _pairs(attributes, "--attr")
    with _opened(config_path) as (loaded, store):
        chosen = _choose_list(loaded, list_name)
        erased = erased_at(store, email)
        if erased is not None and not force:
            raise StoreError(f"{email} {ERASED_REASON.format(erased[:10])}")
        before = store.get(email)
        was_member = before is not None and chosen in store.memberships(before.id)
        subscriber = store.add(email, name, chosen, extra, source="cli", force=force)
        if erased is not None:
            lift(store, subscriber.email)
    verb = "updated" if was_member else "added"
    click.echo(f"{verb} {subscriber.email} on '{chosen}' ({subscriber.status})")


@subscribers.command("remove")
@click.argument("email")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@config_option
@handle_errors
def remove_command(email: str, yes: bool, config_path: Path | None) -> None:
    """Delete EMAIL from the store entirely, with its history (for erasure requests).

    To stop sending to someone while keeping the record that they left, use
    'unsubscribe' instead.
    """
    with _opened(config_path) as (_, store):
        found = store.get(email)
        if found is None:
            raise StoreError(
                f"no subscriber {email!r} in the store",
                hint="'newsletter subscribers list' shows who is in it",
            )
        if not yes:
            click.confirm(
                f"Delete {found.email} and all their history for good?", abort=True, err=True
            )
        store.remove(found.id)
    click.echo(f"removed {found.email} and their history")


@subscribers.command("forget")
@click.argument("email")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@config_option
@handle_errors
def forget_command(email: str, yes: bool, config_path: Path | None) -> None:
    """Erase EMAIL at the person's request: everything the store holds about them goes
    (lists, history, consent, send records), and only a keyed hash of the address stays,
    so no later import can add them back without anyone noticing.

    Copies elsewhere are not reached: exported CSV files, backups, the outbox folder's
    messages, the provider's own records (SendGrid keeps its activity for 30 days).
    """
    from ..store.erasure import forget

    with _opened(config_path) as (_, store):
        if not yes:
            click.confirm(f"Erase everything about {email.strip()} for good?", abort=True, err=True)
        done = forget(store, email)
    held = "everything held about them was deleted" if done.was_stored else "nobody was stored"
    click.echo(
        f"erased {done.email}: {held}; a keyed hash of the address stays so no import "
        "adds them back"
    )


@subscribers.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
@config_option
@handle_errors
def show_command(email: str, as_json: bool, config_path: Path | None) -> None:
    """Print everything the store holds about EMAIL (for an access request): the record,
    its lists, its history, its consent and what each send did."""
    import orjson

    from ..store.erasure import everything_held

    with _opened(config_path) as (_, store):
        held = everything_held(store, email)
    if as_json:
        click.echo(orjson.dumps(held, option=orjson.OPT_INDENT_2).decode())
        return
    for key, value in held.items():
        if isinstance(value, list):
            click.echo(f"{key}: {len(value)}")
            for item in value:
                click.echo("  " + ", ".join(f"{k}={v}" for k, v in item.items()))
        else:
            click.echo(f"{key}: {value}")


@subscribers.command("unsubscribe")
@click.argument("email")
@config_option
@handle_errors
def unsubscribe_command(email: str, config_path: Path | None) -> None:
    """Stop sending to EMAIL, keeping the record that they left (so no import re-adds them)."""
    with _opened(config_path) as (_, store):
        before = store.get(email)
        if before is not None and before.status is SubscriberStatus.UNSUBSCRIBED:
            click.echo(f"{before.email} was already unsubscribed")
            return
        subscriber = store.unsubscribe(email, source="cli", detail="unsubscribed by an editor")
    click.echo(f"unsubscribed {subscriber.email}; they get no further issues")


@subscribers.command("list")
@list_option
@status_option
@config_option
@handle_errors
def list_command(list_name: str | None, status: str | None, config_path: Path | None) -> None:
    """Show subscribers as a table: everyone in the store, or the members of one --list."""
    wanted = SubscriberStatus(status) if status else None
    with _opened(config_path) as (_, store):
        rows: Iterator[Subscriber] = (
            store.subscribers_of(list_name, wanted) if list_name else store.all_subscribers(wanted)
        )
        shown = 0
        for subscriber in rows:
            if shown == 0:
                click.echo(f"{'EMAIL':<40} {'NAME':<28} STATUS")
            click.echo(f"{subscriber.email:<40} {subscriber.name:<28} {subscriber.status}")
            shown += 1
    where = f" on '{list_name}'" if list_name else ""
    which = f" {status}" if status else ""
    click.echo(f"{shown}{which} subscriber(s){where}")
