"""The fast SMTP path: bytes stuffed once per issue, and PIPELINING only when offered.

A small scripted server notes how the client's commands arrive (in one write, or each
after the previous reply), so the tests see what goes over the wire, not just that the
mail arrived; aiosmtpd checks the same messages the way a real server reads them.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from newsletter.config import SmtpSettings
from newsletter.errors import TransientProviderError
from newsletter.message import PreparedIssue
from newsletter.providers import SmtpProvider
from servers.samples import recipient, sample_issue
from servers.smtp_sink import SmtpSink, _Handler

DOMAIN = "leading-together.example.org"
LONG = "<td>" + "x" * 400 + "</td>"
"""Long enough that the line holding it is encoded in stretches around the placeholder."""
DOTTY_ISSUE = sample_issue(
    text=(
        "%%organisation|none%%\n"  # a value that starts a line
        ".\n"  # a line that is a lone dot would end DATA if it were not stuffed
        "..two dots\n"
        "Dear %%first_name|reader%%,\n"
    ),
    html="<p>\n%%organisation|none%%" + LONG + "%%organisation|none%%\n.</p>",
)


def _decoded_bodies(raw: bytes) -> tuple[str, str]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    text, html = (
        part.get_payload(decode=True).decode("utf-8").replace("\r\n", "\n")
        for part in (message.get_body(("plain",)), message.get_body(("html",)))
    )
    return text, html


def _expected(values: dict[str, str]) -> tuple[str, str]:
    _, html, text = PreparedIssue(DOTTY_ISSUE).personalise(values)
    return text, html


# --- dot-stuffing ---------------------------------------------------------------------------


def test_wire_bytes_are_the_message_dot_stuffed_and_terminated() -> None:
    prepared = PreparedIssue(DOTTY_ISSUE)
    person = recipient(1, "ann@example.com", "Ann", organisation=".Dot Council\n.hidden")
    values = prepared.values_for(person)
    wire = prepared.render_for_smtp(person, values, message_id_domain=DOMAIN)

    assert wire.endswith(b"\r\n.\r\n")
    lines = wire[: -len(b".\r\n")].split(b"\r\n")
    assert b"." not in lines  # no line that would end the data early
    assert all(not line.startswith(b".") or line.startswith(b"..") for line in lines)
    unstuffed = b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)
    plain = prepared.render(person, values, message_id_domain=DOMAIN)
    # Same message but for the per-message boundary, date and Message-ID.
    assert _decoded_bodies(unstuffed) == _decoded_bodies(plain) == _expected(values)


def test_values_that_start_lines_with_dots_arrive_intact_through_aiosmtpd() -> None:
    people = [
        recipient(1, "ann@example.com", "Ann", organisation=".Dot Council"),
        recipient(2, "bo@example.com", "Bo", organisation=".\n.."),
        recipient(3, "cy@example.com", "Cy"),
    ]
    with SmtpSink() as sink, SmtpProvider(_settings(sink.port)) as provider:
        results = provider.send(DOTTY_ISSUE, people)
    assert all(result.ok for result in results)
    received = sink.by_recipient()
    for person in people:
        values = PreparedIssue(DOTTY_ISSUE).values_for(person)
        assert _decoded_bodies(received[person.email].data) == _expected(values)
    assert "\n.\n..two dots\n" in _decoded_bodies(received["cy@example.com"].data)[0]


# --- PIPELINING -------------------------------------------------------------------------------


class ScriptedServer:
    """Just enough SMTP to take mail, noting which commands came in each read.

    ``refuse`` answers RCPT with 550, ``defer`` with 451; DATA without an accepted
    recipient gets 554, as Postfix answers.
    """

    def __init__(
        self, *, pipelining: bool, refuse: set[str] | None = None, defer: set[str] | None = None
    ) -> None:
        self.pipelining = pipelining
        self.refuse = refuse or set()
        self.defer = defer or set()
        self.reads: list[list[str]] = []
        """The command verbs found in each read from a client, in order."""
        self.messages: dict[str, bytes] = {}
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> ScriptedServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.sendall(b"220 scripted ESMTP\r\n")
            buffer, state = b"", {"rcpt": [], "data": False}
            while chunk := conn.recv(65536):
                buffer += chunk
                verbs: list[str] = []
                replies, buffer = self._handle(buffer, state, verbs)
                if verbs:
                    self.reads.append(verbs)
                if replies:
                    conn.sendall(replies)
                if state.get("quit"):
                    return

    def _handle(
        self, buffer: bytes, state: dict[str, Any], verbs: list[str]
    ) -> tuple[bytes, bytes]:
        replies = b""
        while True:
            if state["data"]:
                end = buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return replies, buffer
                body, buffer = buffer[: end + 2], buffer[end + 5 :]
                lines = body.split(b"\r\n")
                body = b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)
                for address in state["rcpt"]:
                    self.messages[address] = body
                state.update(rcpt=[], data=False)
                replies += b"250 queued\r\n"
                continue
            line, found, rest = buffer.partition(b"\r\n")
            if not found:
                return replies, buffer
            buffer = rest
            verb, _, arg = line.decode().partition(" ")
            verbs.append(verb.upper())
            replies += self._reply(verb.upper(), arg, state)

    def _reply(self, verb: str, arg: str, state: dict[str, Any]) -> bytes:
        if verb == "EHLO":
            extensions = "250-PIPELINING\r\n" if self.pipelining else ""
            return f"250-scripted\r\n{extensions}250 8BITMIME\r\n".encode()
        if verb == "RCPT":
            address = arg.partition("<")[2].rstrip(">")
            if address in self.refuse:
                return b"550 5.1.1 No such user here\r\n"
            if address in self.defer:
                return b"451 4.7.1 Greylisted, try again later\r\n"
            state["rcpt"].append(address)
            return b"250 ok\r\n"
        if verb == "DATA":
            if not state["rcpt"]:
                return b"554 5.5.1 Error: no valid recipients\r\n"
            state["data"] = True
            return b"354 go ahead\r\n"
        if verb == "RSET":
            state["rcpt"] = []
        if verb == "QUIT":
            state["quit"] = True
            return b"221 bye\r\n"
        return b"250 ok\r\n"


def _settings(port: int, connections: int = 1) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, connections=connections, timeout=5.0)


@pytest.fixture
def pipelining_server() -> Iterator[ScriptedServer]:
    with ScriptedServer(
        pipelining=True, refuse={"nobody@example.com"}, defer={"later@example.com"}
    ) as server:
        yield server


def test_commands_go_out_in_one_write_when_the_server_offers_pipelining(
    pipelining_server: ScriptedServer,
) -> None:
    people = [recipient(n, f"r{n}@example.com", f"Reader {n}") for n in range(1, 4)]
    with SmtpProvider(_settings(pipelining_server.port)) as provider:
        assert all(result.ok for result in provider.send(sample_issue(), people))
    assert pipelining_server.reads.count(["MAIL", "RCPT", "DATA"]) == 3
    for n in range(1, 4):
        assert "Dear Reader," in _decoded_bodies(pipelining_server.messages[f"r{n}@example.com"])[0]


def test_commands_wait_for_each_reply_when_pipelining_is_not_offered() -> None:
    people = [recipient(n, f"r{n}@example.com", f"Reader {n}") for n in range(1, 4)]
    with (
        ScriptedServer(pipelining=False, refuse={"nobody@example.com"}) as server,
        SmtpProvider(_settings(server.port)) as provider,
    ):
        results = provider.send(sample_issue(), [*people, recipient(9, "nobody@example.com")])
    assert [result.ok for result in results] == [True, True, True, False]
    assert all(len(verbs) == 1 for verbs in server.reads), server.reads
    assert set(server.messages) == {person.email for person in people}


def test_a_recipient_refused_mid_pipeline_fails_alone(pipelining_server: ScriptedServer) -> None:
    people = [
        recipient(1, "ann@example.com", "Ann"),
        recipient(2, "nobody@example.com", "No Body"),
        recipient(3, "cy@example.com", "Cy"),
    ]
    with SmtpProvider(_settings(pipelining_server.port)) as provider:
        results = provider.send(sample_issue(), people)
        again = provider.send(sample_issue(), [recipient(4, "di@example.com", "Di")])
    assert [result.ok for result in results] == [True, False, True]
    assert results[1].error == "550 5.1.1 No such user here"
    assert again[0].ok  # the connection was left ready for the next transaction
    assert set(pipelining_server.messages) == {
        "ann@example.com",
        "cy@example.com",
        "di@example.com",
    }
    assert ["RSET"] in pipelining_server.reads  # the refused transaction was reset


def test_a_deferral_mid_pipeline_is_transient_and_keeps_the_others(
    pipelining_server: ScriptedServer,
) -> None:
    people = [
        recipient(1, "ann@example.com", "Ann"),
        recipient(2, "later@example.com", "Later"),
        recipient(3, "cy@example.com", "Cy"),
    ]
    provider = SmtpProvider(_settings(pipelining_server.port))
    with provider, pytest.raises(TransientProviderError, match=r"451 4\.7\.1 Greylisted") as caught:
        provider.send(sample_issue(), people)
    assert [r.subscriber_id for r in caught.value.results] == [1, 3]  # type: ignore[attr-defined]
    assert set(pipelining_server.messages) == {"ann@example.com", "cy@example.com"}


class _PipeliningHandler(_Handler):
    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


def test_aiosmtpd_offering_pipelining_gets_every_message_and_refusal_right() -> None:
    sink = SmtpSink(refuse={"nobody@example.com"})
    sink._controller.handler = _PipeliningHandler(sink)
    people = [recipient(n, f"r{n}@example.com", f"Reader {n}") for n in range(1, 7)]
    people.insert(3, recipient(99, "nobody@example.com", "No Body"))
    with sink, SmtpProvider(_settings(sink.port, connections=2)) as provider:
        results = provider.send(sample_issue(), people)
    assert [result.ok for result in results] == [True, True, True, False, True, True, True]
    received = sink.by_recipient()
    assert set(received) == {f"r{n}@example.com" for n in range(1, 7)}
    assert "Dear Reader," in _decoded_bodies(received["r5@example.com"].data)[0]
