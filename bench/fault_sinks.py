"""Loopback sinks that record every recipient they accept and inject faults, one process each.

    python bench/fault_sinks.py sendgrid --record FILE [--faults SPEC] [--seed N]
    python bench/fault_sinks.py smtp --record FILE [--faults SPEC] [--seed N]

``sendgrid`` is a Mail Send endpoint (HTTP/1.1 with keep-alive: ``POST /v3/mail/send``
answered 202 with an ``X-Message-Id``, suppression-list ``GET`` requests answered ``[]``);
``smtp`` is an aiosmtpd server offering PIPELINING. Each prints ``READY <port>`` once it
listens and, on SIGTERM, waits for the requests it is holding, then prints one JSON line:
requests, recipients recorded, the faults injected by kind and when (Unix time) each refused
address was refused.

The record file gets one address per line for every recipient of a request (SendGrid,
``personalizations[].to[].email``) or message (SMTP, each RCPT address) the sink took,
written and flushed before the sink answers. An address in the file was taken, whether or
not its answer reached the sender; an address twice in it was sent twice.

Fault spec: items separated by commas, each ``KIND=PROBABILITY``, ``refuse=ADDRESS`` or
``hang=SECONDS``, e.g. ``429=0.03,500=0.02,drop-after=0.02,refuse=reader17@example.org``.

  SendGrid, per request:
    429           429 with ``X-RateLimit-Reset`` one to two seconds ahead; nothing recorded
    500           500 in SendGrid's error format; nothing recorded
    drop-before   the request is read, the connection closed unanswered; nothing recorded
    drop-after    recorded, then the connection closed unanswered
    hang-before   no answer for ``hang`` seconds, then recorded (taken too late for the
                  sender to hear of it) and the connection closed
    hang-after    recorded, no answer for ``hang`` seconds, then the connection closed
  SMTP, per message:
    451-rcpt      451 to the RCPT; nothing recorded
    451-data      451 after the data; nothing recorded
    drop-before   the connection closed once the data has arrived; nothing recorded
    drop-after    recorded, then the connection closed without the 250
    hang-after    recorded, no answer for ``hang`` seconds, then the connection closed
  Both:
    refuse=ADDRESS  always refused (repeat the item for several addresses): SendGrid
                  answers the whole request 400 ``Does not contain a valid address.`` with
                  the field ``personalizations.N.to.0.email``; SMTP answers 550 to its RCPT
    hang=SECONDS  how long a hang lasts (default 3): longer than the sender's timeout

One draw per request or message picks at most one fault, the probabilities taken in turn,
so they must add up to 1 at most. A draw depends only on ``--seed``, the request's first
address (a message's recipient) and how often that address has been drawn for before, so
the same requests meet the same faults whatever the timing and the order of connections,
and a retried request gets a draw of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from sinks import PipeliningHandler, bulk_data_smtp, read_request, run_until_terminated

SENDGRID_FAULTS = ("429", "500", "drop-before", "drop-after", "hang-before", "hang-after")
SMTP_FAULTS = ("451-rcpt", "451-data", "drop-before", "drop-after", "hang-after")
DEFAULT_HANG_S = 3.0


@dataclass(frozen=True)
class FaultSpec:
    odds: dict[str, float] = field(default_factory=dict)
    """Probability per request of each fault, in the order given."""
    refuse: frozenset[str] = frozenset()
    """Addresses always refused, in lower case."""
    hang_s: float = DEFAULT_HANG_S

    @classmethod
    def parse(cls, text: str, kinds: tuple[str, ...]) -> FaultSpec:
        """The spec described in the module's docstring; ValueError names every mistake."""
        odds: dict[str, float] = {}
        refuse: set[str] = set()
        hang_s = DEFAULT_HANG_S
        problems = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, _, value = item.partition("=")
            name, value = name.strip(), value.strip()
            try:
                if name == "refuse" and "@" in value:
                    refuse.add(value.lower())
                elif name == "hang":
                    hang_s = float(value)
                elif name in kinds:
                    odds[name] = float(value)
                    if not 0.0 <= odds[name] <= 1.0:
                        problems.append(f"{item}: a probability is between 0 and 1")
                else:
                    problems.append(
                        f"{item}: expected KIND=PROBABILITY (KIND one of {', '.join(kinds)}), "
                        "refuse=ADDRESS or hang=SECONDS"
                    )
            except ValueError:
                problems.append(f"{item}: {value!r} is not a number")
        if sum(odds.values()) > 1.0:
            problems.append(f"the probabilities add up to {sum(odds.values()):g}, more than 1")
        if problems:
            raise ValueError("; ".join(problems))
        return cls(odds, frozenset(refuse), hang_s)


class Faults:
    """Which fault, if any, each request meets; and how many of each were injected."""

    def __init__(self, spec: FaultSpec, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        self.draws: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.refusals: dict[str, list[float]] = {}

    def draw(self, key: str) -> str | None:
        occurrence = self.draws[key]
        self.draws[key] += 1
        # Seeded by a string: random hashes it with SHA-512, the same in every process.
        chance = random.Random(f"{self.seed}:{key}:{occurrence}").random()
        for kind, odds in self.spec.odds.items():
            if chance < odds:
                self.injected[kind] += 1
                return kind
            chance -= odds
        return None

    def refused(self, address: str) -> bool:
        """Whether to refuse this address; a refusal is counted with its time."""
        if address.lower() not in self.spec.refuse:
            return False
        self.injected["refuse"] += 1
        self.refusals.setdefault(address.lower(), []).append(round(time.time(), 3))
        return True


class Recorder:
    """The record file: each address taken, flushed before the sender hears it was taken."""

    def __init__(self, path: Path) -> None:
        self.file: IO[str] = path.open("a", encoding="utf-8")
        self.recipients = 0
        self.busy = 0
        """Requests being held (hangs), so a stop can wait for what they will record."""

    def record(self, addresses: list[str]) -> None:
        self.file.write("".join(f"{address}\n" for address in addresses))
        self.file.flush()
        self.recipients += len(addresses)

    async def hold(self, seconds: float) -> None:
        self.busy += 1
        try:
            await asyncio.sleep(seconds)
        finally:
            self.busy -= 1

    async def settle(self, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while self.busy and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


@dataclass
class Answer:
    status: bytes
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


_EMPTY_LIST = Answer(b"200 OK", b"[]", {"Content-Type": "application/json"})


def _error(status: bytes, message: str, field_name: str | None = None) -> Answer:
    body = orjson.dumps({"errors": [{"message": message, "field": field_name}]})
    return Answer(status, body, {"Content-Type": "application/json"})


# --- SendGrid ----------------------------------------------------------------------------------


class SendGridSink:
    def __init__(self, faults: Faults, recorder: Recorder) -> None:
        self.faults = faults
        self.recorder = recorder
        self.requests = 0
        self.connections = 0
        self.open: set[asyncio.StreamWriter] = set()

    async def take(self, body: bytes) -> Answer | None:
        """The answer to one Mail Send request, or None to close the connection unanswered."""
        self.requests += 1
        personalizations = orjson.loads(body)["personalizations"]
        addresses = [to["email"] for each in personalizations for to in each.get("to", ())]
        refusals = [
            {
                "message": "Does not contain a valid address.",
                "field": f"personalizations.{index}.to.{position}.email",
            }
            for index, each in enumerate(personalizations)
            for position, to in enumerate(each.get("to", ()))
            if self.faults.refused(to["email"])
        ]
        if refusals:
            body = orjson.dumps({"errors": refusals})
            return Answer(b"400 Bad Request", body, {"Content-Type": "application/json"})
        fault = self.faults.draw(addresses[0] if addresses else "")
        hang_s = self.faults.spec.hang_s
        if fault == "429":
            answer = _error(b"429 Too Many Requests", "too many requests")
            answer.headers |= {
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time()) + 2),
            }
            return answer
        if fault == "500":
            return _error(b"500 Internal Server Error", "Internal server error")
        if fault == "drop-before":
            return None
        if fault == "hang-before":
            await self.recorder.hold(hang_s)
        self.recorder.record(addresses)
        if fault == "hang-after":
            await self.recorder.hold(hang_s)
        if fault is not None:
            return None
        return Answer(b"202 Accepted", headers={"X-Message-Id": uuid.uuid4().hex[:22]})

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """HTTP/1.1 with keep-alive: enough of the protocol for http.client and urllib."""
        self.connections += 1
        self.open.add(writer)
        try:
            while request := await read_request(reader):
                request_line, headers, body = request
                method, _, target = request_line.partition(" ")
                path = target.partition(" ")[0].partition("?")[0]
                if method == "GET":
                    answer: Answer | None = _EMPTY_LIST
                elif path.endswith("/v3/mail/send"):
                    answer = await self.take(body)
                else:
                    answer = _error(b"404 Not Found", "not found")
                if answer is None:
                    return
                close = headers.get("connection", "").lower() == "close"
                extra = "".join(f"{name}: {value}\r\n" for name, value in answer.headers.items())
                writer.write(
                    b"HTTP/1.1 "
                    + answer.status
                    + f"\r\nContent-Length: {len(answer.body)}\r\n{extra}".encode()
                    + (b"Connection: close\r\n" if close else b"")
                    + b"\r\n"
                    + answer.body
                )
                await writer.drain()
                if close:
                    return
        except ConnectionError:
            return
        finally:
            self.open.discard(writer)
            writer.close()

    async def close_all(self) -> None:
        """End the kept-alive connections, so their handlers return before the loop stops."""
        for writer in list(self.open):
            writer.close()
        await asyncio.sleep(0.05)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "connections": self.connections}


async def _sendgrid(faults: Faults, recorder: Recorder) -> dict[str, Any]:
    sink = SendGridSink(faults, recorder)
    server = await asyncio.start_server(sink.serve, "127.0.0.1", 0, limit=2**16)
    await run_until_terminated(server.sockets[0].getsockname()[1])
    server.close()
    await recorder.settle(faults.spec.hang_s + 2)
    await sink.close_all()
    return sink.as_dict()


# --- SMTP --------------------------------------------------------------------------------------

DROP = "000 close the connection without an answer"
"""What the handler returns for a message whose connection is closed unanswered."""


class _FaultHandler(PipeliningHandler):
    def __init__(self, faults: Faults, recorder: Recorder) -> None:
        self.faults = faults
        self.recorder = recorder
        self.messages = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.faults.refused(address):
            return "550 5.1.1 No such user here"
        # The message's one draw, kept on its envelope for the DATA that follows.
        envelope.fault = self.faults.draw(address)
        if envelope.fault == "451-rcpt":
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        fault = getattr(envelope, "fault", None)
        if fault == "451-data":
            return "451 4.3.0 Try again later"
        if fault == "drop-before":
            return DROP
        self.recorder.record(list(envelope.rcpt_tos))
        if fault == "hang-after":
            await self.recorder.hold(self.faults.spec.hang_s)
        return DROP if fault is not None else "250 OK"


def _fault_smtp() -> type:
    class FaultSMTP(bulk_data_smtp()):  # type: ignore[misc]
        async def push(self, status: Any) -> None:
            if status == DROP:
                self.transport.close()
                return
            await super().push(status)

    return FaultSMTP


async def _smtp(faults: Faults, recorder: Recorder) -> dict[str, Any]:
    handler = _FaultHandler(faults, recorder)
    server_class = _fault_smtp()
    connections = 0

    def factory() -> Any:
        nonlocal connections
        connections += 1
        return server_class(handler, hostname="sink.localhost", data_size_limit=0)

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    await run_until_terminated(server.sockets[0].getsockname()[1])
    server.close()
    await recorder.settle(faults.spec.hang_s + 2)
    return {"messages": handler.messages, "connections": connections}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["sendgrid", "smtp"])
    parser.add_argument("--record", type=Path, required=True, help="file of addresses taken")
    parser.add_argument("--faults", default="", help="fault spec (see the module docstring)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    args = parser.parse_args()
    kinds = SENDGRID_FAULTS if args.kind == "sendgrid" else SMTP_FAULTS
    try:
        spec = FaultSpec.parse(args.faults, kinds)
    except ValueError as exc:
        parser.error(f"--faults: {exc}")
    faults = Faults(spec, args.seed)
    recorder = Recorder(args.record)
    serve = _sendgrid if args.kind == "sendgrid" else _smtp
    stats = asyncio.run(serve(faults, recorder))
    stats |= {
        "recorded": recorder.recipients,
        "faults": dict(sorted(faults.injected.items())),
        "refusals": faults.refusals,
    }
    print(json.dumps(stats), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
