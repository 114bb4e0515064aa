from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from newsletter.config import ProviderSettings, SmtpSettings
from newsletter.errors import AuthenticationError, ConfigError, TransientProviderError
from newsletter.providers import SmtpProvider, get_provider
from newsletter.send_models import Outcome
from newsletter.tokens import verify_token
from servers.samples import BASE, LIST_ID, SECRET, deliver, many, outcomes, row
from servers.smtp_sink import SmtpSink


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink(refuse={"nobody@example.com"}, defer={"later@example.com"}) as server:
        yield server


def _settings(server: SmtpSink | int, **changes: object) -> SmtpSettings:
    fields: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server if isinstance(server, int) else server.port,
        "connections": 3,
        "batch_size": 30,
        "timeout": 5.0,
    }
    fields.update(changes)
    return SmtpSettings(**fields)  # type: ignore[arg-type]


def _closed_port() -> int:
    """A port nothing listens on: connections to it are refused."""
    with SmtpSink() as server:
        return server.port


def test_each_recipient_gets_their_own_message(sink: SmtpSink) -> None:
    people = many(30)
    settings = ProviderSettings(type="smtp", smtp=_settings(sink))
    with get_provider(settings) as provider:
        assert (provider.max_batch_size, provider.workers) == (30, 3)
        delivery = deliver(provider, people)

    assert delivery.counts()[Outcome.ACCEPTED] == 30
    assert list(delivery.subscriber_ids) == [person[0] for person in people]
    assert delivery.halt is None
    received = sink.by_recipient()
    assert len(received) == 30
    assert len({item.peer_port for item in sink.received}) == 1  # one connection per instance
    for sid, address, name, _, _ in people:
        item = received[address]
        assert item.mail_from == "news@leading-together.example.org"
        message = item.message()
        first = name.split()[0]
        assert message["To"].addresses[0].addr_spec == address
        assert message["Subject"] == f"Issue #1 for {first}: leading together"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["X-Newsletter-Issue"] == "001-2026-11-24"
        assert f"Dear {first}," in message.get_body(("plain",)).get_content()
        assert f"<p>Dear {first},</p>" in message.get_body(("html",)).get_content()
        url = str(message["List-Unsubscribe"]).split(">")[0].lstrip("<")
        assert url.startswith(BASE)
        payload = verify_token(SECRET, url.removeprefix(BASE), {sid: address}.get)
        assert (payload.subscriber_id, payload.email, payload.list_id) == (sid, address, LIST_ID)


def test_instances_delivering_at_once_use_a_connection_each(sink: SmtpSink) -> None:
    people = many(30)
    settings = _settings(sink)
    providers = [SmtpProvider(settings) for _ in range(settings.connections)]
    with ThreadPoolExecutor(len(providers)) as pool:
        deliveries = list(
            pool.map(lambda n: deliver(providers[n], people[n * 10 : n * 10 + 10]), range(3))
        )
    for provider in providers:
        provider.close()
    assert [d.counts()[Outcome.ACCEPTED] for d in deliveries] == [10, 10, 10]
    assert set(sink.by_recipient()) == {person[1] for person in people}
    assert len({item.peer_port for item in sink.received}) == 3


def test_the_connection_is_reused_across_batches(sink: SmtpSink) -> None:
    with SmtpProvider(_settings(sink)) as provider:
        for start in (0, 10):
            batch = [row(n, f"r{n}@example.com", "R") for n in range(start, start + 10)]
            assert deliver(provider, batch).counts()[Outcome.ACCEPTED] == 10
    assert len(sink.received) == 20
    assert len({item.peer_port for item in sink.received}) == 1


def test_refused_recipient_is_refused_alone(sink: SmtpSink) -> None:
    people = [
        row(1, "ann@example.com", "Ann"),
        row(2, "nobody@example.com", "No Body"),
        row(3, "cy@example.com", "Cy"),
    ]
    with SmtpProvider(_settings(sink)) as provider:
        delivery = deliver(provider, people)
    assert outcomes(delivery) == {1: Outcome.ACCEPTED, 2: Outcome.REFUSED, 3: Outcome.ACCEPTED}
    assert delivery.outcome_of(2)[1] == "RCPT: 550 5.1.1 No such user here"
    assert delivery.halt is None
    assert set(sink.by_recipient()) == {"ann@example.com", "cy@example.com"}


def test_temporary_refusal_is_not_delivered_and_keeps_the_others(sink: SmtpSink) -> None:
    people = [
        row(1, "ann@example.com", "Ann"),
        row(2, "later@example.com", "L"),
        row(3, "cy@example.com", "Cy"),
    ]
    with SmtpProvider(_settings(sink)) as provider:
        delivery = deliver(provider, people)
    assert outcomes(delivery) == {
        1: Outcome.ACCEPTED,
        2: Outcome.NOT_DELIVERED,
        3: Outcome.ACCEPTED,
    }
    assert delivery.outcome_of(2)[1] == "RCPT: 451 4.7.1 Greylisted, try again later"
    assert delivery.halt is None
    assert set(sink.by_recipient()) == {"ann@example.com", "cy@example.com"}


def test_an_address_smtp_cannot_carry_is_refused_alone(sink: SmtpSink) -> None:
    people = [row(1, "ann@example.com", "Ann"), row(2, "zoë@exämple.com", "Zoë")]
    with SmtpProvider(_settings(sink)) as provider:
        delivery = deliver(provider, people)
    assert outcomes(delivery) == {1: Outcome.ACCEPTED, 2: Outcome.REFUSED}
    assert "non-ASCII" in delivery.outcome_of(2)[1]
    assert set(sink.by_recipient()) == {"ann@example.com"}


def test_login_then_send(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "right-password")
    with SmtpSink(username="mailer", password="right-password") as server:
        settings = _settings(server, username="mailer", password="${TEST_SMTP_PASSWORD}")
        with SmtpProvider(settings) as provider:
            delivery = deliver(provider, [row(1, "ann@example.com", "Ann")])
        assert outcomes(delivery) == {1: Outcome.ACCEPTED}
        assert set(server.by_recipient()) == {"ann@example.com"}


def test_refused_login_is_an_authentication_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong-password")
    with SmtpSink(username="mailer", password="right-password") as server:
        settings = _settings(server, username="mailer", password="${TEST_SMTP_PASSWORD}")
        with pytest.raises(AuthenticationError, match=r"refused the login of 'mailer': 535"):
            SmtpProvider(settings).open()
        assert server.received == []


def test_refused_login_stops_the_send(monkeypatch: pytest.MonkeyPatch) -> None:
    """An instance the send loop did not open itself connects on its first batch."""
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong-password")
    with SmtpSink(username="mailer", password="right-password") as server:
        settings = _settings(server, username="mailer", password="${TEST_SMTP_PASSWORD}")
        provider = SmtpProvider(settings)
        delivery = deliver(provider, many(2))
        provider.close()
        assert server.received == []
    assert outcomes(delivery) == {1: Outcome.NOT_DELIVERED, 2: Outcome.NOT_DELIVERED}
    assert isinstance(delivery.halt, AuthenticationError)
    assert "refused the login of 'mailer': 535" in str(delivery.halt)


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
    port = _closed_port()
    with pytest.raises(TransientProviderError, match=f"smtp 127.0.0.1:{port}: cannot connect"):
        SmtpProvider(SmtpSettings(host="127.0.0.1", port=port, timeout=2.0)).open()


def test_a_refused_connection_is_not_delivered_and_does_not_stop_the_send() -> None:
    port = _closed_port()
    provider = SmtpProvider(_settings(port))
    delivery = deliver(provider, many(3))
    provider.close()
    assert outcomes(delivery) == dict.fromkeys((1, 2, 3), Outcome.NOT_DELIVERED)
    assert f"smtp 127.0.0.1:{port}: cannot connect" in delivery.reason
    assert delivery.halt is None


def test_a_server_gone_between_batches_leaves_the_next_one_not_delivered() -> None:
    with SmtpSink() as server:
        provider = SmtpProvider(_settings(server))
        provider.open()
        first = deliver(provider, many(2))
    second = deliver(provider, [row(n, f"r{n}@example.com") for n in range(3, 6)])
    provider.close()
    assert first.counts()[Outcome.ACCEPTED] == 2
    assert outcomes(second) == dict.fromkeys((3, 4, 5), Outcome.NOT_DELIVERED)
    assert second.halt is None
    assert "cannot connect" in second.outcome_of(5)[1]
