import email
import email.policy
import random
import re
import socket
import struct
import threading
from collections.abc import Iterator
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import ProviderSettings, SendgridSettings
from newsletter.errors import AuthenticationError, ConfigError, ProviderError
from newsletter.message import PreparedIssue
from newsletter.providers import (
    OutboxProvider,
    SendgridProvider,
    backoff_delays,
    get_provider,
    retry_delay,
)
from newsletter.send_models import Delivery, Outcome, OutgoingIssue, RecipientRow
from servers.samples import deliver, many, outcomes, row, sample_issue, url_of
from servers.sendgrid_fake import (
    SCHEMA_FILE,
    FakeSendGrid,
    Reply,
    error_reply,
    rate_limited,
    validate_against_schema,
)
from servers.sendgrid_schema import require

KEY = "SG.test-key"
MAILTO = "<mailto:unsubscribe@leading-together.example.org?subject=unsubscribe>"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSendGrid]:
    monkeypatch.setenv("TEST_SENDGRID_KEY", KEY)
    with FakeSendGrid(api_key=KEY) as server:
        yield server
        for request in server.requests:
            validate_against_schema(request.body)


def _settings(host: str, **changes: object) -> SendgridSettings:
    fields: dict[str, object] = {
        "api_key": "${TEST_SENDGRID_KEY}",
        "host": host,
        "timeout": 2.0,
        "categories": ["newsletter"],
    }
    fields.update(changes)
    return SendgridSettings(**fields)  # type: ignore[arg-type]


def _deliver(
    fake: FakeSendGrid,
    rows: list[RecipientRow],
    issue: OutgoingIssue | None = None,
    **changes: object,
) -> Delivery:
    with SendgridProvider(_settings(fake.url, **changes)) as provider:
        return deliver(provider, rows, issue)


def _one(fake: FakeSendGrid, **changes: object) -> dict[str, Any]:
    delivery = _deliver(fake, [row(1, "ann@example.com", "Ann Smith")], **changes)
    assert outcomes(delivery) == {1: Outcome.ACCEPTED}
    [request] = fake.requests
    return request.body  # type: ignore[no-any-return]


def _substituted(text: str, substitutions: dict[str, str]) -> str:
    """``text`` as SendGrid sends it: every key replaced by its value, in one pass."""
    if not substitutions:
        return text
    keys = re.compile("|".join(map(re.escape, sorted(substitutions, key=len, reverse=True))))
    return keys.sub(lambda match: substitutions[match.group(0)], text)


def _as_received(body: dict[str, Any], index: int) -> dict[str, Any]:
    """What the recipient of personalization ``index`` gets, SendGrid's work done."""
    personalization = body["personalizations"][index]
    substitutions = personalization.get("substitutions", {})
    parts = {part["type"]: part["value"] for part in body["content"]}
    return {
        "to": personalization["to"],
        "subject": _substituted(body["subject"], substitutions),
        "text": _substituted(parts["text/plain"], substitutions),
        "html": _substituted(parts["text/html"], substitutions),
        "headers": {**body.get("headers", {}), **personalization.get("headers", {})},
    }


# --- the request --------------------------------------------------------------------------


def test_a_thousand_recipients_go_in_one_schema_valid_request(fake: FakeSendGrid) -> None:
    people = many(1000)
    settings = ProviderSettings(type="sendgrid", sendgrid=_settings(fake.url))
    with get_provider(settings) as provider:
        assert provider.max_batch_size == 1000
        delivery = deliver(provider, people)

    assert len(fake.requests) == 1
    request = fake.requests[0]
    assert request.path == "/v3/mail/send"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    validate_against_schema(request.body)
    assert delivery.provider_id is not None
    assert delivery.counts()[Outcome.ACCEPTED] == 1000
    assert list(delivery.subscriber_ids) == list(range(1, 1001))
    assert delivery.halt is None

    body = request.body
    assert len(body["personalizations"]) == 1000
    assert body["from"] == {
        "email": "news@leading-together.example.org",
        "name": "Leading Together",
    }
    assert body["reply_to"] == {"email": "editor@leading-together.example.org"}
    assert [part["type"] for part in body["content"]] == ["text/plain", "text/html"]
    assert body["categories"] == ["001-2026-11-24", "newsletter", "weekly"]
    assert "custom_args" not in body
    assert "asm" not in body and "mail_settings" not in body
    assert body["headers"] == {
        "List-Id": "Leading Together <members.leading-together.example.org>",
        "X-Newsletter-Issue": "001-2026-11-24",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    for index in (0, 6, 999):
        person = people[index]
        personalization = body["personalizations"][index]
        assert personalization["to"] == [{"email": person[1], "name": person[2]}]
        assert personalization["custom_args"] == {"sid": str(person[0])}
        assert personalization["headers"] == {"List-Unsubscribe": f"<{url_of(person)}>, {MAILTO}"}
        received = _as_received(body, index)
        assert received["subject"] == "Issue #1 for Reader: leading together"
        assert received["text"].startswith("Dear Reader,\n")
        assert f"Unsubscribe: {url_of(person)}\n" in received["text"]
        assert received["html"].startswith("<html><body><p>Dear Reader,</p>\n")
        assert f'<a href="{url_of(person)}">Unsubscribe</a>' in received["html"]
    addresses = [p["to"][0]["email"] for p in body["personalizations"]]
    assert len(set(addresses)) == 1000


def test_the_content_carries_short_keys_and_each_personalization_its_values(
    fake: FakeSendGrid,
) -> None:
    _deliver(fake, many(3))
    body = fake.requests[0].body
    everything = body["subject"] + "".join(part["value"] for part in body["content"])
    assert "first_name" not in everything and "unsubscribe_url" not in everything
    keys = set(body["personalizations"][0]["substitutions"])
    assert keys and all(len(key) <= 4 and key in everything for key in keys)
    for personalization in body["personalizations"]:
        assert set(personalization["substitutions"]) == keys
    # The token alone is substituted; the link's base is said once, in the content.
    assert (
        body["content"][0]["value"].count("https://leading-together.example.org/unsubscribe/") == 1
    )
    tokens = {p["substitutions"][k] for p in body["personalizations"] for k in keys}
    assert {person[4] for person in many(3)} <= tokens


@pytest.mark.parametrize(
    "links",
    [
        {},
        {"unsubscribe_mailto": None},
        {"unsubscribe_base": "http://leading-together.example.org/unsubscribe/"},
        {"unsubscribe_base": ""},
        {"unsubscribe_base": "", "unsubscribe_mailto": None},
    ],
    ids=["https-and-mailto", "https", "http", "mailto", "none"],
)
def test_each_recipient_gets_what_the_outbox_would_write(
    fake: FakeSendGrid, tmp_path: Path, links: dict[str, Any]
) -> None:
    """SendGrid's substitutions give every recipient the subject, bodies and list headers
    that the outbox (and SMTP, which renders the same messages) would give them."""
    base = sample_issue()
    issue = sample_issue(
        # '%%t%%' is a merge field named like a short key, '%%0%%' is plain text.
        text=base.text + "Greetings from %%city|your town%% to %%email%%.\n%%t%% %%0%%\n",
        html=base.html.replace("</body>", "<p>From %%city|your town%%</p></body>"),
        **links,
    )
    people = [
        row(1, "ann@example.com", "Ann Smith"),
        row(2, "bo@example.com"),
        row(3, "tom@example.com", "<b>Tom</b> & Co", city="Leeds & York"),
        row(4, "annie@example.com", "Ann Jones", first_name="Annie", city="Hull"),
        row(5, "cy@example.com", "Cy", city=""),
    ]
    delivery = _deliver(fake, people, issue)
    assert delivery.counts()[Outcome.ACCEPTED] == len(people)
    with OutboxProvider(tmp_path) as outbox:
        deliver(outbox, people, issue)

    body = fake.requests[0].body
    for index, person in enumerate(people):
        received = _as_received(body, index)
        [path] = (tmp_path / issue.issue_id).glob(f"{person[0]}-*.eml")
        written = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(written, email.message.EmailMessage)
        assert received["subject"] == written["Subject"], person
        text = written.get_body(("plain",)).get_content().replace("\r\n", "\n")
        html = written.get_body(("html",)).get_content().replace("\r\n", "\n")
        assert received["text"] == text, person
        assert received["html"] == html, person
        for header in ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"):
            expected = None if written[header] is None else str(written[header])
            assert received["headers"].get(header) == expected, (person, header)
    # A first_name attribute never replaces the one from the subscriber's name.
    assert "Dear Ann," in _as_received(body, 3)["text"]


@pytest.mark.parametrize(
    "names",
    [
        ["Ann Smith", "Bo", "", "Cy  Twombly", "Dee ", "Émile Zola"],
        ["Ann Smith", " Bo Diddley", "Cy\u00a0Twombly", "Dee\u2003Dee", "   ", ""],
    ],
    ids=["plain spaces", "other whitespace"],
)
def test_first_names_are_the_ones_the_outbox_writes(
    fake: FakeSendGrid, tmp_path: Path, names: list[str]
) -> None:
    issue = sample_issue()
    people = [row(n, f"reader{n}@example.com", name) for n, name in enumerate(names, 1)]
    assert outcomes(_deliver(fake, people, issue)) == dict.fromkeys(range(1, 7), Outcome.ACCEPTED)
    with OutboxProvider(tmp_path) as outbox:
        deliver(outbox, people, issue)

    body = fake.requests[0].body
    assert "%%first_name" in issue.text
    for index, person in enumerate(people):
        [path] = (tmp_path / issue.issue_id).glob(f"{person[0]}-*.eml")
        written = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(written, email.message.EmailMessage)
        text = written.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert _as_received(body, index)["text"] == text, person


@pytest.mark.parametrize("base", ["https://leading-together.example.org/u/", ""])
def test_an_attribute_never_fills_a_built_in_field(fake: FakeSendGrid, base: str) -> None:
    """Attributes stored before built-in names were refused are ignored, token or not."""
    issue = sample_issue(
        text="Read %%view_url|online%%; leave at %%unsubscribe_url|no link%%\n",
        unsubscribe_base=base,
    )
    sneaky = row(1, "ann@example.com", "Ann", view_url="https://evil.example/",
                 unsubscribe_url="https://evil.example/")  # fmt: skip
    _deliver(fake, [sneaky, row(2, "bo@example.com", "Bo", city="Leeds")], issue)
    received = _as_received(fake.requests[0].body, 0)["text"]
    assert "evil.example" not in received
    assert received.startswith("Read online; leave at " + (base + sneaky[4] if base else "no"))


def test_values_are_escaped_for_html_only(fake: FakeSendGrid) -> None:
    _deliver(fake, [row(1, "t@example.com", "<b>Tom</b> & Co"), row(2, "u@example.com", "Ulla")])
    body = fake.requests[0].body
    tom = _as_received(body, 0)
    assert tom["subject"] == "Issue #1 for <b>Tom</b>: leading together"
    assert "Dear <b>Tom</b>," in tom["text"]
    assert "<p>Dear &lt;b&gt;Tom&lt;/b&gt;,</p>" in tom["html"]
    assert "<b>Tom</b>" not in tom["html"]
    assert "<p>Dear Ulla,</p>" in _as_received(body, 1)["html"]


@pytest.mark.parametrize(
    "name",
    ["Smith, Jo", "Jo; Ann", 'Jo "JJ" Smith', "Dr. Who", "O'Brien (Leeds)", "back\\slash", "Zoë"],
)
def test_names_sendgrid_could_misread_are_quoted(fake: FakeSendGrid, name: str) -> None:
    delivery = _deliver(fake, [row(1, "jo@example.com", name), row(2, "al@example.com", "Al")])
    assert outcomes(delivery) == {1: Outcome.ACCEPTED, 2: Outcome.ACCEPTED}
    [jo, al] = [p["to"] for p in fake.requests[0].body["personalizations"]]
    assert parseaddr(f"{jo[0]['name']} <{jo[0]['email']}>") == (name, "jo@example.com")
    assert al == [{"email": "al@example.com", "name": "Al"}]


def test_a_name_no_header_can_carry_is_left_out(fake: FakeSendGrid) -> None:
    people = [
        row(1, "jo@example.com", "Jo\r\nBcc: all@example.com"),
        row(2, "al@example.com", "Al"),
    ]
    delivery = _deliver(fake, people)
    assert outcomes(delivery) == {1: Outcome.ACCEPTED, 2: Outcome.ACCEPTED}
    body = fake.requests[0].body
    jo = _as_received(body, 0)
    assert jo["to"] == [{"email": "jo@example.com"}]
    assert jo["subject"] == "Issue #1 for friends: leading together"
    assert "Bcc" not in str(body)
    assert _as_received(body, 1)["to"] == [{"email": "al@example.com", "name": "Al"}]


def test_a_recipient_costs_under_400_bytes_of_request(fake: FakeSendGrid) -> None:
    people = [row(n, f"reader{n}@example.org", f"Ada Reader{n}") for n in range(123_456, 124_456)]
    with SendgridProvider(_settings(fake.url)) as provider:
        payload = provider.build_payload(PreparedIssue(sample_issue()), people)
    validate_against_schema(payload.as_json())
    assert len(payload.body) / len(people) < 400


def test_sandbox_and_unsubscribe_group_appear_when_configured(fake: FakeSendGrid) -> None:
    body = _one(fake, sandbox=True, asm_group_id=4242)
    assert body["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert body["asm"] == {"group_id": 4242}


def test_duplicate_address_is_left_out_of_the_request(fake: FakeSendGrid) -> None:
    delivery = _deliver(fake, [row(1, "a@example.com"), row(2, "A@example.com")])
    assert outcomes(delivery) == {1: Outcome.ACCEPTED, 2: Outcome.REFUSED}
    assert "appears twice" in delivery.outcome_of(2)[1]
    assert len(fake.requests[0].body["personalizations"]) == 1


def test_later_batches_reuse_the_prepared_issue(fake: FakeSendGrid) -> None:
    issue = PreparedIssue(sample_issue())
    people = many(4)
    with SendgridProvider(_settings(fake.url, batch_size=2)) as provider:
        first = provider.deliver(issue, people[:2])
        second = provider.deliver(issue, people[2:])
    assert first.counts()[Outcome.ACCEPTED] == second.counts()[Outcome.ACCEPTED] == 2
    assert [len(r.body["personalizations"]) for r in fake.requests] == [2, 2]
    assert fake.requests[0].body["content"] == fake.requests[1].body["content"]


def test_nothing_is_posted_once_the_send_has_stopped(fake: FakeSendGrid) -> None:
    with SendgridProvider(_settings(fake.url)) as provider:
        delivery = provider.deliver(PreparedIssue(sample_issue()), many(2), going_out=lambda: False)
    assert outcomes(delivery) == {1: Outcome.NOT_DELIVERED, 2: Outcome.NOT_DELIVERED}
    assert fake.requests == []


# --- answers and their outcomes -----------------------------------------------------------


def test_rate_limit_is_not_delivered_with_retry_after(fake: FakeSendGrid) -> None:
    fake.script(rate_limited(reset_in=30))
    delivery = _deliver(fake, many(2))
    assert outcomes(delivery) == {1: Outcome.NOT_DELIVERED, 2: Outcome.NOT_DELIVERED}
    assert "rate limit reached (429): too many requests" in delivery.reason
    assert delivery.retry_after is not None and 25 <= delivery.retry_after <= 31
    assert delivery.halt is None


def test_server_error_is_not_delivered(fake: FakeSendGrid) -> None:
    fake.script(error_reply(500, "Internal error"))
    delivery = _deliver(fake, many(2))
    assert outcomes(delivery) == {1: Outcome.NOT_DELIVERED, 2: Outcome.NOT_DELIVERED}
    assert "server error (500): Internal error" in delivery.reason
    assert delivery.halt is None and delivery.retry_after is None


@pytest.mark.parametrize(
    ("reply", "timeout", "words"),
    # The slow answer would take 30 s (the fake lets go when the test ends): only the
    # client's 0.3 s timeout can end the wait, however loaded the machine.
    [(Reply(drop=True), 2.0, "RemoteProtocolError"), (Reply(delay=30.0), 0.3, "ReadTimeout")],
    ids=["dropped", "timed-out"],
)
def test_an_answer_lost_after_the_request_arrived_is_unknown(
    fake: FakeSendGrid, reply: Reply, timeout: float, words: str
) -> None:
    fake.script(reply)
    delivery = _deliver(fake, many(3), timeout=timeout)
    assert outcomes(delivery) == dict.fromkeys((1, 2, 3), Outcome.UNKNOWN)
    assert "the request was sent and no answer came" in delivery.reason
    assert words in delivery.reason
    assert delivery.halt is None and delivery.retry_after is None
    [request] = fake.requests
    assert len(request.body["personalizations"]) == 3


def test_nothing_listening_is_not_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SENDGRID_KEY", KEY)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        with SendgridProvider(_settings(f"http://127.0.0.1:{port}")) as provider:
            delivery = deliver(provider, many(2))
    assert outcomes(delivery) == {1: Outcome.NOT_DELIVERED, 2: Outcome.NOT_DELIVERED}
    assert "the request could not be sent (ConnectError" in delivery.reason
    assert delivery.halt is None


class _ResetAfterHeaders:
    """Reads a request's headers, then resets the connection without reading its body."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "_ResetAfterHeaders":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        received = b""
        while b"\r\n\r\n" not in received and (chunk := conn.recv(4096)):
            received += chunk
        self.heads.append(received.partition(b"\r\n\r\n")[0])
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


def test_a_request_not_fully_written_is_not_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SENDGRID_KEY", KEY)
    # Far more than the kernel's socket buffers hold, so the write is still under way.
    issue = sample_issue(html="<p>" + "teams that listen " * 1_000_000 + "</p>")
    with _ResetAfterHeaders() as server, SendgridProvider(_settings(server.url)) as provider:
        delivery = deliver(provider, many(2), issue)
    assert outcomes(delivery) == {1: Outcome.NOT_DELIVERED, 2: Outcome.NOT_DELIVERED}
    assert "the request could not be sent" in delivery.reason
    assert delivery.halt is None
    [head] = server.heads
    assert head.startswith(b"POST /v3/mail/send HTTP/1.1\r\n")


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_stops_the_send_with_sendgrids_words(fake: FakeSendGrid, status: int) -> None:
    fake.script(error_reply(status, "The provided authorization grant is invalid"))
    delivery = _deliver(fake, many(2))
    assert outcomes(delivery) == {1: Outcome.NOT_DELIVERED, 2: Outcome.NOT_DELIVERED}
    assert isinstance(delivery.halt, AuthenticationError)
    assert f"({status}): The provided authorization grant is invalid" in str(delivery.halt)
    assert delivery.halt.status == status
    assert "Mail Send permission" in str(delivery.halt)


def test_wrong_key_is_refused_by_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SENDGRID_KEY", "SG.wrong")
    with (
        FakeSendGrid(api_key=KEY) as server,
        SendgridProvider(_settings(server.url)) as provider,
    ):
        delivery = deliver(provider, [row(1, "a@example.com")])
    assert outcomes(delivery) == {1: Outcome.NOT_DELIVERED}
    assert isinstance(delivery.halt, AuthenticationError)
    assert "(401): The provided authorization" in str(delivery.halt)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "The from object must be provided for every email send."),
        (413, "The JSON payload you have included in your request is too large."),
    ],
)
def test_a_refused_message_stops_the_send_with_sendgrids_words(
    fake: FakeSendGrid, status: int, message: str
) -> None:
    fake.script(error_reply(status, message, "from"))
    delivery = _deliver(fake, many(3))
    assert outcomes(delivery) == dict.fromkeys((1, 2, 3), Outcome.NOT_DELIVERED)
    assert delivery.counts()[Outcome.REFUSED] == 0
    assert isinstance(delivery.halt, ProviderError)
    assert not isinstance(delivery.halt, AuthenticationError)
    assert f"({status}): {message} (field from)" in str(delivery.halt)


def test_a_refused_personalization_refuses_that_recipient_alone(fake: FakeSendGrid) -> None:
    fake.script(
        error_reply(400, "Does not contain a valid address.", "personalizations.1.to.0.email")
    )
    people = [
        row(1, "ann@example.com", "Ann"),
        row(2, "ANN@example.com", "Ann again"),  # left out of the request before it goes
        row(3, "bo@example", "Bo"),
        row(4, "cy@example.com", "Cy"),
    ]
    delivery = _deliver(fake, people)
    assert outcomes(delivery) == {
        1: Outcome.NOT_DELIVERED,
        2: Outcome.REFUSED,
        3: Outcome.REFUSED,
        4: Outcome.NOT_DELIVERED,
    }
    assert "Does not contain a valid address." in delivery.outcome_of(3)[1]
    assert "personalizations.1.to.0.email" in delivery.outcome_of(3)[1]
    assert delivery.retry_after == 0
    assert delivery.halt is None
    assert [p["to"][0]["email"] for p in fake.requests[0].body["personalizations"]] == [
        "ann@example.com",
        "bo@example",
        "cy@example.com",
    ]


def test_missing_api_key_variable_is_a_config_error_before_sending(
    fake: FakeSendGrid, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_SENDGRID_KEY")
    with pytest.raises(ConfigError, match="TEST_SENDGRID_KEY is not set"):
        SendgridProvider(_settings(fake.url)).open()
    assert fake.requests == []


# --- the checks and the retry policy themselves ---------------------------------------------


def test_schema_check_itself_rejects_what_sendgrid_would() -> None:
    require(SCHEMA_FILE)
    bad = {
        "personalizations": [{"to": [{"name": "no address"}]}],
        "from": {"email": "news@example.org"},
        "custom_args": {"issue_id": "x"},
    }
    with pytest.raises(pytest.fail.Exception) as caught:
        validate_against_schema(bad)
    assert "personalizations/0/to/0: 'email' is a required property" in str(caught.value)
    assert "custom_args: {'issue_id': 'x'} is not of type 'string'" in str(caught.value)


def test_backoff_grows_exponentially_with_full_jitter_under_the_cap() -> None:
    delays = list(backoff_delays(8, base=1.0, cap=10.0, rng=random.Random(7)))
    assert len(delays) == 7
    for attempt, delay in enumerate(delays):
        assert 0.0 <= delay <= min(10.0, 2**attempt)
    assert len(set(delays)) == 7
    assert list(backoff_delays(5, rng=random.Random(1))) == list(
        backoff_delays(5, rng=random.Random(1))
    )


def test_retry_waits_at_least_as_long_as_sendgrid_asks(fake: FakeSendGrid) -> None:
    fake.script(rate_limited(reset_in=20))
    delivery = _deliver(fake, [row(1, "a@example.com")])
    assert 15 <= retry_delay(0.5, delivery.retry_after) <= 21
    assert retry_delay(0.5, None) == 0.5
    assert retry_delay(30.0, 5.0) == 30.0
    assert retry_delay(0.5, 7200.0, cap=3600.0) == 3600.0
