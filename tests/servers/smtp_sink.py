"""An SMTP server on loopback that keeps what it receives, for tests of the SMTP provider.

It can refuse chosen recipients (550, or 451 for a temporary refusal), require a login and
speak TLS (STARTTLS on a plain port, or TLS from the first byte as on port 465), so tests
see the replies a real server gives.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
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
    tls_version: str | None = None
    """'TLSv1.3' and the like when the message came over TLS, else None."""

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
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        data = envelope.original_content or b""
        peer = session.peer[1] if isinstance(session.peer, tuple) else 0
        tls = server.transport.get_extra_info("ssl_object") if server.transport else None
        received = Received(
            envelope.mail_from or "",
            tuple(envelope.rcpt_tos),
            data,
            peer,
            tls.version() if isinstance(tls, ssl.SSLObject) else None,
        )
        with self.sink.lock:
            self.sink.received.append(received)
        return "250 Message accepted for delivery"


class SmtpSink:
    """``with SmtpSink() as sink:`` then send to ``sink.host``:``sink.port``.

    ``tls_context`` offers STARTTLS and, like a submission server on port 587, refuses
    mail and AUTH until the client has started TLS. ``ssl_context`` speaks TLS from the
    first byte instead (port 465). Both are server-side contexts holding the certificate.
    """

    def __init__(
        self,
        *,
        refuse: set[str] | None = None,
        defer: set[str] | None = None,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        ssl_context: ssl.SSLContext | None = None,
        delay: float = 0.0,
    ) -> None:
        self.refuse = set(refuse or ())
        self.delay = delay
        """Seconds each message takes to be taken, so a send lasts long enough to be
        interrupted on purpose."""
        self.defer = set(defer or ())
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.host = "127.0.0.1"
        self.port = _free_port()
        options: dict[str, Any] = {}
        if username is not None:
            options = {
                "auth_required": True,
                # aiosmtpd counts only STARTTLS as TLS; a TLS-from-the-start port is as safe.
                "auth_require_tls": tls_context is not None,
                "authenticator": _authenticator(username, password or ""),
            }
        if tls_context is not None:
            options.update(tls_context=tls_context, require_starttls=True)
        self._controller = _QuietController(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            decode_data=False,
            ssl_context=ssl_context,
            **options,
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
