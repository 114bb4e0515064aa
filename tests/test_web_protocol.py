"""Answers leave in one write: what the server's transport is asked to send, and real HTTP
through it (keep-alive, pipelining, a body larger than what is held)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from newsletter.web.protocol import FLUSH_AT, JoinedWrites
from newsletter.web.server import LoopbackServer


class RecordingTransport(asyncio.Transport):
    """A transport that keeps what it is given: the system's side of ``JoinedWrites``."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed_after: int | None = None

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed_after = len(self.writes)

    def is_closing(self) -> bool:
        return self.closed_after is not None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def test_writes_of_one_loop_turn_reach_the_transport_as_one() -> None:
    async def scenario() -> list[bytes]:
        raw = RecordingTransport()
        joined = JoinedWrites(raw, asyncio.get_running_loop())
        joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        joined.write(b"ok")
        assert raw.writes == []  # held until the turn ends
        await asyncio.sleep(0)
        joined.write(b"next")
        await asyncio.sleep(0)
        return raw.writes

    assert asyncio.run(scenario()) == [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        b"next",
    ]


def test_close_writes_what_is_held_first_and_nothing_after() -> None:
    async def scenario() -> RecordingTransport:
        raw = RecordingTransport()
        joined = JoinedWrites(raw, asyncio.get_running_loop())
        joined.write(b"last answer")
        joined.close()
        joined.write(b"too late")
        await asyncio.sleep(0)
        return raw

    raw = asyncio.run(scenario())
    assert raw.writes == [b"last answer"]
    assert raw.closed_after == 1
    assert raw.get_extra_info("peername") == ("127.0.0.1", 1)


def test_a_large_body_is_written_as_it_comes_not_gathered_whole() -> None:
    async def scenario() -> list[int]:
        raw = RecordingTransport()
        joined = JoinedWrites(raw, asyncio.get_running_loop())
        for _ in range(5):
            joined.write(b"x" * (FLUSH_AT // 2))
        sizes = [len(data) for data in raw.writes]
        await asyncio.sleep(0)
        return sizes + [len(data) for data in raw.writes[len(sizes) :]]

    assert asyncio.run(scenario()) == [FLUSH_AT, FLUSH_AT, FLUSH_AT // 2]


BIG = b"0123456789abcdef" * (FLUSH_AT // 4)


async def small(request: Request) -> Response:
    return PlainTextResponse(f"answer to {request.query_params.get('n', '')}")


async def big(request: Request) -> Response:
    return Response(BIG, media_type="application/octet-stream")


def test_http_through_the_server_keep_alive_pipelined_and_large() -> None:
    app = Starlette(routes=[Route("/small", small), Route("/big", big)])
    with LoopbackServer(app) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            answers = [client.get("/small", params={"n": n}).text for n in range(3)]
            large = client.get("/big")
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            sock.sendall(
                b"GET /small?n=a HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /small?n=b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            received = b""
            while chunk := sock.recv(65536):
                received += chunk

    assert answers == ["answer to 0", "answer to 1", "answer to 2"]
    assert large.content == BIG
    assert received.count(b"HTTP/1.1 200 OK") == 2
    assert received.index(b"answer to a") < received.index(b"answer to b")
    assert received.endswith(b"answer to b")
