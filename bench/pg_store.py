"""``--store URL`` of the benchmarks: each measured store is a schema of its own in that
PostgreSQL database, dropped at the end, so a benchmark never touches the tables it finds.

newsletter.yml never holds a password, so the config gets the URL with its password as
``${BENCH_STORE_PASSWORD}`` and the environment gets the password.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
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


def server_cpu_seconds(url: str) -> float | None:
    """The CPU time of the PostgreSQL server at ``url`` so far, if it runs on this host:
    its postmaster's own and its reaped children's (every backend that has exited) plus
    its live children's (Linux /proc). None for a server elsewhere."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        try:
            postmaster = int(_stat(int(row[0]) if row else 0)[1])
        except OSError:
            return None
    time.sleep(0.3)  # the postmaster reaps the backends that just closed
    fields = _stat(postmaster)
    ticks = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                child = _stat(int(entry.name))
            except OSError:
                continue
            if int(child[1]) == postmaster:
                ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state is [0], ppid [1])."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
