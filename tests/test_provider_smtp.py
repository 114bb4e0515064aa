from collections.abc import Iterator

import pytest

from newsletter.config import ProviderSettings, SmtpSettings
from newsletter.errors import AuthenticationError, ConfigError, TransientProviderError
from newsletter.providers import SmtpProvider, get_provider
from newsletter.tokens import verify_token
from servers.samples import LIST_ID, SECRET, many, recipient, sample_issue
from servers.smtp_sink import SmtpSink


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink(refuse={"nobody@example.com"}, defer={"later@example.com"}) as server:
        yield server


def _settings(server: SmtpSink, **changes: object) -> SmtpSettings:
    fields: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "connections": 3,
        "timeout": 5.0,
    }
    fields.update(changes)
    return SmtpSettings(**fields)  # type: ignore[arg-type]


def test_many_recipients_across_connections_each_get_their_own_message(sink: SmtpSink) -> None:
    people = many(30)
    settings = ProviderSettings(type="smtp", smtp=_settings(sink))
    with get_provider(settings) as provider:
        results = provider.send(sample_issue(), people)

    assert [r.subscriber_id for r in results] == [p.subscriber_id for p in people]
    assert all(r.ok for r in results)
    received = sink.by_recipient()
    assert len(received) == 30
    assert len({item.peer_port for item in sink.received}) == 3
    for person in people:
        item = received[person.email]
        assert item.mail_from == "news@leading-together.example.org"
        message = item.message()
        first = person.name.split()[0]
        assert message["To"].addresses[0].addr_spec == person.email
        assert message["Subject"] == f"Issue #1 for {first}: leading together"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["X-Newsletter-Issue"] == "001-2026-11-24"
        assert f"Dear {first}," in message.get_body(("plain",)).get_content()
        assert f"<p>Dear {first},</p>" in message.get_body(("html",)).get_content()
        url = str(message["List-Unsubscribe"]).split(">")[0].lstrip("<")
        payload = verify_token(
            SECRET, url.split("t=", 1)[1], {person.subscriber_id: person.email}.get
        )
        assert (payload.subscriber_id, payload.email, payload.list_id) == (
            person.subscriber_id,
            person.email,
            LIST_ID,
        )


def test_connections_are_reused_across_batches(sink: SmtpSink) -> None:
    with SmtpProvider(_settings(sink, connections=2)) as provider:
        for start in (0, 10):
            batch = [recipient(n, f"r{n}@example.com", "R") for n in range(start, start + 10)]
            assert all(r.ok for r in provider.send(sample_issue(), batch))
    assert len(sink.received) == 20
    assert len({item.peer_port for item in sink.received}) == 2


def test_refused_recipient_is_reported_and_the_others_delivered(sink: SmtpSink) -> None:
    people = [
        recipient(1, "ann@example.com", "Ann"),
        recipient(2, "nobody@example.com", "No Body"),
        recipient(3, "cy@example.com", "Cy"),
    ]
    with SmtpProvider(_settings(sink, connections=1)) as provider:
        results = provider.send(sample_issue(), people)
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error == "550 5.1.1 No such user here"
    assert set(sink.by_recipient()) == {"ann@example.com", "cy@example.com"}


def test_temporary_refusal_is_transient_and_keeps_the_others(sink: SmtpSink) -> None:
    people = [recipient(1, "ann@example.com", "Ann"), recipient(2, "later@example.com", "L")]
    provider = SmtpProvider(_settings(sink, connections=1))
    with provider, pytest.raises(TransientProviderError, match=r"451 4\.7\.1 Greylisted") as caught:
        provider.send(sample_issue(), people)
    assert [r.subscriber_id for r in caught.value.results] == [1]  # type: ignore[attr-defined]
    assert set(sink.by_recipient()) == {"ann@example.com"}


def test_login_then_send(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "right-password")
    with SmtpSink(username="mailer", password="right-password") as server:
        settings = _settings(server, username="mailer", password="${TEST_SMTP_PASSWORD}")
        with SmtpProvider(settings) as provider:
            results = provider.send(sample_issue(), [recipient(1, "ann@example.com", "Ann")])
        assert results[0].ok
        assert set(server.by_recipient()) == {"ann@example.com"}


def test_refused_login_is_an_authentication_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong-password")
    with SmtpSink(username="mailer", password="right-password") as server:
        settings = _settings(server, username="mailer", password="${TEST_SMTP_PASSWORD}")
        with pytest.raises(AuthenticationError, match=r"refused the login of 'mailer': 535"):
            SmtpProvider(settings).open()
        assert server.received == []


def test_missing_password_variable_is_a_config_error_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TEST_SMTP_PASSWORD", raising=False)
    settings = SmtpSettings(
        host="127.0.0.1", port=9, username="mailer", password="${TEST_SMTP_PASSWORD}"
    )
    with pytest.raises(ConfigError, match="TEST_SMTP_PASSWORD is not set"):
        SmtpProvider(settings).open()


def test_unreachable_server_is_transient() -> None:
    with SmtpSink() as server:
        port = server.port
    with pytest.raises(TransientProviderError, match=f"smtp 127.0.0.1:{port}: cannot connect"):
        SmtpProvider(SmtpSettings(host="127.0.0.1", port=port, timeout=2.0)).open()
