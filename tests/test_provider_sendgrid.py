import random
import time
from collections.abc import Iterator

import pytest

from newsletter.config import ProviderSettings, SendgridSettings
from newsletter.errors import (
    AuthenticationError,
    ConfigError,
    ProviderError,
    TransientProviderError,
)
from newsletter.providers import SendgridProvider, backoff_delays, get_provider, retry_delay
from servers.samples import many, recipient, sample_issue
from servers.sendgrid_fake import (
    FakeSendGrid,
    Reply,
    error_reply,
    rate_limited,
    validate_against_schema,
)

KEY = "SG.test-key"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSendGrid]:
    monkeypatch.setenv("TEST_SENDGRID_KEY", KEY)
    with FakeSendGrid(api_key=KEY) as server:
        yield server
        for request in server.requests:
            validate_against_schema(request.body)


def _settings(fake: FakeSendGrid, **changes: object) -> SendgridSettings:
    fields: dict[str, object] = {
        "api_key": "${TEST_SENDGRID_KEY}",
        "host": fake.url,
        "timeout": 2.0,
        "categories": ["newsletter"],
    }
    fields.update(changes)
    return SendgridSettings(**fields)  # type: ignore[arg-type]


def _one(fake: FakeSendGrid, **changes: object) -> dict:
    with SendgridProvider(_settings(fake, **changes)) as provider:
        results = provider.send(sample_issue(), [recipient(1, "ann@example.com", "Ann Smith")])
    assert results[0].ok
    [request] = fake.requests
    return request.body


def test_a_thousand_recipients_go_in_one_schema_valid_request(fake: FakeSendGrid) -> None:
    people = many(1000)
    settings = ProviderSettings(type="sendgrid", sendgrid=_settings(fake))
    with get_provider(settings) as provider:
        assert provider.max_batch_size == 1000
        results = provider.send(sample_issue(), people)

    assert len(fake.requests) == 1
    request = fake.requests[0]
    assert request.path == "/v3/mail/send"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    validate_against_schema(request.body)
    message_ids = {r.provider_id for r in results}
    assert len(message_ids) == 1 and None not in message_ids
    assert all(r.ok for r in results)
    assert [r.subscriber_id for r in results] == list(range(1, 1001))

    body = request.body
    assert len(body["personalizations"]) == 1000
    assert body["subject"] == "Issue #1 for %%first_name|friends%%: leading together"
    assert body["from"] == {
        "email": "news@leading-together.example.org",
        "name": "Leading Together",
    }
    assert body["reply_to"] == {"email": "editor@leading-together.example.org"}
    assert [part["type"] for part in body["content"]] == ["text/plain", "text/html"]
    assert "Dear %%first_name|reader%%," in body["content"][0]["value"]
    assert "Dear %%html:first_name|reader%%," in body["content"][1]["value"]
    assert body["categories"] == ["001-2026-11-24", "newsletter", "weekly"]
    assert "custom_args" not in body
    assert "asm" not in body and "mail_settings" not in body

    seventh = body["personalizations"][6]
    person = people[6]
    assert seventh["to"] == [{"email": "reader7@example.com", "name": "Reader 7"}]
    assert seventh["custom_args"] == {"issue_id": "001-2026-11-24", "subscriber_id": "7"}
    assert seventh["substitutions"] == {
        "%%first_name|friends%%": "Reader",
        "%%first_name|reader%%": "Reader",
        "%%unsubscribe_url%%": person.unsubscribe_url,
        "%%html:first_name|reader%%": "Reader",
        "%%html:unsubscribe_url%%": person.unsubscribe_url,
    }
    assert seventh["headers"] == {
        "List-Unsubscribe": f"<{person.unsubscribe_url}>, "
        "<mailto:unsubscribe@leading-together.example.org?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    addresses = [p["to"][0]["email"] for p in body["personalizations"]]
    assert len(set(addresses)) == 1000


def test_values_are_escaped_for_html_only(fake: FakeSendGrid) -> None:
    with SendgridProvider(_settings(fake)) as provider:
        provider.send(sample_issue(), [recipient(1, "t@example.com", "<b>Tom</b> & Co")])
    substitutions = fake.requests[0].body["personalizations"][0]["substitutions"]
    assert substitutions["%%first_name|reader%%"] == "<b>Tom</b>"
    assert substitutions["%%html:first_name|reader%%"] == "&lt;b&gt;Tom&lt;/b&gt;"


def test_sandbox_and_unsubscribe_group_appear_when_configured(fake: FakeSendGrid) -> None:
    body = _one(fake, sandbox=True, asm_group_id=4242)
    assert body["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert body["asm"] == {"group_id": 4242}


def test_duplicate_address_is_left_out_of_the_request(fake: FakeSendGrid) -> None:
    with SendgridProvider(_settings(fake)) as provider:
        results = provider.send(
            sample_issue(), [recipient(1, "a@example.com"), recipient(2, "A@example.com")]
        )
    assert [r.ok for r in results] == [True, False]
    assert len(fake.requests[0].body["personalizations"]) == 1


def test_rate_limit_is_transient_with_retry_after(fake: FakeSendGrid) -> None:
    fake.script(rate_limited(reset_in=30))
    provider = SendgridProvider(_settings(fake))
    with (
        provider,
        pytest.raises(TransientProviderError, match=r"rate limit reached \(429\)") as caught,
    ):
        provider.send(sample_issue(), [recipient(1, "a@example.com")])
    assert caught.value.status == 429
    assert 25 <= caught.value.retry_after <= 31


def test_server_error_is_transient(fake: FakeSendGrid) -> None:
    fake.script(error_reply(500, "Internal error"))
    provider = SendgridProvider(_settings(fake))
    with (
        provider,
        pytest.raises(TransientProviderError, match=r"server error \(500\): Internal error"),
    ):
        provider.send(sample_issue(), [recipient(1, "a@example.com")])


def test_slow_reply_is_transient(fake: FakeSendGrid) -> None:
    fake.script(Reply(delay=3.0))
    started = time.monotonic()
    provider = SendgridProvider(_settings(fake, timeout=0.3))
    with provider, pytest.raises(TransientProviderError, match="no answer"):
        provider.send(sample_issue(), [recipient(1, "a@example.com")])
    assert time.monotonic() - started < 2.5


def test_dropped_connection_is_transient(fake: FakeSendGrid) -> None:
    fake.script(Reply(drop=True))
    provider = SendgridProvider(_settings(fake))
    with provider, pytest.raises(TransientProviderError, match="no answer"):
        provider.send(sample_issue(), [recipient(1, "a@example.com")])


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_is_an_authentication_error_with_sendgrids_words(
    fake: FakeSendGrid, status: int
) -> None:
    fake.script(error_reply(status, "The provided authorization grant is invalid"))
    provider = SendgridProvider(_settings(fake))
    with provider, pytest.raises(AuthenticationError) as caught:
        provider.send(sample_issue(), [recipient(1, "a@example.com")])
    assert f"({status}): The provided authorization grant is invalid" in str(caught.value)
    assert caught.value.status == status


def test_wrong_key_is_refused_by_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SENDGRID_KEY", "SG.wrong")
    with FakeSendGrid(api_key=KEY) as server:
        settings = SendgridSettings(api_key="${TEST_SENDGRID_KEY}", host=server.url)
        provider = SendgridProvider(settings)
        with (
            provider,
            pytest.raises(AuthenticationError, match=r"\(401\): The provided authorization"),
        ):
            provider.send(sample_issue(), [recipient(1, "a@example.com")])


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "The from object must be provided for every email send."),
        (413, "The JSON payload you have included in your request is too large."),
    ],
)
def test_refused_request_is_a_provider_error_with_sendgrids_words(
    fake: FakeSendGrid, status: int, message: str
) -> None:
    fake.script(error_reply(status, message, "from"))
    with SendgridProvider(_settings(fake)) as provider, pytest.raises(ProviderError) as caught:
        provider.send(sample_issue(), [recipient(1, "a@example.com")])
    assert not isinstance(caught.value, TransientProviderError | AuthenticationError)
    assert f"({status}): {message} (field from)" in str(caught.value)


def test_missing_api_key_variable_is_a_config_error_before_sending(
    fake: FakeSendGrid, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_SENDGRID_KEY")
    with pytest.raises(ConfigError, match="TEST_SENDGRID_KEY is not set"):
        SendgridProvider(_settings(fake)).open()
    assert fake.requests == []


def test_later_batches_reuse_the_prepared_issue(fake: FakeSendGrid) -> None:
    issue = sample_issue()
    with SendgridProvider(_settings(fake, batch_size=2)) as provider:
        people = many(4)
        provider.send(issue, people[:2])
        provider.send(issue, people[2:])
    assert [len(r.body["personalizations"]) for r in fake.requests] == [2, 2]
    assert fake.requests[0].body["content"] == fake.requests[1].body["content"]


def test_schema_check_itself_rejects_what_sendgrid_would() -> None:
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
    provider = SendgridProvider(_settings(fake))
    with provider, pytest.raises(TransientProviderError) as caught:
        provider.send(sample_issue(), [recipient(1, "a@example.com")])
    assert 15 <= retry_delay(0.5, caught.value) <= 21
    assert retry_delay(0.5, TransientProviderError("server error")) == 0.5
