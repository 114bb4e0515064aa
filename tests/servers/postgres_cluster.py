"""A throw-away PostgreSQL cluster on a loopback port, for the tests that run on both stores.

initdb refuses to run as root, so as root the cluster belongs to ``nobody`` (via setpriv).
The cluster lives in a temporary folder; password authentication is on for TCP, so a wrong
password is refused as on a real server. Each test gets a schema of its own (its URL sets
the search path), which is far cheaper than a database per test.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from itertools import count
from pathlib import Path
from urllib.parse import quote

SUPERUSER = "postgres"
PASSWORD = "cluster-secret"
_schemas = count(1)


def find_bin(name: str) -> str | None:
    """A PostgreSQL program on PATH, or in Debian's versioned folder (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    for folder in folders:
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    return None


def _version(folder: str) -> float:
    try:
        return float(Path(folder).parent.name)
    except ValueError:
        return 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """initdb, pg_ctl start and stop; ``url()`` names a fresh schema each call."""

    def __init__(self) -> None:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise FileNotFoundError(
                "PostgreSQL's initdb and pg_ctl are not installed (Debian: apt-get install "
                "postgresql)"
            )
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.folder = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.as_user: Sequence[str] = ()
        if os.geteuid() == 0:
            owner = pwd.getpwnam("nobody")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self.as_user = (
                "setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--clear-groups"
            )  # fmt: skip
        self.folder.chmod(0o700)

    def start(self) -> None:
        password_file = self.folder / "password"
        password_file.write_text(PASSWORD, encoding="utf-8")
        if self.as_user:
            shutil.chown(password_file, "nobody")
        self._run(
            self.initdb, "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={password_file}",
            "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync",
            "--locale=C",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.folder} -c fsync=off -c full_page_writes=off "
            "-c max_connections=60 -c shared_buffers=32MB"
        )
        self._run(
            self.pg_ctl, "-D", str(self.data), "-l", str(self.folder / "log"), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def base_url(self, *, password: str = PASSWORD, database: str = "postgres") -> str:
        secret = quote(password, safe="")
        return f"postgresql://{SUPERUSER}:{secret}@127.0.0.1:{self.port}/{database}"

    def url(self) -> str:
        """A URL whose tables land in a new, empty schema of their own."""
        import psycopg

        schema = f"test_{next(_schemas)}"
        with psycopg.connect(self.base_url(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{self.base_url()}?options=-csearch_path%3D{schema}"

    def log(self) -> str:
        path = self.folder / "log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self.as_user, *command], capture_output=True, text=True, check=False, timeout=120
        )
        if done.returncode:
            raise RuntimeError(
                f"{' '.join(command[:2])} failed ({done.returncode}): "
                f"{done.stderr.strip() or done.stdout.strip()}\n{self.log()[-2000:]}"
            )
