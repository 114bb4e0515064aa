"""``newsletter subscribers import`` of a large CSV: wall time and peak memory.

Target: 1,000,000 rows in at most 10 s with at most 150 MB peak RSS. The CSV (email, name,
two attributes, a few rows the importer must refuse) is generated once; each run imports
it into a fresh store by running the real command in a new process, so interpreter start,
imports and the final commit are all counted. Peak RSS is the child's ``ru_maxrss``.

    .venv/bin/python bench/bench_import.py [--rows 1000000] [--runs 3] [--store URL]
        [--before OTHER/.venv/bin/newsletter]

``--store postgresql://...`` imports into a PostgreSQL store instead, a fresh schema of
that database per run (``pg_store.py``); a server on this host has its CPU time measured
too, since most of such an import's work is the server's. ``--before`` runs another
checkout's command in turn with this one, run for run, on the same file and the same kind
of store: on a shared machine only such pairs compare, and their ratio is the figure to
quote.
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


Measured = tuple[float, float, float, str, float | None]
"""Wall and CPU seconds, peak RSS in MB, the summary line, and the server's CPU seconds."""


def run_once(
    folder: Path, csv_path: Path, env: dict[str, str] | None = None, command: Path = COMMAND
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
        [str(command), "subscribers", "import", str(csv_path), "--list", "members",
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
    folder: Path, csv_path: Path, url: str, name: str, command: Path = COMMAND
) -> Measured:
    """``run_once`` into a fresh schema ``name`` of the database at ``url``, and the
    server's CPU seconds meanwhile (None for a server on another host)."""
    from pg_store import BenchSchema, server_cpu_seconds

    schema = BenchSchema(url, name)
    try:
        store = f"store:\n  url: '{schema.config_url}'\n"
        (folder / "newsletter.yml").write_text(CONFIG + store, encoding="utf-8")
        before = server_cpu_seconds(url)
        measured = run_once(folder, csv_path, schema.env, command)
        after = server_cpu_seconds(url)
        server = after - before if before is not None and after is not None else None
        return (*measured, server)
    finally:
        schema.drop()


def _measure(folder: Path, csv_path: Path, store: str | None, name: str, command: Path) -> Measured:
    if store:
        return run_on_postgres(folder, csv_path, store, name, command)
    return (*run_once(folder, csv_path, None, command), None)


def _report(label: str, measured: Measured) -> tuple[float, float, float, float | None]:
    seconds, cpu, peak, summary, server = measured
    shown = f"  server CPU {server:6.2f} s" if server is not None else ""
    print(f"  {label}: {seconds:6.2f} s (CPU {cpu:6.2f} s){shown}  peak RSS {peak:6.1f} MB")
    print(f"    {summary}")
    return seconds, cpu, peak, server


def _medians(
    results: list[tuple[float, float, float, float | None]],
) -> tuple[float, float, float, float | None]:
    servers = [server for *_, server in results if server is not None]
    return (
        statistics.median(wall for wall, _, _, _ in results),
        statistics.median(cpu for _, cpu, _, _ in results),
        statistics.median(rss for _, _, rss, _ in results),
        statistics.median(servers) if servers else None,
    )


def _server(seconds: float | None) -> str:
    return f", server CPU {seconds:.2f} s" if seconds is not None else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store", metavar="URL", help="a PostgreSQL database to import into")
    parser.add_argument(
        "--before", metavar="COMMAND", type=Path, help="another checkout's newsletter command"
    )
    options = parser.parse_args()
    for command in (COMMAND, options.before):
        if command is not None and not command.exists():
            sys.exit(f"{command} not found: install the project into that checkout's venv")
    folder = Path(tempfile.mkdtemp(prefix="bench-import-"))
    try:
        (folder / "newsletter.yml").write_text(CONFIG + SQLITE_STORE, encoding="utf-8")
        (folder / "content").mkdir()
        csv_path = folder / "people.csv"
        write_csv(csv_path, options.rows)
        size = csv_path.stat().st_size / 1e6
        print(f"{options.rows:,} rows, {size:.1f} MB CSV; {options.runs} runs in fresh stores")
        results, before = [], []
        for run in range(1, options.runs + 1):
            if options.before is not None:
                measured = _measure(folder, csv_path, options.store, f"before{run}", options.before)
                before.append(_report(f"before {run}", measured))
            measured = _measure(folder, csv_path, options.store, f"import{run}", COMMAND)
            results.append(_report(f"run {run}", measured))
        wall, cpu, rss, server = _medians(results)
        verdict = "ok" if wall <= 10 and rss <= 150 else "OVER TARGET"
        print(
            f"median: {wall:.2f} s (CPU {cpu:.2f} s{_server(server)}), peak RSS {rss:.1f} MB "
            f"(target <= 10 s, <= 150 MB): {verdict}"
        )
        if before:
            old_wall, old_cpu, old_rss, old_server = _medians(before)
            ratios = f"wall {wall / old_wall:.2f}, CPU {cpu / old_cpu:.2f}"
            if server is not None and old_server:
                ratios += f", server CPU {server / old_server:.2f}"
            print(
                f"before: {old_wall:.2f} s (CPU {old_cpu:.2f} s{_server(old_server)}), "
                f"peak RSS {old_rss:.1f} MB; ratios of the medians: {ratios}"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
