"""``newsletter subscribers import`` of a large CSV: wall time and peak memory.

Target: 1,000,000 rows in at most 10 s with at most 150 MB peak RSS. The CSV (email, name,
two attributes, a few rows the importer must refuse) is generated once; each run imports
it into a fresh store by running the real command in a new process, so interpreter start,
imports and the final commit are all counted. Peak RSS is the child's ``ru_maxrss``.

    .venv/bin/python bench/bench_import.py [--rows 1000000] [--runs 3] [--store URL]

``--store postgresql://...`` imports into a PostgreSQL store instead, a fresh schema of
that database per run (``pg_store.py``); a server on this host has its CPU time measured
too, since most of such an import's work is the server's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = Path(sys.executable).with_name("newsletter")
CONFIG = """\
newsletter:
  name: Bench
  site_url: https://example.org
  sender: {name: Bench, address: news@example.org}
  postal_address: 1 Bench Street
sources:
  - {name: posts, type: markdown, path: content}
lists:
  - name: members
"""
SQLITE_STORE = "store:\n  path: store.db\n"


def write_csv(path: Path, rows: int) -> None:
    """Plain rows, some accented names, and one refused row in 10,000 (a bad address)."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,name,organisation,town\n")
        for n in range(rows):
            if n % 10_000 == 9_999:
                out.write(f"not-an-address-{n},Bad Row,Org,Town\n")
            elif n % 7 == 0:
                out.write(f"zoe.{n}@bücher{n % 13}.example,Zoë Ångström {n},Org {n % 50},Leeds\n")
            else:
                out.write(f"person.{n}@mail{n % 97}.example.org,Person {n},Org {n % 50},Hull\n")


def run_once(
    folder: Path, csv_path: Path, env: dict[str, str] | None = None
) -> tuple[float, float, float, str]:
    """Wall and CPU seconds, peak RSS in MB and the command's summary line, in a fresh
    store. CPU time is shown because on a shared machine wall time also measures the
    neighbours."""
    store = folder / "store.db"
    for leftover in folder.glob("store.db*"):
        leftover.unlink()
    assert not store.exists()
    started = time.perf_counter()
    child = subprocess.Popen(
        [str(COMMAND), "subscribers", "import", str(csv_path), "--list", "members",
         "--config", str(folder / "newsletter.yml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    output = child.stdout.read() if child.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"import failed:\n{output}")
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, usage.ru_maxrss / 1024, output.splitlines()[0]  # ru_maxrss: KiB


def run_on_postgres(
    folder: Path, csv_path: Path, url: str, run: int
) -> tuple[float, float, float, str, float | None]:
    """``run_once`` into a fresh schema of the database at ``url``, and the server's CPU
    seconds meanwhile (None for a server on another host)."""
    from pg_store import BenchSchema, server_cpu_seconds

    schema = BenchSchema(url, f"import{run}")
    try:
        store = f"store:\n  url: '{schema.config_url}'\n"
        (folder / "newsletter.yml").write_text(CONFIG + store, encoding="utf-8")
        before = server_cpu_seconds(url)
        measured = run_once(folder, csv_path, schema.env)
        after = server_cpu_seconds(url)
        server = after - before if before is not None and after is not None else None
        return (*measured, server)
    finally:
        schema.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store", metavar="URL", help="a PostgreSQL database to import into")
    options = parser.parse_args()
    if not COMMAND.exists():
        sys.exit(f"{COMMAND} not found: install the project into this interpreter's venv")
    folder = Path(tempfile.mkdtemp(prefix="bench-import-"))
    try:
        (folder / "newsletter.yml").write_text(CONFIG + SQLITE_STORE, encoding="utf-8")
        (folder / "content").mkdir()
        csv_path = folder / "people.csv"
        write_csv(csv_path, options.rows)
        size = csv_path.stat().st_size / 1e6
        print(f"{options.rows:,} rows, {size:.1f} MB CSV; {options.runs} runs in fresh stores")
        results = []
        servers = []
        for run in range(1, options.runs + 1):
            if options.store:
                *measured, server = run_on_postgres(folder, csv_path, options.store, run)
                seconds, cpu, peak, summary = measured
            else:
                seconds, cpu, peak, summary = run_once(folder, csv_path)
                server = None
            results.append((seconds, cpu, peak))
            shown = ""
            if server is not None:
                servers.append(server)
                shown = f"  server CPU {server:6.2f} s"
            print(
                f"  run {run}: {seconds:6.2f} s (CPU {cpu:6.2f} s){shown}  peak RSS {peak:6.1f} MB"
            )
            print(f"    {summary}")
        wall, cpu, rss = (statistics.median(column) for column in zip(*results, strict=True))
        verdict = "ok" if wall <= 10 and rss <= 150 else "OVER TARGET"
        shown = f", server CPU {statistics.median(servers):.2f} s" if servers else ""
        print(
            f"median: {wall:.2f} s (CPU {cpu:.2f} s{shown}), peak RSS {rss:.1f} MB "
            f"(target <= 10 s, <= 150 MB): {verdict}"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
