"""An SMTP server on loopback that keeps what it receives, for tests of the SMTP provider.

It can refuse chosen recipients (550, or 451 for a temporary refusal) and require a login,
so tests see the replies a real server gives.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import warnings
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


class _QuietController(Controller):
    def factory(self) -> SMTP:
        # Login without TLS is what a loopback test wants; aiosmtpd warns on every connection.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return super().factory()


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    peer_port: int
    """The client's port: messages from one connection share it."""

    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.sink.refuse:
            return "550 5.1.1 No such user here"
        if address in self.sink.defer:
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        peer = session.peer[1] if isinstance(session.peer, tuple) else 0
        received = Received(envelope.mail_from or "", tuple(envelope.rcpt_tos), data, peer)
        with self.sink.lock:
            self.sink.received.append(received)
        return "250 Message accepted for delivery"


class SmtpSink:
    """``with SmtpSink() as sink:`` then send to ``sink.host``:``sink.port``."""

    def __init__(
        self,
        *,
        refuse: set[str] | None = None,
        defer: set[str] | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.refuse = set(refuse or ())
        self.defer = set(defer or ())
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.host = "127.0.0.1"
        self.port = _free_port()
        options: dict[str, Any] = {}
        if username is not None:
            options = {
                "auth_required": True,
                "auth_require_tls": False,
                "authenticator": _authenticator(username, password or ""),
            }
        self._controller = _QuietController(
            _Handler(self), hostname=self.host, port=self.port, decode_data=False, **options
        )

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()

    def by_recipient(self) -> dict[str, Received]:
        with self.lock:
            return {address: item for item in self.received for address in item.rcpt_tos}


def _authenticator(username: str, password: str) -> Any:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == username
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)

    return check


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
