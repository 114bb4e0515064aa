"""Loopback sinks for the sending benchmark, each run as its own process.

    python bench/sinks.py http [--parse]    a Mail Send endpoint that answers 202 (and
                                            empty suppression lists to GET requests)
    python bench/sinks.py smtp              an aiosmtpd server that accepts everything

Each prints ``READY <port>`` once it listens and, on SIGTERM, one JSON line of what it
received, so the benchmark can check that every recipient arrived. A sink runs in
another process so its work is not charged to the sender, as with a real provider.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from typing import Any

PERSONALIZATION_MARK = b'"custom_args":'
"""Once per personalization in the bodies our provider builds; counting it costs little."""


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.recipients = 0
        self.bytes = 0
        self.connections = 0
        self.first = 0.0
        self.last = 0.0

    def seen(self, recipients: int, size: int) -> None:
        now = time.perf_counter()
        if not self.requests:
            self.first = now
        self.last = now
        self.requests += 1
        self.recipients += recipients
        self.bytes += size

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "recipients": self.recipients,
            "bytes": self.bytes,
            "connections": self.connections,
            "active_s": round(self.last - self.first, 3),
        }


# --- HTTP ----------------------------------------------------------------------------------


async def _serve_http_client(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stats: Stats, parse: bool
) -> None:
    """HTTP/1.1 with keep-alive: enough of the protocol for urllib and http.client."""
    stats.connections += 1
    try:
        while request := await read_request(reader):
            request_line, headers, body = request
            if parse:
                recipients = len(json.loads(body)["personalizations"]) if body else 0
            else:
                recipients = body.count(PERSONALIZATION_MARK)
            close = headers.get("connection", "").lower() == "close"
            if request_line.startswith("GET "):
                # The suppression lists (bounces, blocks, ...): empty, one page.
                status, extra, reply = b"200 OK", b"Content-Type: application/json\r\n", b"[]"
            else:
                stats.seen(recipients, len(body))
                message_id = f"X-Message-Id: bench-{stats.requests}\r\n".encode()
                status, extra, reply = b"202 Accepted", message_id, b""
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\n"
                + f"Content-Length: {len(reply)}\r\n".encode()
                + extra
                + (b"Connection: close\r\n" if close else b"")
                + b"\r\n"
                + reply
            )
            await writer.drain()
            if close:
                return
    finally:
        writer.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    """One request: its request line, headers (by lower-case name) and body; None once the
    client has closed the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        size = int(headers.get("content-length", "0"))
        body = await reader.readexactly(size) if size else b""
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return lines[0], headers, body


async def _http(parse: bool) -> Stats:
    stats = Stats()
    server = await asyncio.start_server(
        lambda r, w: _serve_http_client(r, w, stats, parse), "127.0.0.1", 0, limit=2**16
    )
    await run_until_terminated(server.sockets[0].getsockname()[1])
    server.close()
    return stats


# --- SMTP ----------------------------------------------------------------------------------


class PipeliningHandler:
    """An aiosmtpd handler that offers PIPELINING, as the sender's fast path needs."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        # aiosmtpd reads commands from a stream, so pipelined ones work; it just never says so.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


class _CountingHandler(PipeliningHandler):
    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.stats.seen(len(envelope.rcpt_tos), len(envelope.original_content or b""))
        return "250 OK"


def bulk_data_smtp() -> type:
    """aiosmtpd's server, reading a message's data in one piece instead of line by line.

    Stock aiosmtpd awaits every line of DATA (500 lines in a 39 KB message): that, not
    the sender, was the limit of the benchmark. Here the data is read up to the
    terminating dot at once and un-stuffed with one replace; the rest of the protocol is
    aiosmtpd's own. The stream's line limit is raised to the largest message it takes.
    """
    from aiosmtpd.smtp import SMTP, syntax

    class BulkDataSMTP(SMTP):  # type: ignore[misc]
        line_length_limit = 2**22

        @syntax("DATA")
        async def smtp_DATA(self, arg: str) -> None:
            if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
                return
            if not self.envelope.rcpt_tos:
                await self.push("503 Error: need RCPT command")
                return
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            data = await self._read_data()
            self.envelope.content = self.envelope.original_content = data
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push(status)

        async def _read_data(self) -> bytes:
            """Up to the line that is a lone dot, un-stuffed (RFC 5321 4.5.2)."""
            reader = self._reader
            data = await reader.readexactly(3)  # the shortest data is the end line alone
            if data == b".\r\n":
                return b""
            if b"\n" in data or data.endswith(b"\r"):
                # A first line of at most one character: the end may overlap what was read,
                # so go on line by line until the data ends with a lone dot line.
                while not (b"\r\n" + data).endswith(b"\r\n.\r\n"):
                    data += await reader.readuntil(b"\r\n")
            else:
                data += await reader.readuntil(b"\r\n.\r\n")
            data = data[:-3]
            if data.startswith(b"."):
                data = data[1:]
            return data.replace(b"\r\n..", b"\r\n.") if b"\r\n.." in data else data

    return BulkDataSMTP


async def _smtp() -> Stats:
    stats = Stats()
    handler = _CountingHandler(stats)
    loop = asyncio.get_running_loop()
    server_class = bulk_data_smtp()

    def factory() -> Any:
        stats.connections += 1
        return server_class(handler, hostname="sink.localhost", data_size_limit=0)

    server = await loop.create_server(factory, "127.0.0.1", 0)
    await run_until_terminated(server.sockets[0].getsockname()[1])
    server.close()
    return stats


async def run_until_terminated(port: int) -> None:
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, done.set)
    print(f"READY {port}", flush=True)
    await done.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["http", "smtp"])
    parser.add_argument("--parse", action="store_true", help="parse each JSON body (slower)")
    args = parser.parse_args()
    stats = asyncio.run(_http(args.parse) if args.kind == "http" else _smtp())
    print(json.dumps(stats.as_dict()), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
