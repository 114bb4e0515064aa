"""Sign-up and one-click load benchmark: `newsletter serve` answering while a send runs.

Target: ``POST /subscribe`` (JSON, a new address each time) and ``POST /unsubscribe/TOKEN``
(RFC 8058 one-click, a different reader each time) each hold at least 1,000 requests/s
on loopback with a 99th percentile at or under 50 ms, while ``newsletter send`` delivers
an issue to a loopback SMTP sink from the same store.

Everything runs as it would in production, each in its own process: ``newsletter serve``
(as installed, so it logs no request: ``--access-log`` is off), ``newsletter send``, the
SMTP sink (``sinks.py smtp``, which also takes the confirmation e-mails) and the load
generator, wrk (``apt-get install wrk``), a closed loop of ``--connections`` keep-alive
connections. Closed-loop figures are what the server sustains at that concurrency; a
request is counted with its whole latency.

    .venv/bin/python bench/bench_signup.py [--seconds 10] [--connections 8] [--readers 200000]

Prints the figures and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_send import (  # noqa: E402
    ENV,
    PYTHON,
    make_project,
    make_store,
    smtp_provider,
    write_results,
)

TARGET_PER_S = 1000.0
TARGET_P99_MS = 50.0
# wrk's thread:set() sets a global of the thread's own Lua state: "id" and "offset" must be
# globals, not locals, or every thread would see 0 and send the same requests as the others.
SIGNUP_LUA = """
local count = 0
id = 0
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
end
function request()
  count = count + 1
  local body = '{"email": "new' .. id .. '.' .. count .. '@example.net", "lists": ["guests"]}'
  return wrk.format("POST", "/subscribe", {["Content-Type"] = "application/json"}, body)
end
"""
ONE_CLICK_LUA = """
local tokens = {}
local count = 0
offset = 0
local threads = 0
local made = 0
function setup(thread)
  thread:set("offset", made)
  made = made + 1
end
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  threads = tonumber(args[2])
end
function request()
  local token = tokens[(offset + count * threads) % #tokens + 1]
  count = count + 1
  return wrk.format("POST", "/unsubscribe/" .. token,
    {["Content-Type"] = "application/x-www-form-urlencoded"}, "List-Unsubscribe=One-Click")
end
"""
REPORT_LUA = """
function done(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.3f, "non_2xx": %d, "errors": %d, '
    .. '"p50_ms": %.2f, "p90_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f}\\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def sink(work: Path) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [PYTHON, str(HERE / "sinks.py"), "smtp"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline().split()
    if not line or line[0] != "READY":
        raise SystemExit(f"the SMTP sink did not start: {line}")
    return process, int(line[1])


def configure(config: Path, smtp_port: int, web_port: int) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["provider"] = smtp_provider(smtp_port)
    data["lists"] = [
        {"name": "members", "description": "Members"},
        {"name": "guests", "description": "Guest columns", "public": True},
    ]
    data["signup"] = {"per_ip_per_hour": 1_000_000_000}
    data["web"] = {**data.get("web", {}), "port": web_port}
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def one_click_tokens(config: Path, count: int, out: Path) -> None:
    """Genuine tokens of ``count`` different readers of 'members', one a line."""
    from newsletter.config import load_config
    from newsletter.send import unsubscribe_secret
    from newsletter.store import open_store
    from newsletter.tokens import TokenSigner

    os.environ.update(ENV)
    loaded = load_config(config)
    with open_store(loaded) as store:
        signer = TokenSigner(unsubscribe_secret(loaded, store))
        list_id = store.list_id("members")
        # From the end of the list, so the send has not reached them yet: each one-click
        # changes the audience of the send under way, the hardest case for both.
        people = store.db.all(
            "SELECT id, email FROM subscribers ORDER BY id DESC LIMIT ?", (count,)
        )
    out.write_text("".join(signer.make(i, e, list_id) + "\n" for i, e in people))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(server: int, url: str, script: str, seconds: int, connections: int, *args: str
             ) -> dict[str, Any]:  # fmt: skip
    """wrk's figures, and the server's CPU time per request: what the load costs the server
    whatever else the machine is doing."""
    before = cpu_seconds(server)
    result = wrk(url, script, seconds, connections, *args)
    used = cpu_seconds(server) - before
    result["server_cpu_ms_per_request"] = round(used * 1000 / max(1, result["requests"]), 3)
    return result


def wait_for(url: str, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answered at {url}")


def sending(config: Path) -> bool:
    """Whether the send is under way: batches claimed, not finished."""
    import sqlite3

    conn = sqlite3.connect(config.parent / "newsletter.db", timeout=15)
    try:
        done = conn.execute("SELECT completed_at FROM sends").fetchone()
        batches = conn.execute("SELECT COUNT(*) FROM send_batches").fetchone()[0]
    finally:
        conn.close()
    return bool(batches) and (done is None or done[0] is None)


def wrk(url: str, script: str, seconds: int, connections: int, *args: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script + REPORT_LUA)
    threads = min(2, connections)
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
        "-s", handle.name, url, "--", *args, str(threads),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    os.unlink(handle.name)
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    result["per_s"] = round(result["requests"] / result["seconds"], 1)
    return result


def confirmations_taken(smtp: subprocess.Popen[str], send_log: list[str]) -> int | None:
    """How many confirmation e-mails reached the sink: all it took but the issue's own.

    The server sends what is still queued before it stops, and the sink, stopped last,
    prints its count; so every sign-up answered 2xx should be here once.
    """
    assert smtp.stdout is not None
    lines = smtp.stdout.read().strip().splitlines()
    sent = re.search(r"in all: sent (\d+)", "\n".join(send_log))
    if not lines or sent is None:
        return None
    return int(json.loads(lines[-1])["recipients"]) - int(sent.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="each endpoint's load (10)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (8)")
    parser.add_argument("--readers", type=int, default=200_000, help="the send's size")
    parser.add_argument(
        "--no-send", action="store_true", help="the endpoints alone, for comparison"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="bench-signup-"))
    processes: list[subprocess.Popen[Any]] = []
    env = {**os.environ, **ENV}
    try:
        smtp, smtp_port = sink(work)
        processes.append(smtp)
        config = make_project(work / "project", smtp_provider(smtp_port))
        make_store(config, args.readers)
        web_port = free_port()
        configure(config, smtp_port, web_port)
        tokens = work / "tokens.txt"
        one_click_tokens(config, 50_000, tokens)
        newsletter = [PYTHON, "-m", "newsletter"]
        server = start([*newsletter, "serve", "--config", str(config)], env, work / "serve.log")
        processes.append(server)
        base = f"http://127.0.0.1:{web_port}"
        wait_for(f"{base}/subscribe")
        command = [*newsletter, "send", "--list", "members", "--config", str(config)]
        send = start(
            [PYTHON, "-c", "pass"] if args.no_send else command,
            env,
            work / "send.log",
        )
        processes.append(send)
        deadline = time.monotonic() + 60
        while not args.no_send and not sending(config):
            if send.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((work / "send.log").read_text())
            time.sleep(0.1)
        figures: dict[str, Any] = {}
        figures["signup"] = measured(server.pid, base, SIGNUP_LUA, args.seconds, args.connections)
        still = sending(config)
        figures["one_click"] = measured(
            server.pid, base, ONE_CLICK_LUA, args.seconds, args.connections, str(tokens)
        )
        figures["send_still_running"] = still and sending(config) and not args.no_send
        figures["send_exit"] = send.wait(timeout=600)
        figures["send"] = (work / "send.log").read_text().strip().splitlines()[-4:]
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    figures["confirmations"] = confirmations_taken(smtp, figures["send"])
    print_figures(figures, args)
    path = write_results("signup-", connections=args.connections, readers=args.readers, **figures)
    print(f"\nresults: {path.relative_to(HERE.parent)}")
    shutil.rmtree(work, ignore_errors=True)


def print_figures(figures: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"{args.readers:,}-reader send to a loopback SMTP sink running throughout: "
          f"{figures['send_still_running']}")  # fmt: skip
    print(f"{'endpoint':<12} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'non-2xx':>8} {'CPU ms':>7}  target")  # fmt: skip
    for name in ("signup", "one_click"):
        row = figures[name]
        met = row["per_s"] >= TARGET_PER_S and row["p99_ms"] <= TARGET_P99_MS
        print(
            f"{name:<12} {row['per_s']:>8,.0f} {row['p50_ms']:>7.1f} {row['p90_ms']:>7.1f} "
            f"{row['p99_ms']:>7.1f} {row['max_ms']:>7.1f} {row['non_2xx']:>8} "
            f"{row['server_cpu_ms_per_request']:>7.2f}  "
            f"{'met' if met else 'NOT met'} (>= {TARGET_PER_S:,.0f}/s, p99 <= {TARGET_P99_MS} ms)"
        )
    print(f"confirmation e-mails taken by the sink: {figures['confirmations']} "
          f"for {figures['signup']['requests']:,} sign-ups")  # fmt: skip
    print(f"send (exit {figures['send_exit']}):")
    for line in figures["send"]:
        print(f"  {line}")


if __name__ == "__main__":
    main()
