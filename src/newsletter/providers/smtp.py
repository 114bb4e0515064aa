"""Delivery through any SMTP server, over several reused connections at once.

A connection is opened once per worker and kept for the whole send (EHLO, TLS and AUTH
cost more than a message); each worker owns one connection, so no locking is needed
around smtplib. A recipient the server refuses (5xx) fails alone and the send goes on; a
refused login stops everything, and a temporary reply (4xx) or a lost connection marks
the batch for a later retry.
"""

from __future__ import annotations

import queue
import smtplib
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..config import SmtpSettings, resolve_secret
from ..errors import (
    AuthenticationError,
    NewsletterError,
    ProviderError,
    TransientProviderError,
)
from ..message import PreparedIssue
from ..models import DeliveryResult, Recipient
from .base import Checked, Provider


@dataclass(frozen=True)
class _Work:
    prepared: PreparedIssue
    chunks: tuple[Checked, ...]
    domain: str


@dataclass
class _ChunkOutcome:
    results: list[DeliveryResult]
    deferred: list[str]
    """'address: reply' for each recipient the server asked to try again later."""


class SmtpProvider(Provider):
    name = "smtp"
    max_batch_size = 100

    def __init__(self, settings: SmtpSettings, *, message_id_domain: str | None = None) -> None:
        super().__init__(message_id_domain=message_id_domain)
        self.settings = settings
        self.where = f"smtp {settings.host}:{settings.port}"
        self._password: str | None = None
        self._idle: queue.SimpleQueue[smtplib.SMTP] = queue.SimpleQueue()
        self._executor: ThreadPoolExecutor | None = None

    def open(self) -> None:
        if self._opened:
            return
        if self.settings.username:
            self._password = resolve_secret(self.settings.password, field="provider.smtp.password")
        # One connection now, so a wrong host or a refused login shows before any send.
        self._idle.put(self._connect())
        self._executor = ThreadPoolExecutor(self.settings.connections, thread_name_prefix="smtp")
        super().open()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        while True:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                break
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()
        super().close()

    # --- hooks ---------------------------------------------------------------------------

    def build_payload(self, prepared: PreparedIssue, checked: Checked) -> _Work:
        workers = min(self.settings.connections, len(checked))
        chunks = tuple(checked[start::workers] for start in range(workers))
        return _Work(prepared, chunks, self.domain_for(prepared.issue))

    def post(self, payload: _Work) -> list[DeliveryResult]:
        assert self._executor is not None
        futures = [
            self._executor.submit(self._deliver_chunk, payload, chunk) for chunk in payload.chunks
        ]
        outcomes, fatal = [], None
        for future in futures:  # wait for every worker before raising: none is left sending
            try:
                outcomes.append(future.result())
            except ProviderError as exc:
                fatal = fatal or exc
        if fatal is not None:
            raise fatal
        results = [result for outcome in outcomes for result in outcome.results]
        deferred = [item for outcome in outcomes for item in outcome.deferred]
        if deferred:
            error = TransientProviderError(
                f"{self.where}: {len(deferred)} recipient(s) deferred by the server, "
                f"e.g. {deferred[0]}; retry them later",
            )
            error.results = results  # the others went out
            raise error
        return results

    def parse_results(self, payload: _Work, reply: list[DeliveryResult]) -> list[DeliveryResult]:
        return reply

    # --- one worker ----------------------------------------------------------------------

    def _deliver_chunk(self, work: _Work, chunk: Checked) -> _ChunkOutcome:
        outcome = _ChunkOutcome([], [])
        connection = self._acquire()
        envelope_from = f"MAIL FROM:<{work.prepared.issue.from_address}>\r\n".encode()
        try:
            for recipient, values in chunk:
                try:
                    data = work.prepared.render_for_smtp(
                        recipient, values, message_id_domain=work.domain
                    )
                    commands = (envelope_from, f"RCPT TO:<{recipient.email}>\r\n".encode())
                except (NewsletterError, UnicodeEncodeError) as exc:
                    # Only this recipient's data is unusable (an address we cannot write).
                    error = str(exc)
                    outcome.results.append(
                        DeliveryResult(recipient.subscriber_id, ok=False, error=error)
                    )
                    continue
                connection = self._deliver_one(connection, work, recipient, commands, data, outcome)
        finally:
            if connection.sock is not None:  # closed ones are not worth keeping
                self._idle.put(connection)
        return outcome

    def _deliver_one(
        self,
        connection: smtplib.SMTP,
        work: _Work,
        recipient: Recipient,
        commands: tuple[bytes, bytes],
        data: bytes,
        outcome: _ChunkOutcome,
    ) -> smtplib.SMTP:
        for attempt in (1, 2):
            try:
                refusal = _transaction(connection, commands, data)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                connection.close()
                if attempt == 2:
                    raise TransientProviderError(
                        f"{self.where}: the connection dropped twice while sending to "
                        f"{recipient.email}: {exc}"
                    ) from exc
                connection = self._connect()
                continue
            if refusal is None:
                outcome.results.append(DeliveryResult(recipient.subscriber_id, ok=True))
            else:
                self._refused(outcome, recipient, work.prepared.issue.from_address, *refusal)
            break
        return connection

    def _refused(
        self,
        outcome: _ChunkOutcome,
        recipient: Recipient,
        sender: str,
        step: str,
        code: int,
        reply: bytes,
    ) -> None:
        """A refusal of one message: the recipient's alone, unless the sender is refused."""
        if step == "MAIL" and code == 530:
            # RFC 3207 and 4954: the server wants TLS or a login before any mail.
            raise AuthenticationError(
                f"{self.where}: the server takes mail only after STARTTLS or a login: "
                f"530 {_text(reply)}",
                status=530,
                body=_text(reply),
                hint="set provider.smtp.security to starttls (or ssl), and "
                "provider.smtp.username and password if the server wants a login",
            )
        if step == "MAIL" and code >= 500:
            raise ProviderError(
                f"{self.where}: the server refuses the sender {sender}: "
                f"{code} {_text(reply)}; check newsletter.sender",
                status=code,
                body=_text(reply),
            )
        text = f"{code} {_text(reply)}"
        if 400 <= code < 500:
            outcome.deferred.append(f"{recipient.email}: {text}")
        else:
            outcome.results.append(DeliveryResult(recipient.subscriber_id, ok=False, error=text))

    def _acquire(self) -> smtplib.SMTP:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self._connect()

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        try:
            return self._dial()
        except ProviderError:  # already explained; AuthenticationError is an OSError too
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise AuthenticationError(
                f"{self.where}: the server refused the login of {settings.username!r}: "
                f"{exc.smtp_code} {_text(exc.smtp_error)}",
                status=exc.smtp_code,
                body=_text(exc.smtp_error),
                hint="check provider.smtp.username and the password's environment variable",
            ) from exc
        except smtplib.SMTPResponseException as exc:
            kind = TransientProviderError if exc.smtp_code < 500 else ProviderError
            raise kind(
                f"{self.where}: the server refused the connection: "
                f"{exc.smtp_code} {_text(exc.smtp_error)}",
                status=exc.smtp_code,
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            # Retrying cannot help: the certificate stays what it is until someone acts.
            raise ProviderError(
                f"{self.where}: the server's TLS certificate failed verification: "
                f"{exc.verify_message}",
                hint=f"the certificate must name {settings.host} and be signed by a trusted CA; "
                "for a private CA, set SSL_CERT_FILE to a bundle holding its certificate",
            ) from exc
        except ssl.SSLError as exc:
            if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
                raise TransientProviderError(f"{self.where}: cannot connect: {exc}") from exc
            problem = (
                "the server answered in plain text, not TLS"
                if exc.reason == "WRONG_VERSION_NUMBER"
                else exc.reason or str(exc)
            )
            raise ProviderError(
                f"{self.where}: the TLS handshake failed: {problem}", hint=_SECURITY_HINT
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientProviderError(f"{self.where}: cannot connect: {exc}") from exc

    def _dial(self) -> smtplib.SMTP:
        """An open, greeted, encrypted as configured and logged-in connection."""
        settings = self.settings
        local = socket.gethostname()  # getfqdn() may wait on DNS for every connection
        connection: smtplib.SMTP
        if settings.security == "ssl":
            connection = smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                local_hostname=local,
                timeout=settings.timeout,
                context=ssl.create_default_context(),
            )
        else:
            connection = smtplib.SMTP(
                settings.host, settings.port, local_hostname=local, timeout=settings.timeout
            )
        try:
            connection.ehlo()
            if settings.security == "starttls":
                if not connection.has_extn("starttls"):
                    raise ProviderError(
                        f"{self.where}: the server does not offer STARTTLS",
                        hint=_SECURITY_HINT,
                    )
                connection.starttls(context=ssl.create_default_context())
                connection.ehlo()
            if settings.username:
                if not connection.has_extn("auth"):
                    raise self._no_auth(connection)
                connection.login(settings.username, self._password or "")
        except BaseException:
            connection.close()
            raise
        return connection

    def _no_auth(self, connection: smtplib.SMTP) -> ProviderError:
        if self.settings.security == "none" and connection.has_extn("starttls"):
            return AuthenticationError(
                f"{self.where}: the server offers AUTH only after STARTTLS, and "
                "provider.smtp.security is none",
                hint="set provider.smtp.security to starttls so the password travels encrypted",
            )
        return ProviderError(
            f"{self.where}: the server does not offer AUTH",
            hint="remove provider.smtp.username if the server takes mail without a login, "
            "or check provider.smtp.security and port",
        )


def _transaction(
    connection: smtplib.SMTP, commands: tuple[bytes, bytes], data: bytes
) -> tuple[str, int, bytes] | None:
    """One message: MAIL, RCPT, DATA, then the dot-stuffed ``data``.

    With PIPELINING (RFC 2920) the three commands go out in one write and their replies
    are read together, one round trip instead of three; without it, lock-step. Returns
    None when the server took the message, else the step it refused and its reply.
    """
    steps = ("MAIL", "RCPT", "DATA")
    if connection.has_extn("pipelining"):
        connection.send(b"".join(commands) + b"DATA\r\n")
        replies = [connection.getreply() for _ in steps]
    else:
        replies = []
        for command in (*commands, b"DATA\r\n"):
            connection.send(command)
            replies.append(connection.getreply())
            if replies[-1][0] >= 400:
                break
    refusal = next(
        (
            (step, code, text)
            for step, (code, text) in zip(steps, replies, strict=False)
            if code >= 400
        ),
        None,
    )
    if refusal is None:
        if replies[-1][0] != 354:
            return ("DATA", *replies[-1])
        connection.send(data)
        code, text = connection.getreply()
        return None if code == 250 else ("DATA", code, text)
    if len(replies) == 3 and replies[2][0] == 354:
        # A server that said yes to DATA after refusing the recipient: an empty message
        # ends the transaction, and the RSET below throws it away.
        connection.send(b".\r\n")
        connection.getreply()
    if refusal[0] != "MAIL" or len(replies) > 1:
        connection.rset()
    return refusal


_SECURITY_HINT = (
    "check provider.smtp.security and port: ssl for TLS from the first byte (usually port "
    "465), starttls for a plain connection that upgrades (usually port 587)"
)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
