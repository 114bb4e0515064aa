"""``newsletter store ...``: the subscriber store itself (its schema, moving it)."""

from __future__ import annotations

from pathlib import Path

import click

from ..store.db import open_database
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
