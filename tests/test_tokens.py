import base64
from collections.abc import Callable

import pytest

from newsletter.errors import TokenError
from newsletter.tokens import TokenPayload, TokenSigner, make_token, varint, verify_token
from servers.legacy_tokens import make_v1_token, make_v2_token, make_v3_token

SECRET = "s3cret-value"
INVALID = "this unsubscribe link is not valid; it may be incomplete or altered"
ANN = {123: "ann@example.org"}.get
V1_ANN = "AQAAAAAAAAB7bWVtYmVycwBhbm5AZXhhbXBsZS5vcmcpj8EV2j0uW6hwnsnG4ho22CkJfYcRSwjY5I7CL1iZsg"
"""make_token(SECRET, 123, "ann@example.org", "members") before version 2."""
V3_ANN = "A3sEnWCmsvJsAhkOJ3GZDGBQlA"
"""make_token(SECRET, 123, "ann@example.org", 4) of version 3, as links already sent carry it."""
LONG_SECRET = "x" * 100
V3_LONG_SECRET = "A8CEPQQ0-_ZnzQFgETW_ZG6myH8U"
"""The same of version 3 for subscriber 10**6 and a secret longer than a hash block."""


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _flip(token: str, bit: int) -> str:
    raw = bytearray(_raw(token))
    raw[bit // 8] ^= 1 << bit % 8
    return _text(bytes(raw))


def _refusal(token: str, email_of: Callable[[int], str | None] = ANN, secret: str = SECRET) -> str:
    with pytest.raises(TokenError) as caught:
        verify_token(secret, token, email_of)
    return str(caught.value)


def test_round_trip_gives_back_what_was_signed() -> None:
    token = make_token(SECRET, 123, "ann@example.org", 4)
    assert verify_token(SECRET, token, ANN) == TokenPayload(123, "ann@example.org", 4, None)


def test_verifying_asks_for_the_address_of_the_id_in_the_token() -> None:
    asked: list[int] = []

    def email_of(subscriber_id: int) -> str | None:
        asked.append(subscriber_id)
        return "ann@example.org"

    verify_token(SECRET, make_token(SECRET, 10**9, "ann@example.org", 1), email_of)
    assert asked == [10**9]


@pytest.mark.parametrize("subscriber_id", [0, 1, 127, 128, 2**14, 10**6, 2**40, 2**63 - 1])
def test_token_is_url_safe_without_padding(subscriber_id: int) -> None:
    token = make_token(SECRET, subscriber_id, "ünïcode@exämple.org", 300)
    assert token.isascii() and token.replace("-", "").replace("_", "").isalnum()
    payload = verify_token(SECRET, token, {subscriber_id: "ünïcode@exämple.org"}.get)
    assert (payload.subscriber_id, payload.list_id) == (subscriber_id, 300)


def test_tokens_differ_per_subscriber_list_and_address() -> None:
    tokens = {
        make_token(SECRET, 1, "a@example.org", 1),
        make_token(SECRET, 2, "a@example.org", 1),
        make_token(SECRET, 1, "a@example.org", 2),
        make_token(SECRET, 1, "b@example.org", 1),
    }
    assert len(tokens) == 4


def test_the_token_holds_ids_and_a_mac_and_nothing_of_the_address() -> None:
    email = "ann.lee@example.org"
    token = make_token(SECRET, 10**6, email, 7)
    raw = _raw(token)
    assert raw[:1] == b"\x04"
    assert raw[1:-16] == varint(10**6) + varint(7)
    assert len(raw) == 1 + len(varint(10**6)) + len(varint(7)) + 16
    for text in (raw.decode("latin-1"), token, token.lower()):
        for part in (email, "ann.lee", "example.org", "ann", "lee"):
            assert part not in text


@pytest.mark.parametrize("subscriber_id", [1, 10**6, 10**9])
@pytest.mark.parametrize("list_id", [1, 10**4])
def test_tokens_are_short(subscriber_id: int, list_id: int) -> None:
    token = make_token(SECRET, subscriber_id, "firstname.lastname@example.org", list_id)
    assert len(token) < 40
    if subscriber_id <= 10**6 and list_id < 128:
        assert len(token) <= 28


@pytest.mark.parametrize("prefix", ["", "https://example.org/unsubscribe/"])
@pytest.mark.parametrize(
    "subscriber_ids",
    [
        list(range(10**6, 10**6 + 1000)),
        [0, 1, 2, 127],
        list(range(16_370, 16_400)),  # across the step from two-byte to three-byte varints
        [2**21 + 5, 3, 2**35, 77],
        [2**56 - 1, 2**56, 2**63 - 1],
        [42],
    ],
    ids=["a thousand", "small", "across 2**14", "unordered", "large", "one"],
)
@pytest.mark.parametrize("list_id", [0, 1, 200, 10**4, 2**40])
def test_make_many_equals_make_for_every_element(
    subscriber_ids: list[int], list_id: int, prefix: str
) -> None:
    signer = TokenSigner(SECRET)
    emails = [f"reader{n}@exämple.org" for n in range(len(subscriber_ids))]
    many = signer.make_many(subscriber_ids, emails, list_id, prefix=prefix)
    one_by_one = [
        prefix + signer.make(subscriber_id, email, list_id)
        for subscriber_id, email in zip(subscriber_ids, emails, strict=True)
    ]
    assert many == one_by_one


@pytest.mark.parametrize(
    ("secret", "subscriber_id", "token"),
    [(SECRET, 123, V3_ANN), (LONG_SECRET, 10**6, V3_LONG_SECRET)],
    ids=["short secret", "secret longer than a block"],
)
def test_links_of_version_3_already_sent_still_verify_and_leave_their_list(
    secret: str, subscriber_id: int, token: str
) -> None:
    assert make_v3_token(secret, subscriber_id, "ann@example.org", 4) == token
    email_of = {subscriber_id: "ann@example.org"}.get
    payload = verify_token(secret, token, email_of)
    assert payload == TokenPayload(subscriber_id, "ann@example.org", 4, None)
    assert (payload.version, payload.leaves_everything) == (3, False)
    assert _refusal(token, {subscriber_id: "bo@example.org"}.get, secret) == INVALID


def test_new_tokens_are_version_4_and_only_version_2_leaves_everything() -> None:
    current = verify_token(SECRET, make_token(SECRET, 123, "ann@example.org", 4), ANN)
    v2 = verify_token(SECRET, make_v2_token(SECRET, 123, "ann@example.org", 4), ANN)
    assert (current.version, current.leaves_everything) == (4, False)
    assert (v2.version, v2.leaves_everything) == (2, True)


def test_make_many_checks_its_input() -> None:
    signer = TokenSigner(SECRET)
    assert signer.make_many([], [], 1) == []
    with pytest.raises(ValueError, match="one address per subscriber id"):
        signer.make_many([1, 2], ["a@example.org"], 1)
    with pytest.raises(ValueError, match="out of range"):
        signer.make_many([1, -1], ["a@example.org", "b@example.org"], 1)
    with pytest.raises(ValueError, match="out of range"):
        signer.make(2**63, "a@example.org", 1)
    with pytest.raises(ValueError, match="out of range"):
        signer.make(1, "a@example.org", -1)


def test_every_refusal_has_one_message_that_names_nobody() -> None:
    token = make_token(SECRET, 123, "ann@example.org", 4)
    v1 = make_v1_token(SECRET, 123, "ann@example.org", "members")
    raw = _raw(token)
    overlong = b"\x02" + bytes((123 | 0x80, 0)) + b"\x04" + raw[-16:]
    refused = {
        **{f"bit {bit} flipped": _flip(token, bit) for bit in range(8 * len(raw))},
        **{f"v1 bit {bit} flipped": _flip(v1, bit) for bit in range(0, 8 * len(_raw(v1)), 7)},
        **{f"cut by {cut}": token[:-cut] for cut in range(1, len(token))},
        **{f"v1 cut by {cut}": v1[:-cut] for cut in (1, 10, 43, 60)},
        "one character more": token + "A",
        "a byte more": _text(raw + b"\x00"),
        "unknown version": _text(b"\x05" + raw[1:]),
        "version 3 with the MAC of version 4": _text(b"\x03" + raw[1:]),
        "version 2 with the MAC of version 4": _text(b"\x02" + raw[1:]),
        "version 4 with the MAC of version 3": _text(b"\x04" + _raw(V3_ANN)[1:]),
        "version 2 with the MAC of version 3": _text(b"\x02" + _raw(V3_ANN)[1:]),
        "overlong varint": _text(overlong),
        "MAC of another subscriber": _text(raw[:-16] + _raw(make_token(SECRET, 124, "x", 4))[-16:]),
        **{f"garbage {text!r}": text for text in ["", "x", "not a token!", "====", "é" * 20]},
        "AAAA": "AAAA" * 30,
        "not base64": "%3Cscript%3E",
    }
    messages = {name: _refusal(bad) for name, bad in refused.items()}
    messages["another secret"] = _refusal(token, secret="another-secret")
    messages["v1, another secret"] = _refusal(v1, secret="another-secret")
    messages["deleted subscriber"] = _refusal(token, email_of={}.get)
    messages["id reused for another address"] = _refusal(token, {123: "bo@example.org"}.get)
    messages["v1, deleted subscriber"] = _refusal(v1, email_of={}.get)
    messages["v1, id reused for another address"] = _refusal(v1, {123: "bo@example.org"}.get)
    assert set(messages.values()) == {INVALID}


def test_a_version_1_token_still_verifies_with_its_list_name() -> None:
    assert make_v1_token(SECRET, 123, "ann@example.org", "members") == V1_ANN
    payload = verify_token(SECRET, V1_ANN, ANN)
    assert payload == TokenPayload(123, "ann@example.org", None, "members")
    unicode = make_v1_token(SECRET, 2**40, "ünïcode@exämple.org", "list-a")
    assert verify_token(SECRET, unicode, {2**40: "ünïcode@exämple.org"}.get).list_name == "list-a"


def test_version_1_is_refused_like_any_bad_token_once_its_period_is_over() -> None:
    assert verify_token(SECRET, V1_ANN, ANN).subscriber_id == 123
    with pytest.raises(TokenError) as caught:
        verify_token(SECRET, V1_ANN, ANN, accept_v1=False)
    assert str(caught.value) == INVALID
    current = make_token(SECRET, 123, "ann@example.org", 1)
    assert verify_token(SECRET, current, ANN, accept_v1=False).subscriber_id == 123
