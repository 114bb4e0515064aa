"""``--store URL`` of the benchmarks: each measured store is a schema of its own in that
PostgreSQL database, dropped at the end, so a benchmark never touches the tables it finds.

newsletter.yml never holds a password, so the config gets the URL with its password as
``${BENCH_STORE_PASSWORD}`` and the environment gets the password.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit, urlunsplit

PASSWORD_VARIABLE = "BENCH_STORE_PASSWORD"


class BenchSchema:
    """A fresh schema in the database at ``url``; ``config_url`` for newsletter.yml,
    ``url`` (password included) for plain connections, ``env`` for the commands."""

    def __init__(self, url: str, name: str) -> None:
        import psycopg

        self.name = f"bench_{name}_{os.getpid()}"
        self.base = url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")
            conn.execute(f"CREATE SCHEMA {self.name}")
        parts = urlsplit(url)
        query = "&".join(filter(None, [parts.query, f"options=-csearch_path%3D{self.name}"]))
        self.url = urlunsplit(parts._replace(query=query))
        password = unquote(parts.password or "")
        self.env = {PASSWORD_VARIABLE: password} if password else {}
        netloc = parts.netloc
        if password:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}:${{{PASSWORD_VARIABLE}}}@{host}"
        self.config_url = urlunsplit(parts._replace(netloc=netloc, query=query))

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")
