"""A SendGrid-compatible Mail Send endpoint on loopback, scripted reply by reply.

The official client is pointed at it with ``host=fake.url``; every request is recorded
(headers and parsed JSON body) so tests can check what SendGrid would have received, and
``validate_against_schema`` checks a body against SendGrid's own API description.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Self

import pytest

from servers.loopback import LoopbackHTTP
from servers.sendgrid_schema import SCHEMA_DIR, comparable

SCHEMA_FILE = SCHEMA_DIR / "tsg_mail_v3.json"
_SCHEMA_URI = "urn:sendgrid:tsg_mail_v3"


@dataclass(frozen=True)
class Reply:
    """One scripted answer; the default is SendGrid's 202 Accepted."""

    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    """Seconds to wait before answering: longer than the client's timeout makes it time out."""
    drop: bool = False
    """Close the connection without any answer."""
    hold: threading.Event | None = None
    """Answer only once the test sets this: a request kept in flight until then, however
    slowly the test itself runs."""


def error_reply(status: int, message: str, field_name: str | None = None) -> Reply:
    """A reply in SendGrid's error format."""
    return Reply(status=status, body={"errors": [{"message": message, "field": field_name}]})


def rate_limited(reset_in: float) -> Reply:
    reset = int(time.time() + reset_in)
    return Reply(
        status=429,
        headers={
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset),
        },
        body={"errors": [{"message": "too many requests", "field": None}]},
    )


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


class FakeSendGrid:
    def __init__(self, api_key: str = "SG.test-key") -> None:
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.statuses: list[int] = []
        """The status given to each recorded request (also when its answer came too late
        for the client), 0 when the connection was dropped without one."""
        self.replies: deque[Reply] = deque()
        self._stop = threading.Event()
        self._server = LoopbackHTTP(handler_for(self))

    @property
    def url(self) -> str:
        return self._server.url

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, then with 202 again."""
        self.replies.extend(replies)

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._server.stop()

    def next_reply(self) -> Reply:
        return self.replies.popleft() if self.replies else Reply()

    def wait(self, seconds: float) -> None:
        self._stop.wait(seconds)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()


def handler_for(fake: FakeSendGrid) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path != "/v3/mail/send":
                self._answer(404, {}, {"errors": [{"message": "not found", "field": None}]})
                return
            if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                self._answer(
                    401,
                    {},
                    {
                        "errors": [
                            {
                                "message": "The provided authorization grant is invalid, "
                                "expired, or revoked",
                                "field": None,
                            }
                        ]
                    },
                )
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._answer(400, {}, {"errors": [{"message": "Bad Request", "field": None}]})
                return
            fake.requests.append(Recorded(self.path, dict(self.headers.items()), body))
            reply = fake.next_reply()
            fake.statuses.append(0 if reply.drop else reply.status)
            if reply.delay:
                fake.wait(reply.delay)
            while reply.hold is not None and not reply.hold.wait(0.05) and not fake.stopped:
                pass
            if reply.drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            headers = dict(reply.headers)
            if reply.status == 202:
                headers.setdefault("X-Message-Id", uuid.uuid4().hex[:22])
            self._answer(reply.status, headers, reply.body)

        def _answer(self, status: int, headers: dict[str, str], body: Any) -> None:
            data = b"" if body is None else json.dumps(body).encode("utf-8")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry = Registry().with_resource(_SCHEMA_URI, resource)
    schema = {
        "$ref": f"{_SCHEMA_URI}#/components/requestBodies/PostMailSend/content/"
        "application~1json/schema"
    }
    return Draft202012Validator(
        schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def validate_against_schema(body: Any) -> None:
    """Fail the test if SendGrid's API description rejects this request body (left out, and
    said once in the run's summary, when the description is missing)."""
    if not comparable(SCHEMA_FILE):
        return
    errors = sorted(_validator().iter_errors(body), key=lambda error: list(error.path))
    if errors:
        shown = "\n".join(
            f"  {'/'.join(map(str, error.path)) or '(root)'}: {error.message[:200]}"
            for error in errors[:10]
        )
        pytest.fail(f"request body does not satisfy SendGrid's schema:\n{shown}")
