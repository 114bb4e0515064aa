"""The same SendGrid send on SQLite and on PostgreSQL, run in turn (A B A B), for their ratio.

Both stores are filled once; then each round runs the send on SQLite, on PostgreSQL with
one sender, and (``--senders 2``) with several sharing it, so a machine whose load changes
meanwhile weighs on every case alike. Prints each run and the medians, with the CPU time
of the sending processes and of the PostgreSQL server (when it runs on this host), and
writes them as JSON to bench/results/.

    .venv/bin/python bench/bench_send_stores.py --store postgresql://USER:PASSWORD@HOST/DB \\
        [--recipients 1000000] [--runs 3] [--senders 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import bench_send
from bench_send import (
    STORES,
    TARGET_RSS_MB,
    Sink,
    _set_provider,
    make_project,
    make_store,
    measured_send,
    sendgrid_provider,
    write_results,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", metavar="URL", required=True, help="a PostgreSQL database")
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="rounds of the cases in turn")
    parser.add_argument("--senders", type=int, default=1, help="also run N sharing the send")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-stores-") as tmp:
        work = Path(tmp)
        cases = [("sqlite", _project(work / "sqlite", None, args.recipients), 1)]
        postgres = _project(work / "postgres", args.store, args.recipients)
        cases.append(("postgresql", postgres, 1))
        if args.senders > 1:
            cases.append((f"postgresql x{args.senders}", postgres, args.senders))
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in cases}
        try:
            for round_no in range(1, args.runs + 1):
                for label, config_path, senders in cases:
                    result = _run(config_path, senders, args.recipients)
                    runs[label].append(result)
                    print(f"  round {round_no}, {label}: {_line(result)}", flush=True)
        finally:
            for schema in STORES.values():
                schema.drop()
    summary = {label: _medians(results) for label, results in runs.items()}
    base = summary["sqlite"]["median_s"]
    print()
    for label, figures in summary.items():
        figures["ratio_to_sqlite"] = round(figures["median_s"] / base, 2)
        print(
            f"{label:<16} median {figures['median_s']:.2f} s ({figures['ratio_to_sqlite']:.2f}x "
            f"SQLite), CPU {figures['cpu_s']:.1f} s sender + {figures['workers_cpu_s']:.1f} s "
            f"workers + {figures.get('server_cpu_s', 0):.1f} s server, largest process "
            f"{figures['largest_process_mb']:.0f} MB (target <= {TARGET_RSS_MB:.0f})"
        )
    path = write_results("send-stores-", recipients=args.recipients, summary=summary, runs=runs)
    print(f"\nresults: {path.relative_to(bench_send.REPO)}")


def _project(root: Path, store: str | None, recipients: int) -> Path:
    bench_send.OPTIONS["store"] = store
    config_path = make_project(root, sendgrid_provider(1))
    seconds = make_store(config_path, recipients)
    print(f"{root.name}: store of {recipients:,} subscribers made in {seconds:.1f} s", flush=True)
    return config_path


def _run(config_path: Path, senders: int, recipients: int) -> dict[str, Any]:
    bench_send.OPTIONS["senders"] = senders
    sink = Sink("http")
    try:
        _set_provider(config_path, sendgrid_provider(sink.port))
        result = measured_send(config_path)
    finally:
        received = sink.stop()
    if result["sent"] != recipients or received.get("recipients") != recipients:
        raise RuntimeError(f"sent {result['sent']}, the sink saw {received}")
    return result


def _line(result: dict[str, Any]) -> str:
    return (
        f"{result['seconds']:.2f} s, CPU {result['cpu_s']:.1f} s + {result['workers_cpu_s']:.1f} s"
        f" workers + {result.get('server_cpu_s', 0):.1f} s server, peak RSS "
        f"{result['vm_hwm_kb'] / 1024:.0f} MB (worker {result['workers_hwm_kb'] / 1024:.0f} MB)"
    )


def _medians(results: list[dict[str, Any]]) -> dict[str, float]:
    def median(key: str) -> float:
        return round(statistics.median(result.get(key, 0.0) for result in results), 2)

    largest = [max(r["vm_hwm_kb"], r["workers_hwm_kb"]) / 1024 for r in results]
    return {
        "median_s": median("seconds"),
        "cpu_s": median("cpu_s"),
        "workers_cpu_s": median("workers_cpu_s"),
        "server_cpu_s": median("server_cpu_s"),
        "largest_process_mb": round(max(largest), 1),
    }


if __name__ == "__main__":
    main()
