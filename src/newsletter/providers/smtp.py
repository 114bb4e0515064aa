"""Delivery through any SMTP server: one connection per worker, kept for the whole send.

EHLO, TLS and AUTH cost more than a message, so each instance opens one connection and
reuses it for every batch it delivers; the send loop runs several instances at once
(``connections``). Each message is its own SMTP transaction, so each recipient gets their
own outcome: 250 after the final "." is accepted; 5xx at RCPT or after the data is a
refusal of that recipient alone; 4xx is "not delivered, try again later"; a connection
lost before the final "." was written means not delivered, and lost after it, unknown
(the server may have taken the message). A refused login or sender stops the send.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import SmtpSettings, resolve_secret
from ..errors import AuthenticationError, NewsletterError, ProviderError, TransientProviderError
from ..message import PreparedIssue
from ..send_models import Delivery, Outcome, Recipient, RecipientRow
from .base import Provider, failure


@dataclass(frozen=True)
class _Work:
    issue: PreparedIssue
    rows: Sequence[RecipientRow]
    domain: str


class _Lost(Exception):
    """The connection failed in the middle of a message; ``written`` says whether the final
    "." had gone out."""

    def __init__(self, cause: BaseException, *, written: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.written = written


class SmtpProvider(Provider):
    name = "smtp"

    def __init__(self, settings: SmtpSettings, *, message_id_domain: str | None = None) -> None:
        super().__init__(message_id_domain=message_id_domain)
        self.settings = settings
        self.max_batch_size = settings.batch_size
        self.workers = settings.connections
        self.where = f"smtp {settings.host}:{settings.port}"
        self._password: str | None = None
        self._connection: smtplib.SMTP | None = None

    def open(self) -> None:
        """Resolve the password and connect, so a wrong host or a refused login shows
        before anything is sent."""
        if self._opened:
            return
        if self.settings.username:
            self._password = resolve_secret(self.settings.password, field="provider.smtp.password")
        self._connection = self._connect()
        super().open()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()
        super().close()

    # --- hooks ---------------------------------------------------------------------------

    def build_payload(self, issue: PreparedIssue, rows: Sequence[RecipientRow]) -> _Work:
        return _Work(issue, rows, self.domain_for(issue))

    def post(self, payload: _Work, subscriber_ids: Sequence[int]) -> Delivery:
        """Each message in turn on this instance's connection, reconnecting once it drops.

        A refused login or sender stops at once; what was not tried by then is not
        delivered. If the connection cannot be made again, the rest of the batch is not
        delivered either, and waits for a retry.
        """
        issue = payload.issue
        sender = f"MAIL FROM:<{issue.issue.from_address}>\r\n".encode()
        outcomes: dict[int, tuple[Outcome, str]] = {}
        halt: NewsletterError | None = None
        rows = list(payload.rows)
        for index, (sid, email, name, values, token) in enumerate(rows):
            recipient = Recipient(sid, email, name, values, issue.issue.unsubscribe_url(token))
            try:
                data = issue.render_for_smtp(
                    recipient, issue.values_for(recipient), message_id_domain=payload.domain
                )
                commands = (sender, f"RCPT TO:<{email}>\r\n".encode("ascii"))
            except (NewsletterError, UnicodeEncodeError) as exc:
                outcomes[sid] = (Outcome.REFUSED, _reason(exc))
                continue
            try:
                outcomes[sid] = self._one(commands, data, email, issue.issue.from_address)
            except ProviderError as exc:
                # The connection could not be made again, or the server refused us: the
                # rest of the batch has certainly not gone out.
                rest = [row[0] for row in rows[index:]]
                failed = failure(rest, exc)
                outcomes.update({rid: (failed.outcome, failed.reason) for rid in rest})
                halt = failed.halt
                break
        return _delivery(subscriber_ids, outcomes, halt)

    # --- one message -----------------------------------------------------------------------

    def _one(
        self, commands: tuple[bytes, bytes], data: bytes, email: str, sender: str
    ) -> tuple[Outcome, str]:
        connection = self._connection or self._reconnect()
        try:
            refusal = _transaction(connection, commands, data)
        except _Lost as lost:
            self._drop()
            if lost.written:
                return (
                    Outcome.UNKNOWN,
                    f"{self.where}: the connection was lost after the message to {email} "
                    f"was written, before the server answered: {lost}",
                )
            return (
                Outcome.NOT_DELIVERED,
                f"{self.where}: the connection was lost before the message to {email} "
                f"was written: {lost}",
            )
        if refusal is None:
            return (Outcome.ACCEPTED, "")
        step, code, reply = refusal
        text = f"{code} {_text(reply)}"
        if step == "MAIL" and code == 530:
            # RFC 3207 and 4954: the server wants TLS or a login before any mail.
            raise AuthenticationError(
                f"{self.where}: the server takes mail only after STARTTLS or a login: {text}",
                status=530,
                body=_text(reply),
                hint="set provider.smtp.security to starttls (or ssl), and "
                "provider.smtp.username and password if the server wants a login",
            )
        if step == "MAIL" and code >= 500:
            raise ProviderError(
                f"{self.where}: the server refuses the sender {sender}: {text}; "
                "check newsletter.sender",
                status=code,
                body=_text(reply),
            )
        if 400 <= code < 500:
            return (Outcome.NOT_DELIVERED, f"{step}: {text}")
        return (Outcome.REFUSED, f"{step}: {text}")

    def _reconnect(self) -> smtplib.SMTP:
        self._connection = self._connect()
        return self._connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

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
    Raises ``_Lost`` when the connection fails, saying whether the final "." had been
    written, which is what separates "not delivered" from "unknown".
    """
    steps = ("MAIL", "RCPT", "DATA")
    try:
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
        if refusal is None and replies[-1][0] != 354:
            refusal = ("DATA", *replies[-1])
        if refusal is not None:
            _end_refused(connection, refusal, replies)
            return refusal
        connection.send(data)
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException, OSError) as exc:
        raise _Lost(exc, written=False) from exc
    try:
        code, text = connection.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise _Lost(exc, written=True) from exc
    return None if code == 250 else ("DATA", code, text)


def _end_refused(
    connection: smtplib.SMTP, refusal: tuple[str, int, bytes], replies: list[tuple[int, bytes]]
) -> None:
    """Leave the connection ready for the next message after a refused one."""
    if len(replies) == 3 and replies[2][0] == 354:
        # A server that said yes to DATA after refusing the recipient: an empty message
        # ends the transaction, and the RSET below throws it away.
        connection.send(b".\r\n")
        connection.getreply()
    if refusal[0] != "MAIL" or len(replies) > 1:
        connection.rset()


def _delivery(
    ids: Sequence[int], outcomes: dict[int, tuple[Outcome, str]], halt: NewsletterError | None
) -> Delivery:
    """Per-recipient outcomes as a ``Delivery``: the most common one shared, the rest apart."""
    tally: dict[Outcome, int] = {}
    for outcome, _ in outcomes.values():
        tally[outcome] = tally.get(outcome, 0) + 1
    common = max(tally, key=lambda outcome: tally[outcome]) if tally else Outcome.ACCEPTED
    reasons = [reason for outcome, reason in outcomes.values() if outcome is common]
    exceptions = {sid: item for sid, item in outcomes.items() if item[0] is not common}
    reason = reasons[0] if common is not Outcome.ACCEPTED and reasons else ""
    if common is not Outcome.ACCEPTED:
        # Every recipient with the common outcome keeps their own reason.
        exceptions.update(
            {sid: item for sid, item in outcomes.items() if item[0] is common and item[1] != reason}
        )
    return Delivery(tuple(ids), common, reason, exceptions, halt=halt)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnicodeEncodeError):
        return "the address has characters an SMTP envelope cannot carry (non-ASCII)"
    return getattr(exc, "message", None) or str(exc)


_SECURITY_HINT = (
    "check provider.smtp.security and port: ssl for TLS from the first byte (usually port "
    "465), starttls for a plain connection that upgrades (usually port 587)"
)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
