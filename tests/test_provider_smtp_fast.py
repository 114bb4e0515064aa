"""The fast SMTP path: bytes stuffed once per issue, PIPELINING only when offered, and
what each reply (or its absence) means for the recipient it concerns.

A small scripted server notes how the client's commands arrive (in one write, or each
after the previous reply) and can fail a transaction at any step, so the tests see what
goes over the wire, not just that the mail arrived; aiosmtpd checks the same messages the
way a real server reads them.
"""

from __future__ import annotations

import email
import email.policy
import socket
import struct
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from newsletter.config import SmtpSettings
from newsletter.errors import AuthenticationError, ProviderError
from newsletter.message import PreparedIssue
from newsletter.providers import SmtpProvider
from newsletter.send_models import Outcome, Recipient, RecipientRow
from servers.samples import deliver, outcomes, row, sample_issue, url_of
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


def _recipient(person: RecipientRow) -> Recipient:
    sid, address, name, values, _ = person
    return Recipient(sid, address, name, values, url_of(person))


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
    person = _recipient(row(1, "ann@example.com", "Ann", organisation=".Dot Council\n.hidden"))
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
        row(1, "ann@example.com", "Ann", organisation=".Dot Council"),
        row(2, "bo@example.com", "Bo", organisation=".\n.."),
        row(3, "cy@example.com", "Cy"),
    ]
    with SmtpSink() as sink, SmtpProvider(_settings(sink.port)) as provider:
        delivery = deliver(provider, people, DOTTY_ISSUE)
    assert delivery.counts()[Outcome.ACCEPTED] == 3
    received = sink.by_recipient()
    for person in people:
        values = PreparedIssue(DOTTY_ISSUE).values_for(_recipient(person))
        assert _decoded_bodies(received[person[1]].data) == _expected(values)
    assert "\n.\n..two dots\n" in _decoded_bodies(received["cy@example.com"].data)[0]


# --- a scripted server ------------------------------------------------------------------------


REFUSE_AFTER_DATA = "refuse-after-data"
"""554 once the message is in: refused."""
DEFER_AT_DATA = "defer-at-data"
"""451 to the DATA command: not delivered."""
DEFER_AFTER_DATA = "defer-after-data"
"""451 once the message is in: not delivered."""
DROP_AT_DATA = "drop-at-data"
"""The connection closed instead of answering DATA: no message was written."""
RESET_IN_DATA = "reset-in-data"
"""The connection reset after the first read of the message: it was not all written."""
DROP_AFTER_DOT = "drop-after-dot"
"""The connection closed after the final ".", before the answer: unknown."""


class ScriptedServer:
    """Just enough SMTP to take mail, noting which commands came in each read.

    ``refuse`` answers RCPT with 550, ``defer`` with 451; DATA without an accepted
    recipient gets 554, as Postfix answers. ``script`` fails the transaction of chosen
    recipients at a later step (see the constants above); ``refuse_sender`` answers every
    MAIL with 550.
    """

    def __init__(
        self,
        *,
        pipelining: bool,
        refuse: set[str] | None = None,
        defer: set[str] | None = None,
        script: dict[str, str] | None = None,
        refuse_sender: bool = False,
    ) -> None:
        self.pipelining = pipelining
        self.refuse = refuse or set()
        self.defer = defer or set()
        self.script = script or {}
        self.refuse_sender = refuse_sender
        self.reads: list[list[str]] = []
        """The command verbs found in each read from a client, in order."""
        self.messages: dict[str, bytes] = {}
        """Messages taken with a 250, by recipient."""
        self.unanswered: list[str] = []
        """Recipients whose message came in whole and got no answer."""
        self.connections = 0
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
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.sendall(b"220 scripted ESMTP\r\n")
            buffer = b""
            state: dict[str, Any] = {"rcpt": [], "data": False}
            while chunk := conn.recv(65536):
                if state.get("reset"):
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                buffer += chunk
                verbs: list[str] = []
                replies, buffer = self._handle(buffer, state, verbs)
                if verbs:
                    self.reads.append(verbs)
                if replies:
                    conn.sendall(replies)
                if state.get("quit") or state.get("drop"):
                    return

    def _handle(
        self, buffer: bytes, state: dict[str, Any], verbs: list[str]
    ) -> tuple[bytes, bytes]:
        replies = b""
        while not state.get("drop"):
            if state["data"]:
                end = buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return replies, buffer
                body, buffer = buffer[: end + 2], buffer[end + 5 :]
                lines = body.split(b"\r\n")
                body = b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)
                replies += self._taken(body, state)
                state.update(rcpt=[], data=False)
                continue
            line, found, rest = buffer.partition(b"\r\n")
            if not found:
                return replies, buffer
            buffer = rest
            verb, _, arg = line.decode().partition(" ")
            verbs.append(verb.upper())
            replies += self._reply(verb.upper(), arg, state)
        return replies, b""

    def _taken(self, body: bytes, state: dict[str, Any]) -> bytes:
        steps = {self.script.get(address) for address in state["rcpt"]}
        if DROP_AFTER_DOT in steps:
            self.unanswered += state["rcpt"]
            state["drop"] = True
            return b""
        if REFUSE_AFTER_DATA in steps:
            return b"554 5.7.1 Message refused: spam\r\n"
        if DEFER_AFTER_DATA in steps:
            return b"451 4.3.0 Queue full, try again later\r\n"
        for address in state["rcpt"]:
            self.messages[address] = body
        return b"250 queued\r\n"

    def _reply(self, verb: str, arg: str, state: dict[str, Any]) -> bytes:
        if verb == "EHLO":
            extensions = "250-PIPELINING\r\n" if self.pipelining else ""
            return f"250-scripted\r\n{extensions}250 8BITMIME\r\n".encode()
        if verb == "MAIL":
            if self.refuse_sender:
                return b"550 5.7.1 Sender address rejected: not owned by you\r\n"
            state["mail"] = True
            return b"250 ok\r\n"
        if verb == "RCPT":
            if not state.get("mail"):
                return b"503 5.5.1 Error: need MAIL command\r\n"
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
            steps = {self.script.get(address) for address in state["rcpt"]}
            if DEFER_AT_DATA in steps:
                return b"451 4.3.1 Insufficient system storage\r\n"
            if DROP_AT_DATA in steps:
                state["drop"] = True
                return b""
            state["data"] = True
            state["reset"] = RESET_IN_DATA in steps
            return b"354 go ahead\r\n"
        if verb == "RSET":
            state.update(rcpt=[], mail=False)
        if verb == "QUIT":
            state["quit"] = True
            return b"221 bye\r\n"
        return b"250 ok\r\n"


def _settings(port: int, connections: int = 1) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, connections=connections, timeout=5.0)


def _people(*addresses: str) -> list[RecipientRow]:
    return [row(n, address, f"Reader {n}") for n, address in enumerate(addresses, start=1)]


@pytest.fixture(params=[True, False], ids=["pipelining", "lock-step"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


# --- PIPELINING -------------------------------------------------------------------------------


@pytest.fixture
def pipelining_server() -> Iterator[ScriptedServer]:
    with ScriptedServer(
        pipelining=True, refuse={"nobody@example.com"}, defer={"later@example.com"}
    ) as server:
        yield server


def test_commands_go_out_in_one_write_when_the_server_offers_pipelining(
    pipelining_server: ScriptedServer,
) -> None:
    people = [row(n, f"r{n}@example.com", f"Reader {n}") for n in range(1, 4)]
    with SmtpProvider(_settings(pipelining_server.port)) as provider:
        assert deliver(provider, people).counts()[Outcome.ACCEPTED] == 3
    assert pipelining_server.reads.count(["MAIL", "RCPT", "DATA"]) == 3
    for n in range(1, 4):
        assert "Dear Reader," in _decoded_bodies(pipelining_server.messages[f"r{n}@example.com"])[0]


def test_commands_wait_for_each_reply_when_pipelining_is_not_offered() -> None:
    people = [row(n, f"r{n}@example.com", f"Reader {n}") for n in range(1, 4)]
    with (
        ScriptedServer(pipelining=False, refuse={"nobody@example.com"}) as server,
        SmtpProvider(_settings(server.port)) as provider,
    ):
        delivery = deliver(provider, [*people, row(9, "nobody@example.com")])
    assert outcomes(delivery) == {
        1: Outcome.ACCEPTED,
        2: Outcome.ACCEPTED,
        3: Outcome.ACCEPTED,
        9: Outcome.REFUSED,
    }
    assert all(len(verbs) == 1 for verbs in server.reads), server.reads
    assert set(server.messages) == {person[1] for person in people}


def test_a_recipient_refused_mid_pipeline_fails_alone(pipelining_server: ScriptedServer) -> None:
    people = [
        row(1, "ann@example.com", "Ann"),
        row(2, "nobody@example.com", "No Body"),
        row(3, "cy@example.com", "Cy"),
    ]
    with SmtpProvider(_settings(pipelining_server.port)) as provider:
        delivery = deliver(provider, people)
        again = deliver(provider, [row(4, "di@example.com", "Di")])
    assert outcomes(delivery) == {1: Outcome.ACCEPTED, 2: Outcome.REFUSED, 3: Outcome.ACCEPTED}
    assert delivery.outcome_of(2)[1] == "RCPT: 550 5.1.1 No such user here"
    assert outcomes(again) == {4: Outcome.ACCEPTED}  # the connection was left ready
    assert set(pipelining_server.messages) == {
        "ann@example.com",
        "cy@example.com",
        "di@example.com",
    }
    assert ["RSET"] in pipelining_server.reads  # the refused transaction was reset
    assert pipelining_server.connections == 1


def test_a_deferral_mid_pipeline_is_not_delivered_and_keeps_the_others(
    pipelining_server: ScriptedServer,
) -> None:
    people = [
        row(1, "ann@example.com", "Ann"),
        row(2, "later@example.com", "Later"),
        row(3, "cy@example.com", "Cy"),
    ]
    with SmtpProvider(_settings(pipelining_server.port)) as provider:
        delivery = deliver(provider, people)
    assert outcomes(delivery) == {
        1: Outcome.ACCEPTED,
        2: Outcome.NOT_DELIVERED,
        3: Outcome.ACCEPTED,
    }
    assert delivery.outcome_of(2)[1] == "RCPT: 451 4.7.1 Greylisted, try again later"
    assert delivery.halt is None
    assert set(pipelining_server.messages) == {"ann@example.com", "cy@example.com"}


class _PipeliningHandler(_Handler):
    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


def test_aiosmtpd_offering_pipelining_gets_every_message_and_refusal_right() -> None:
    sink = SmtpSink(refuse={"nobody@example.com"}, defer={"later@example.com"})
    sink._controller.handler = _PipeliningHandler(sink)
    people = [row(n, f"r{n}@example.com", f"Reader {n}") for n in range(1, 7)]
    people.insert(3, row(99, "nobody@example.com", "No Body"))
    people.insert(5, row(98, "later@example.com", "Later"))
    with sink, SmtpProvider(_settings(sink.port)) as provider:
        delivery = deliver(provider, people)
    assert delivery.counts() == {
        Outcome.ACCEPTED: 6,
        Outcome.REFUSED: 1,
        Outcome.NOT_DELIVERED: 1,
        Outcome.UNKNOWN: 0,
    }
    assert delivery.outcome_of(99)[0] is Outcome.REFUSED
    assert delivery.outcome_of(98)[0] is Outcome.NOT_DELIVERED
    received = sink.by_recipient()
    assert set(received) == {f"r{n}@example.com" for n in range(1, 7)}
    assert "Dear Reader," in _decoded_bodies(received["r5@example.com"].data)[0]
    assert len({item.peer_port for item in sink.received}) == 1


# --- what each failure means for its recipient ---------------------------------------------


@pytest.mark.parametrize(
    ("step", "outcome", "reason"),
    [
        (DEFER_AT_DATA, Outcome.NOT_DELIVERED, "DATA: 451 4.3.1 Insufficient system storage"),
        (DEFER_AFTER_DATA, Outcome.NOT_DELIVERED, "DATA: 451 4.3.0 Queue full, try again later"),
        (REFUSE_AFTER_DATA, Outcome.REFUSED, "DATA: 554 5.7.1 Message refused: spam"),
    ],
)
def test_an_answer_to_the_message_concerns_its_recipient_alone(
    pipelining: bool, step: str, outcome: Outcome, reason: str
) -> None:
    people = _people("ann@example.com", "bo@example.com", "cy@example.com")
    with (
        ScriptedServer(pipelining=pipelining, script={"bo@example.com": step}) as server,
        SmtpProvider(_settings(server.port)) as provider,
    ):
        delivery = deliver(provider, people)
    assert outcomes(delivery) == {1: Outcome.ACCEPTED, 2: outcome, 3: Outcome.ACCEPTED}
    assert delivery.outcome_of(2)[1] == reason
    assert delivery.halt is None
    assert set(server.messages) == {"ann@example.com", "cy@example.com"}
    assert server.connections == 1


def test_a_connection_lost_after_the_final_dot_is_unknown_and_the_rest_go_on(
    pipelining: bool,
) -> None:
    people = _people("ann@example.com", "bo@example.com", "cy@example.com", "di@example.com")
    with (
        ScriptedServer(pipelining=pipelining, script={"bo@example.com": DROP_AFTER_DOT}) as server,
        SmtpProvider(_settings(server.port)) as provider,
    ):
        delivery = deliver(provider, people)
        later = deliver(provider, _people("ed@example.com"))
    assert outcomes(delivery) == {
        1: Outcome.ACCEPTED,
        2: Outcome.UNKNOWN,
        3: Outcome.ACCEPTED,
        4: Outcome.ACCEPTED,
    }
    assert "lost after the message to bo@example.com was written" in delivery.outcome_of(2)[1]
    assert delivery.halt is None
    assert outcomes(later) == {1: Outcome.ACCEPTED}
    assert server.unanswered == ["bo@example.com"]
    assert set(server.messages) == {
        "ann@example.com",
        "cy@example.com",
        "di@example.com",
        "ed@example.com",
    }
    assert server.connections == 2  # the rest on a new connection, kept for the next batch


def test_a_connection_lost_before_the_message_is_not_delivered_and_the_rest_go_on(
    pipelining: bool,
) -> None:
    people = _people("ann@example.com", "bo@example.com", "cy@example.com")
    with (
        ScriptedServer(pipelining=pipelining, script={"bo@example.com": DROP_AT_DATA}) as server,
        SmtpProvider(_settings(server.port)) as provider,
    ):
        delivery = deliver(provider, people)
    assert outcomes(delivery) == {
        1: Outcome.ACCEPTED,
        2: Outcome.NOT_DELIVERED,
        3: Outcome.ACCEPTED,
    }
    assert "lost before the message to bo@example.com was written" in delivery.outcome_of(2)[1]
    assert delivery.halt is None
    assert set(server.messages) == {"ann@example.com", "cy@example.com"}
    assert server.connections == 2


def test_a_connection_reset_while_the_message_is_written_is_not_delivered() -> None:
    issue = sample_issue(html=sample_issue().html + "%%biography|%%")
    people = [
        row(1, "ann@example.com", "Ann"),
        # Far more than the kernel's socket buffers hold, so the write is still under way.
        row(2, "bo@example.com", "Bo", biography="A long life. " * 1_500_000),
        row(3, "cy@example.com", "Cy"),
    ]
    with (
        ScriptedServer(pipelining=True, script={"bo@example.com": RESET_IN_DATA}) as server,
        SmtpProvider(_settings(server.port)) as provider,
    ):
        delivery = deliver(provider, people, issue)
    assert outcomes(delivery) == {
        1: Outcome.ACCEPTED,
        2: Outcome.NOT_DELIVERED,
        3: Outcome.ACCEPTED,
    }
    assert "lost before the message to bo@example.com was written" in delivery.outcome_of(2)[1]
    assert server.unanswered == []
    assert set(server.messages) == {"ann@example.com", "cy@example.com"}
    assert server.connections == 2


def test_a_refused_sender_stops_the_send(pipelining: bool) -> None:
    people = _people("ann@example.com", "bo@example.com")
    with (
        ScriptedServer(pipelining=pipelining, refuse_sender=True) as server,
        SmtpProvider(_settings(server.port)) as provider,
    ):
        delivery = deliver(provider, people)
    assert outcomes(delivery) == {1: Outcome.NOT_DELIVERED, 2: Outcome.NOT_DELIVERED}
    assert isinstance(delivery.halt, ProviderError)
    assert not isinstance(delivery.halt, AuthenticationError)
    assert str(delivery.halt).startswith(
        f"smtp 127.0.0.1:{server.port}: the server refuses the sender "
        "news@leading-together.example.org: 550 5.7.1 Sender address rejected: not owned by "
        "you; check newsletter.sender"
    )
    assert server.messages == {}
    assert server.reads.count(["MAIL"] if not pipelining else ["MAIL", "RCPT", "DATA"]) == 1
