"""SendGrid's suppression list endpoints on loopback, holding the entries a test seeds.

Answers GET for bounces, blocks, invalid e-mails, spam reports, global unsubscribes and an
ASM group's suppressions, honouring ``limit``, ``offset`` and ``start_time`` as SendGrid
does; checks the Bearer key; can be scripted to fail the next requests. Every answer it
gives is checked against SendGrid's own API description (``check_replies``), so the fake
cannot drift from what SendGrid really answers.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import pytest

from servers.loopback import LoopbackHTTP
from servers.sendgrid_schema import SCHEMA_DIR, comparable

SCHEMA_FILE = SCHEMA_DIR / "tsg_suppressions_v3.json"
_SCHEMA_URI = "urn:sendgrid:tsg_suppressions_v3"

LISTS = ("bounces", "blocks", "invalid_emails", "spam_reports", "unsubscribes")
AUTH_ERROR = "The provided authorization grant is invalid, expired, or revoked"


@dataclass(frozen=True)
class Failure:
    """A scripted error answer in SendGrid's error format."""

    status: int
    message: str = "something went wrong"
    path: str | None = None
    """Only for requests to this path, e.g. '/v3/suppression/bounces'; None: any path."""
    stall: float = 0.0
    """Seconds to wait before answering: longer than the client's timeout makes it time out."""


@dataclass(frozen=True)
class Served:
    """One answered request: what was asked and what the fake answered."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int
    body: Any


class FakeSuppressions:
    def __init__(self, api_key: str = "SG.test-key") -> None:
        self.api_key = api_key
        self.lists: dict[str, list[dict[str, Any]]] = {name: [] for name in LISTS}
        self.groups: dict[int, list[str]] = {}
        self.failures: deque[Failure] = deque()
        self.served: list[Served] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = LoopbackHTTP(handler_for(self))

    @property
    def url(self) -> str:
        return self._server.url

    def add(self, kind: str, email: str, created: int = 1_764_000_000, **extra: Any) -> None:
        """Seed one entry of a suppression list, with SendGrid's usual fields filled in."""
        entry: dict[str, Any] = {"created": created, "email": email}
        if kind == "bounces":
            entry |= {"reason": "550 5.1.1 User unknown", "status": "5.1.1"}
        elif kind in ("blocks", "invalid_emails"):
            entry["reason"] = "Mail domain mentioned in email address is unknown"
        elif kind == "spam_reports":
            entry["ip"] = "10.63.202.100"
        entry.update(extra)
        self.lists[kind].append(entry)

    def fail(self, *failures: Failure) -> None:
        """Answer the next requests with these errors, then normally again."""
        self.failures.extend(failures)

    def paths(self) -> list[str]:
        return [served.path for served in self.served]

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._server.stop()

    def answer(self, path: str, query: dict[str, str], authorization: str) -> tuple[int, Any]:
        with self._lock:
            failure = self._next_failure(path)
        if failure is not None and failure.stall:
            self._stopping.wait(failure.stall)
        with self._lock:
            if authorization != f"Bearer {self.api_key}":
                return 401, {"errors": [{"field": None, "message": AUTH_ERROR}]}
            if failure is not None:
                return failure.status, {"errors": [{"field": None, "message": failure.message}]}
            parts = path.strip("/").split("/")
            if parts[:2] == ["v3", "suppression"] and len(parts) == 3 and parts[2] in LISTS:
                return 200, self._page(self.lists[parts[2]], query)
            if (
                parts[:3] == ["v3", "asm", "groups"]
                and len(parts) == 5
                and parts[4] == "suppressions"
                and parts[3].isdigit()
            ):
                return 200, list(self.groups.get(int(parts[3]), []))
            return 404, {"errors": [{"field": None, "message": "resource not found"}]}

    def _next_failure(self, path: str) -> Failure | None:
        for failure in self.failures:
            if failure.path in (None, path):
                self.failures.remove(failure)
                return failure
        return None

    @staticmethod
    def _page(entries: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
        start = int(query.get("start_time", 0))
        chosen = [entry for entry in entries if entry["created"] >= start]
        offset = int(query.get("offset", 0))
        limit = int(query.get("limit", 500))
        return chosen[offset : offset + limit]


def handler_for(fake: FakeSuppressions) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            split = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(split.query).items()}
            status, body = fake.answer(split.path, query, self.headers.get("Authorization", ""))
            fake.served.append(Served(split.path, query, dict(self.headers.items()), status, body))
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@cache
def _document() -> dict[str, Any]:
    document = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    _allow_nullable(document)
    return document


def _allow_nullable(node: Any) -> None:
    """Read OpenAPI 3.0's ``nullable: true``, still used in this 3.1 file, as JSON Schema does.

    SendGrid answers ``"field": null`` in its errors, which its description means to allow.
    """
    if isinstance(node, dict):
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        for value in node.values():
            _allow_nullable(value)
    elif isinstance(node, list):
        for value in node:
            _allow_nullable(value)


@cache
def _validator(pointer: str) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resource = Resource.from_contents(_document(), default_specification=DRAFT202012)
    registry = Registry().with_resource(_SCHEMA_URI, resource)
    return Draft202012Validator(
        {"$ref": f"{_SCHEMA_URI}#{pointer}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _response_pointer(path: str, status: int) -> str | None:
    """Where SendGrid's description keeps the schema of this answer, if it describes one."""
    template = path
    parts = path.strip("/").split("/")
    if parts[:3] == ["v3", "asm", "groups"] and len(parts) == 5:
        template = "/v3/asm/groups/{group_id}/suppressions"
    responses = _document()["paths"].get(template, {}).get("get", {}).get("responses", {})
    if str(status) in responses:
        escaped = template.replace("~", "~0").replace("/", "~1")
        return f"/paths/{escaped}/get/responses/{status}/content/application~1json/schema"
    if status >= 400:
        return "/components/schemas/ErrorResponse"
    return None


def check_replies(fake: FakeSuppressions) -> None:
    """Fail the test if any answer the fake gave is not what SendGrid's description allows
    (left out, and said once in the run's summary, when the description is missing)."""
    if not comparable(SCHEMA_FILE):
        return
    problems = []
    for served in fake.served:
        pointer = _response_pointer(served.path, served.status)
        if pointer is None:
            problems.append(f"{served.path} {served.status}: no schema describes this answer")
            continue
        for error in _validator(pointer).iter_errors(served.body):
            where = "/".join(map(str, error.path)) or "(root)"
            problems.append(f"{served.path} {served.status} {where}: {error.message[:200]}")
    if problems:
        pytest.fail("answers do not satisfy SendGrid's schema:\n  " + "\n  ".join(problems[:10]))
