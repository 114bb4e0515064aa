"""Sending benchmark: a real send of a built issue to loopback sinks in other processes.

Targets: 1,000,000 SendGrid recipients dispatched in <= 5 s with <= 150 MB peak RSS over
all processes and <= 400 bytes per recipient on the wire; SMTP no slower than before
(about 3,200 messages/s to Postfix's smtp-sink). Each measured send runs in a fresh process (as the
scheduler runs it) against a fresh copy of the store; figures are medians of ``--runs``.
A naive loop (render the issue per recipient, one request per recipient) is measured on
a sample and extrapolated, for the ratio.

The SendGrid sink shares the two cores with the send, so it counts recipients by a mark
each personalization carries once instead of parsing each body (``sinks.py --parse``
does that): about 1.5 CPU seconds for a million recipients, against some 24 of the send's
own, so it is not what limits the figures.

    .venv/bin/python bench/bench_send.py [--quick] [--runs 3]
        [--store postgresql://USER:PASSWORD@HOST/DB [--senders 2]]

``--store`` measures a PostgreSQL store (a schema of its own in that database, see
``pg_store.py``) instead of a SQLite file; ``--senders N`` runs N processes with
``send --join`` on the same send, all started at once, and times them until the last ends.

Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
ISSUE_DAY = date(2026, 11, 24)
ENV = {
    "NEWSLETTER_SECRET": "bench-secret-0123456789abcdef",
    "SENDGRID_API_KEY": "SG.bench",
    "SMTP_PASSWORD": "unused",
}
TARGET_SENDGRID_S = 5.0
TARGET_RSS_MB = 150.0
TARGET_BYTES_PER_RECIPIENT = 400
TARGET_SMTP_PER_S = 2000.0
STORES: dict[Path, Any] = {}
"""Project config -> its PostgreSQL ``BenchSchema`` (with ``--store``)."""
OPTIONS: dict[str, Any] = {"store": None, "senders": 1}


# --- the project and its store (setup, timed but not part of the send) --------------------


def make_project(root: Path, provider: dict[str, Any]) -> Path:
    """A copy of the sample project whose provider is the given one; issue 1 built."""
    root.mkdir(parents=True)
    shutil.copytree(REPO / "samples", root / "samples")
    shutil.copytree(REPO / "templates", root / "templates")
    config = yaml.safe_load((REPO / "newsletter.yml").read_text(encoding="utf-8"))
    config["provider"] = provider
    path = root / "newsletter.yml"
    if OPTIONS["store"]:
        from pg_store import BenchSchema

        schema = STORES[path] = BenchSchema(OPTIONS["store"], root.name.replace("-", "_"))
        config["store"] = {"url": schema.config_url}
        ENV.update(schema.env)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    from newsletter.build import build_issue
    from newsletter.config import load_config

    with environment():
        build_issue(load_config(path), on=ISSUE_DAY)
    return path


def make_store(config_path: Path, count: int) -> float:
    """``count`` subscribers on the list 'members', bulk-inserted; returns the seconds taken."""
    from newsletter.config import load_config
    from newsletter.store import open_store

    started = time.perf_counter()
    with environment():
        loaded = load_config(config_path)
        with open_store(loaded) as store:
            list_id = store.list_id("members")
    if config_path in STORES:
        _fill_postgres(STORES[config_path].url, list_id, count)
        return time.perf_counter() - started
    # Plain SQL with durability off: this is fixture data, not the code under test.
    conn = sqlite3.connect(str(loaded.store_path), isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.executemany(
        f"INSERT INTO subscribers ({SUBSCRIBER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (_subscriber(i) for i in range(1, count + 1)),
    )
    conn.executemany(
        "INSERT INTO memberships (list_id, subscriber_id, created_at) VALUES (?, ?, ?)",
        ((list_id, i, NOW) for i in range(1, count + 1)),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    shutil.copy(loaded.store_path, str(loaded.store_path) + ".pristine")
    return time.perf_counter() - started


FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Frances", "Donald")
NOW = "2026-11-01T00:00:00.000000Z"


SUBSCRIBER_COLUMNS = (
    "id, email, email_key, name, attributes, status, source, created_at, updated_at"
)


def _subscriber(i: int) -> tuple[Any, ...]:
    attributes = '{"organisation":"Council ' + str(i % 97) + '"}' if i % 4 == 0 else "{}"
    address = f"reader{i}@example.org"
    name = f"{FIRST_NAMES[i % 8]} Reader{i}"
    return (i, address, address, name, attributes, "subscribed", "bench", NOW, NOW)


def _fill_postgres(url: str, list_id: int, count: int) -> None:
    """The same rows as the SQLite store gets, through COPY, then analysed."""
    import psycopg

    with psycopg.connect(url) as conn:
        with conn.cursor().copy(
            f"COPY subscribers ({SUBSCRIBER_COLUMNS}) FROM STDIN"
        ) as copy:
            for i in range(1, count + 1):
                copy.write_row(_subscriber(i))
        with conn.cursor().copy(
            "COPY memberships (list_id, subscriber_id, created_at) FROM STDIN"
        ) as copy:
            for i in range(1, count + 1):
                copy.write_row((list_id, i, NOW))
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('subscribers', 'id'), %s)", (count,)
        )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def reset_store(config_path: Path) -> None:
    """Back to the state before any send, so every run does the same work."""
    if config_path in STORES:
        import psycopg

        with psycopg.connect(STORES[config_path].url, autocommit=True) as conn:
            conn.execute("TRUNCATE sends, send_batches, send_ledger, send_locks")
            conn.execute("VACUUM ANALYZE")
        return
    db = config_path.parent / "newsletter.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    shutil.copy(str(db) + ".pristine", db)


class environment:
    """The benchmark's variables (the store's password) set while inside."""

    def __enter__(self) -> None:
        self.saved = {name: os.environ.get(name) for name in ENV}
        os.environ.update(ENV)

    def __exit__(self, *exc: object) -> None:
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- sinks in other processes ---------------------------------------------------------------


class Sink:
    """``python bench/sinks.py KIND`` in its own process; ``stop()`` returns what it received."""

    script = "sinks.py"

    def __init__(self, kind: str, *extra: str) -> None:
        self.process = subprocess.Popen(
            [PYTHON, str(HERE / self.script), kind, *extra],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"the {kind} sink did not start")
        self.port = int(line[1])

    def stop(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        return json.loads(out.strip().splitlines()[-1])


class PostfixSink:
    """Postfix's smtp-sink, written in C: the ceiling a Python client can be held against."""

    BINARY = "/usr/sbin/smtp-sink"

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        command = [self.BINARY, "-c"]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]
        # A file, not a pipe: -c writes a running count, and a full pipe would stall it.
        self.output = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 closed by stop()
        self.process = subprocess.Popen(
            [*command, f"127.0.0.1:{self.port}", "256"],
            stdout=self.output,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")

    def stop(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)
        self.output.seek(0)
        out = self.output.read()
        self.output.close()
        # -c prints a running count of messages, the last one is the total.
        counts = [int(word) for word in out.replace("\r", " ").split() if word.isdigit()]
        return {"recipients": counts[-1] if counts else None}

    @classmethod
    def available(cls) -> bool:
        return Path(cls.BINARY).exists()


# --- one measured send, in a fresh process --------------------------------------------------


def child_send(config_path: str, join: bool) -> None:
    """Runs in the measured process: one `send_issue`, then its figures as JSON."""
    from newsletter.config import load_config
    from newsletter.send import SendOptions, send_issue

    if os.environ.get("BENCH_SEND_LOG"):  # as `newsletter -v --log-format FORMAT send` logs
        from newsletter.logs import configure

        configure(1, os.environ["BENCH_SEND_LOG"])
    loaded = load_config(config_path)
    began = time.time()
    started = time.perf_counter()
    report = send_issue(loaded, "1", SendOptions(lists=("members",), join=join))
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "began": began,
                "ended": began + seconds,
                "sent": report.sent,
                "refused": report.refused,
                "unconfirmed": report.unconfirmed,
                "status": report.status,
                "vm_hwm_kb": _vm_hwm_kb(),
                # The largest worker process, when the send ran its deliveries in processes.
                "workers_hwm_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                "workers": _workers(loaded),
                "cpu_s": _cpu_s(resource.RUSAGE_SELF),
            }
        ),
        flush=True,
    )


def _workers(loaded: Any) -> int:
    """Worker processes a send of this provider runs (0 when it delivers in threads)."""
    from newsletter.providers import get_provider

    provider = get_provider(loaded)
    return provider.workers if provider.in_processes else 0


def _cpu_s(who: int) -> float:
    used = resource.getrusage(who)
    return round(used.ru_utime + used.ru_stime, 2)


def server_cpu_s(url: str) -> float | None:
    """CPU seconds the PostgreSQL server at ``url`` has used so far, when it runs on this
    host: its postmaster's own and its ended backends' (which it reaps), plus the live
    ones'. None for a server elsewhere."""
    import psycopg

    with psycopg.connect(url) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    try:
        postmaster = int(_stat(backend)[1])
        ticks = sum(map(int, _stat(postmaster)[11:15]))
        for child in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
            try:
                ticks += sum(map(int, _stat(int(child))[11:13]))
            except OSError:  # ended meanwhile: counted in the postmaster's figures
                continue
    except (OSError, ValueError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (field 3 onwards)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def _vm_hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def measured_send(config_path: Path, profile: Path | None = None) -> dict[str, Any]:
    reset_store(config_path)
    senders = OPTIONS["senders"]
    command = [PYTHON, __file__, "--child", str(config_path), *(["--join"] * (senders > 1))]
    if profile is not None:
        command = [PYTHON, "-m", "cProfile", "-o", str(profile), *command[1:]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    schema = STORES.get(config_path)
    server_before = server_cpu_s(schema.url) if schema is not None else None
    cpu_before = _cpu_s(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            command, env={**os.environ, **ENV}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(senders)
    ]  # fmt: skip
    outputs = [process.communicate() for process in processes]
    process_s = time.perf_counter() - started
    for process, (_, err) in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            raise RuntimeError(f"the measured send failed:\n{err[-3000:]}")
    each = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    result = each[0] if senders == 1 else _together(each)
    result["process_s"] = process_s
    # The senders' workers are counted once the senders have waited for them, so only here.
    result["workers_cpu_s"] = round(
        _cpu_s(resource.RUSAGE_CHILDREN) - cpu_before - result["cpu_s"], 2
    )
    if server_before is not None and schema is not None:
        server_after = server_cpu_s(schema.url)
        if server_after is not None:
            result["server_cpu_s"] = round(server_after - server_before, 2)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["children_maxrss_kb"] = after if after > before else None
    return result


def _together(each: list[dict[str, Any]]) -> dict[str, Any]:
    """Several senders of one send as one result: from the first one's start to the last
    one's end, what they sent between them, the largest process's peak (the target is
    per process)."""
    return {
        **each[0],
        "seconds": max(r["ended"] for r in each) - min(r["began"] for r in each),
        "sent": sum(result["sent"] for result in each),
        "senders": [
            {key: result[key] for key in ("seconds", "sent", "vm_hwm_kb")} for result in each
        ],
        "vm_hwm_kb": max(result["vm_hwm_kb"] for result in each),
        "cpu_s": sum(result["cpu_s"] for result in each),
    }


def run_series(
    label: str, config_path: Path, count: int, sink_factory: Any, runs: int
) -> dict[str, Any]:
    """``runs`` sends of ``count`` recipients, each with a fresh sink; the medians."""
    samples = []
    for _ in range(runs):
        sink = sink_factory()
        try:
            result = measured_send(config_path)
        finally:
            received = sink.stop()
        result["sink"] = received
        if result["sent"] != count or received.get("recipients") not in (count, None):
            raise RuntimeError(f"{label}: sent {result['sent']}, sink saw {received}")
        samples.append(result)
        result["all_processes_mb"] = _all_processes_mb(result)
        print(
            f"  {label}: {result['seconds']:.2f} s, {count / result['seconds']:,.0f}/s, "
            f"peak RSS {result['vm_hwm_kb'] / 1024:.0f} MB + "
            f"{result['workers']} worker(s) of {result['workers_hwm_kb'] / 1024:.0f} MB, "
            f"{received.get('bytes', 0) / count:,.0f} bytes per recipient, CPU "
            f"{result['cpu_s']:.1f} s + {result['workers_cpu_s']:.1f} s in workers"
            + (
                f" + {result['server_cpu_s']:.1f} s in the server"
                if "server_cpu_s" in result
                else ""
            ),
            flush=True,
        )
    seconds = statistics.median(s["seconds"] for s in samples)
    wire = [s["sink"].get("bytes") for s in samples if s["sink"].get("bytes")]
    return {
        "label": label,
        "recipients": count,
        "median_s": round(seconds, 3),
        "min_s": round(min(s["seconds"] for s in samples), 3),
        "max_s": round(max(s["seconds"] for s in samples), 3),
        "per_s": round(count / seconds, 1),
        "peak_rss_mb": round(statistics.median(s["all_processes_mb"] for s in samples), 1),
        "max_peak_rss_mb": round(max(s["all_processes_mb"] for s in samples), 1),
        "bytes_per_recipient": round(statistics.median(wire) / count, 1) if wire else None,
        "runs": samples,
    }


def _all_processes_mb(result: dict[str, Any]) -> float:
    """The sending process's peak RSS plus each worker's (taken as the largest one's): an
    upper bound, since forked workers share pages the RSS of each still counts."""
    workers = result["workers"] * result["workers_hwm_kb"]
    return round((result["vm_hwm_kb"] + workers) / 1024, 1)


# --- SendGrid ---------------------------------------------------------------------------------


def sendgrid_provider(port: int) -> dict[str, Any]:
    return {
        "type": "sendgrid",
        "sendgrid": {
            "api_key": "${SENDGRID_API_KEY}",
            "host": f"http://127.0.0.1:{port}",
            "categories": ["newsletter"],
        },
    }


def bench_sendgrid(work: Path, count: int, runs: int) -> tuple[dict[str, Any], Path]:
    """The sink's port changes per run, so the config is rewritten before each one."""
    config_path = make_project(work / f"sendgrid-{count}", sendgrid_provider(1))
    setup_s = make_store(config_path, count)
    print(f"  store of {count:,} subscribers created in {setup_s:.1f} s", flush=True)

    def sink() -> Sink:
        started = Sink("http")
        _set_provider(config_path, sendgrid_provider(started.port))
        return started

    result = run_series(f"sendgrid {count:,}{_on()}", config_path, count, sink, runs)
    result["store_setup_s"] = round(setup_s, 2)
    result["target"] = {
        "max_s": TARGET_SENDGRID_S * count / 1_000_000,
        "max_rss_mb": TARGET_RSS_MB,
        "max_bytes": TARGET_BYTES_PER_RECIPIENT,
    }
    return result, config_path


def _on() -> str:
    """The store in a case's label, when it is not the SQLite file."""
    if not OPTIONS["store"]:
        return ""
    senders = OPTIONS["senders"]
    return " pg" + (f" x{senders}" if senders > 1 else "")


def _set_provider(config_path: Path, provider: dict[str, Any]) -> None:
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["provider"] = provider
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


# --- SMTP -------------------------------------------------------------------------------------


def smtp_provider(port: int) -> dict[str, Any]:
    return {
        "type": "smtp",
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "connections": 4},
    }


def bench_smtp(work: Path, count: int, runs: int) -> list[dict[str, Any]]:
    config_path = make_project(work / f"smtp-{count}", smtp_provider(25))
    setup_s = make_store(config_path, count)
    results = []
    sinks: list[tuple[str, Any]] = [("aiosmtpd", lambda: Sink("smtp"))]
    if PostfixSink.available():
        sinks.append(("postfix smtp-sink", PostfixSink))
    for name, factory in sinks:

        def sink(factory: Any = factory) -> Any:
            started = factory()
            _set_provider(config_path, smtp_provider(started.port))
            return started

        result = run_series(f"smtp {count:,}{_on()} -> {name}", config_path, count, sink, runs)
        result["store_setup_s"] = round(setup_s, 2)
        result["target"] = {"min_per_s": TARGET_SMTP_PER_S}
        results.append(result)
    return results


# --- the naive loop: render per recipient, one request per recipient ------------------------


def bench_naive(config_path: Path, sample: int, full: int) -> dict[str, Any]:
    """What a send costs without preparing once and batching, on ``sample`` recipients."""
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Content, CustomArg, From, Header, Mail, To

    from newsletter import merge
    from newsletter.build import build_issue
    from newsletter.config import load_config
    from newsletter.message import merge_values
    from newsletter.render import render_issue
    from newsletter.send_models import Recipient
    from newsletter.store import open_store
    from newsletter.tokens import TokenSigner

    sink = Sink("http")
    try:
        _set_provider(config_path, sendgrid_provider(sink.port))
        with environment():
            loaded = load_config(config_path)
        built = build_issue(loaded, on=ISSUE_DAY, dry_run=True)
        rendered_once = built.rendered
        meta, selection, view_url = (
            rendered_once.meta,
            rendered_once.selection,
            rendered_once.view_url,
        )
        client = SendGridAPIClient(ENV["SENDGRID_API_KEY"], host=f"http://127.0.0.1:{sink.port}")
        reset_store(config_path)
        with open_store(loaded) as store:
            subscribers = list(itertools.islice(store.subscribers_of("members"), sample))
            list_id = store.list_id("members")
        signer = TokenSigner(ENV["NEWSLETTER_SECRET"])
        base = loaded.unsubscribe_url.rstrip("/") + "/"
        started = time.perf_counter()
        for subscriber in subscribers:
            token = signer.make(subscriber.id, subscriber.email, list_id)
            recipient = Recipient(
                subscriber.id, subscriber.email, subscriber.name, {}, base + token
            )
            rendered = render_issue(loaded, meta, selection, view_url)
            values = merge_values(recipient)
            mail = Mail(
                from_email=From(loaded.settings.newsletter.sender.address),
                to_emails=To(recipient.email, recipient.name),
                subject=meta.subject,
            )
            text = merge.substitute(rendered.text, values, escape_html=False)
            body = merge.substitute(rendered.html, values, escape_html=True)
            mail.add_content(Content("text/plain", text))
            mail.add_content(Content("text/html", body))
            mail.add_header(Header("List-Unsubscribe", f"<{recipient.unsubscribe_url}>"))
            mail.add_custom_arg(CustomArg("subscriber_id", str(recipient.subscriber_id)))
            client.send(mail)
        seconds = time.perf_counter() - started
    finally:
        received = sink.stop()
    if received["requests"] != sample:
        raise RuntimeError(f"naive loop: {sample} requests made, sink saw {received}")
    per_s = sample / seconds
    return {
        "label": f"naive (sample {sample:,})",
        "recipients": sample,
        "median_s": round(seconds, 3),
        "per_s": round(per_s, 1),
        "extrapolated_s": {str(full): round(full / per_s, 1)},
    }


# --- report -------------------------------------------------------------------------------------


def table(rows: list[dict[str, Any]]) -> str:
    header = f"{'case':<34} {'recipients':>11} {'median s':>9} {'per s':>10} {'peak RSS MB':>12}"
    lines = [
        header + "  target",
        "-" * 96,
    ]
    for row in rows:
        rss = row.get("peak_rss_mb")
        target = row.get("target", {})
        verdict = ""
        if "max_s" in target:
            ok = (
                row["median_s"] <= target["max_s"]
                and (rss or 0) <= target["max_rss_mb"]
                and (row.get("bytes_per_recipient") or 0) <= target["max_bytes"]
            )
            verdict = (
                f"<= {target['max_s']:.1f} s, <= {target['max_rss_mb']:.0f} MB, "
                f"<= {target['max_bytes']} B/rcpt ({row.get('bytes_per_recipient')}): "
                + ("met" if ok else "MISSED")
            )
        elif "min_per_s" in target:
            ok = row["per_s"] >= target["min_per_s"]
            verdict = f">= {target['min_per_s']:,.0f}/s: " + ("met" if ok else "MISSED")
        lines.append(
            f"{row['label']:<34} {row['recipients']:>11,} {row['median_s']:>9.2f} "
            f"{row['per_s']:>10,.0f} {('' if rss is None else f'{rss:.0f}'):>12}  {verdict}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one run each")
    parser.add_argument("--runs", type=int, help="runs per case (median); 3, or 1 with --quick")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--join", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", metavar="URL", help="a PostgreSQL database to measure in")
    parser.add_argument(
        "--senders", type=int, default=1, help="processes sharing each send (with --store)"
    )
    parser.add_argument("--only", choices=["sendgrid", "smtp", "naive"], action="append")
    parser.add_argument(
        "--log", choices=["text", "json"], help="log as -v does, in this format, to stderr"
    )
    parser.add_argument(
        "--sizes", help="SendGrid sizes, comma-separated (default 100000,1000000; 20000 quick)"
    )
    args = parser.parse_args()
    if args.child:
        child_send(args.child, args.join)
        return
    OPTIONS.update(store=args.store, senders=args.senders)
    if args.senders > 1 and not args.store:
        parser.error("--senders shares a send, which needs a PostgreSQL --store")
    if args.log:
        os.environ["BENCH_SEND_LOG"] = args.log
    runs = args.runs or (1 if args.quick else 3)
    sizes = [20_000] if args.quick else [100_000, 1_000_000]
    if args.sizes:
        sizes = [int(size) for size in args.sizes.split(",")]
    smtp_count = 2_000 if args.quick else 10_000
    naive_sample = 200 if args.quick else 1_000
    only = set(args.only or ["sendgrid", "smtp", "naive"])

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-send-") as tmp:
        work = Path(tmp)
        naive_config = None
        if "sendgrid" in only or "naive" in only:
            for count in sizes:
                print(f"SendGrid, {count:,} recipients", flush=True)
                if "sendgrid" in only:
                    result, naive_config = bench_sendgrid(work, count, runs)
                    rows.append(result)
                elif naive_config is None:
                    naive_config = make_project(work / "naive", sendgrid_provider(1))
                    make_store(naive_config, naive_sample)
        if "naive" in only and naive_config is not None:
            print(f"naive loop, {naive_sample:,} recipients", flush=True)
            naive = bench_naive(naive_config, naive_sample, max(sizes))
            rows.append(naive)
            batched = [r for r in rows if r["label"].startswith("sendgrid")]
            if batched:
                naive["ratio_vs_batched"] = round(batched[-1]["per_s"] / naive["per_s"], 1)
        if "smtp" in only:
            print(f"SMTP, {smtp_count:,} recipients", flush=True)
            rows.extend(bench_smtp(work, smtp_count, runs))

    print()
    print(table(rows))
    for row in rows:
        if "ratio_vs_batched" in row:
            print(
                f"\nnaive loop: {row['per_s']:,.0f} recipients/s, "
                f"{max(sizes):,} would take {row['extrapolated_s'][str(max(sizes))]:,.0f} s; "
                f"the batched send is {row['ratio_vs_batched']:,.0f}x faster"
            )
    prefix = f"send-{'quick-' if args.quick else ''}{'pg-' if args.store else ''}"
    path = write_results(prefix, runs=runs, results=rows, senders=args.senders)
    print(f"\nresults: {path.relative_to(REPO)}")
    for schema in STORES.values():
        schema.drop()


def write_results(prefix: str, **figures: Any) -> Path:
    """The machine and ``figures`` as JSON in bench/results/, named by prefix and time."""
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{prefix}{time.strftime('%Y%m%dT%H%M%S')}.json"
    machine = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    path.write_text(json.dumps({"machine": machine, **figures}, indent=2))
    return path


if __name__ == "__main__":
    main()
