"""``newsletter store ...``: the subscriber store itself (its schema, moving it)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import StoreError
from ..store.db import open_database
from ..store_url import is_store_url, resolve_store_url
from .common import config_option, handle_errors, load


@click.group()
def store() -> None:
    """Look after the subscriber store: migrate its schema, copy it to PostgreSQL.

    The store is the SQLite file named by store.path in newsletter.yml, or the PostgreSQL
    database named by store.url (postgresql://USER:${PGPASSWORD}@HOST:PORT/DB).
    """


@store.command("migrate")
@config_option
@handle_errors
def migrate_command(config_path: Path | None) -> None:
    """Bring the store's schema up to this version of newsletter (every command does this
    when it opens the store; run it on its own before starting senders on several hosts).
    Two processes migrating at once are safe: the second waits and applies nothing."""
    database = open_database(load(config_path).store_location)
    try:
        applied = database.migrate()
        version = database.schema_version()
    finally:
        database.close()
    if applied:
        done = ", ".join(map(str, applied))
        click.echo(f"{database.where}: schema at version {version} (applied {done})")
    else:
        click.echo(f"{database.where}: schema already at version {version}")


@store.command("copy")
@click.option(
    "--to",
    "url",
    required=True,
    metavar="URL",
    help="The PostgreSQL store: postgresql://USER:${PGPASSWORD}@HOST:PORT/DB (a ${VAR} is "
    "read from the environment, so no password is on the command line).",
)
@config_option
@handle_errors
def copy_command(url: str, config_path: Path | None) -> None:
    """Copy the SQLite store (store.path) into a PostgreSQL database, checked table by
    table by row counts and checksums. Stop send, run and serve first. Run it again after
    an interruption: it carries on where it stopped and never copies a row twice. Then
    set store.url in newsletter.yml to the same URL."""
    from ..store.copy import copy_store

    if not is_store_url(url):
        raise StoreError(
            f"--to expects a postgresql:// URL, got {url!r}",
            hint="for example --to 'postgresql://newsletter:${PGPASSWORD}@db.example.org/news'",
        )
    loaded = load(config_path)
    if loaded.settings.store.url is not None:
        raise StoreError(
            "store.url already names a PostgreSQL store; copy from the SQLite file",
            hint="set store.path (and not store.url) in newsletter.yml while copying",
        )
    source = open_database(loaded.store_path)
    try:
        target = open_database(resolve_store_url(url, field="--to"))
        try:
            done = copy_store(source, target)
        finally:
            target.close()
    finally:
        source.close()
    for table in done:
        click.echo(f"{table.name}: {table.rows} row(s), {table.copied} copied now, verified")
    click.echo(f"copied {loaded.store_path} to {target.where}; set store.url to use it")
