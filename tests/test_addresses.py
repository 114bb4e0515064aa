"""One check for a recipient: what import and add accept, every transport can carry."""

from __future__ import annotations

import email.policy
from email.utils import parseaddr

import pytest
from email_validator import EmailNotValidError, validate_email

from newsletter.addresses import (
    MAX_NAME,
    check_attributes,
    check_name,
    check_recipient,
    normalise_address,
    refusals,
    sendgrid_name,
)
from newsletter.errors import InvalidAddress, InvalidRecipient
from newsletter.store import subscribers


def test_a_non_ascii_mailbox_is_refused_with_what_to_do() -> None:
    with pytest.raises(InvalidAddress) as caught:
        normalise_address("josé@example.org")
    assert caught.value.message == (
        "josé@example.org: the part before @ has non-ASCII characters (é); newsletter sends "
        "only to ASCII mailboxes, ask the person for another address"
    )
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("ann@bücher.de", "ann@xn--bcher-kva.de"),
        ("ANN@BÜCHER.DE", "ANN@xn--bcher-kva.de"),
        ("ann@xn--bcher-kva.de", "ann@xn--bcher-kva.de"),
        ("  Ann.Lee@Example.ORG ", "Ann.Lee@example.org"),
    ],
)
def test_addresses_are_stored_in_the_form_every_transport_carries(given: str, stored: str) -> None:
    assert normalise_address(given) == stored


def test_the_store_uses_the_same_function() -> None:
    assert subscribers.normalise_address is normalise_address


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("Eve\r\nBcc: all@example.com", "a line break (CR or LF)"),
        ("Eve\nSmith", "a line break (CR or LF)"),
        ("Eve\tSmith", "a tab"),
        ("Eve\x00Smith", "a NUL character (U+0000)"),
        ("Eve\x7fSmith", "a DEL character (U+007F)"),
        ("Eve\x85Smith", "a control character (U+0085)"),
        ("Eve\u2028Smith", "a line separator (U+2028)"),
    ],
)
def test_a_name_with_a_control_character_is_refused_naming_it(name: str, what: str) -> None:
    with pytest.raises(InvalidRecipient) as caught:
        check_name(name)
    assert caught.value.message == (
        f"the name {name!r} contains {what}, which an e-mail header cannot carry; correct the name"
    )


@pytest.mark.parametrize(
    "name", ["Okafor, Ben", 'Ben "The Pen" Okafor', "Ben; Okafor", "José Núñez", "O'Brien (CFO)"]
)
def test_punctuation_and_accents_are_fine_in_a_name(name: str) -> None:
    assert check_name(f"  {name} ") == name


def test_a_name_over_the_limit_is_refused() -> None:
    assert check_name("x" * MAX_NAME) == "x" * MAX_NAME
    with pytest.raises(InvalidRecipient, match="257 characters long; at most 256"):
        check_name("x" * (MAX_NAME + 1))


def test_check_recipient_names_the_address_of_a_bad_name() -> None:
    assert check_recipient("Ann@Bücher.de", " Ann ") == ("Ann@xn--bcher-kva.de", "Ann")
    with pytest.raises(
        InvalidRecipient, match=r"^ann@example.org: the name 'A\\tB' contains a tab"
    ):
        check_recipient("ann@example.org", "A\tB")
    with pytest.raises(InvalidAddress, match="part before @ has non-ASCII"):
        check_recipient("josé@example.org", "José")


def test_an_attribute_that_could_break_the_subject_is_refused() -> None:
    assert check_attributes({"team": "Ops, North"}) == {"team": "Ops, North"}
    with pytest.raises(InvalidRecipient) as caught:
        check_attributes({"team": "Ops\r\nBcc: x@example.com"})
    assert caught.value.message == (
        "the attribute 'team' ('Ops\\r\\nBcc: x@example.com') contains a line break (CR or "
        "LF); attributes can be merged into the subject, which must stay on one line, so "
        "correct the value"
    )


def test_refusals_returns_only_the_refused_rows_with_their_reason() -> None:
    rows = [(n, f"person{n}@example.org", f"Person {n}") for n in range(1, 1001)]
    assert refusals(rows) == {}
    rows[4] = (5, "josé@example.org", "José")
    rows[9] = (10, "eve@example.org", "Eve\r\nBcc: all@example.com")
    rows[19] = (20, "zoe@example.org", "Zoë Ångström, PhD")  # fine: encoded by the writers
    rows[29] = (30, "ann@bücher.de", "Ann")  # kept in Unicode form before these checks
    rows[39] = (40, "two@@example.org", "Two")
    rows[49] = (50, "long@example.org", "x" * 300)
    found = refusals(iter(rows))
    assert sorted(found) == [5, 10, 30, 40, 50]
    assert found[5].startswith("josé@example.org: the part before @ has non-ASCII")
    assert found[10].startswith("eve@example.org: the name 'Eve\\r\\nBcc: all@example.com'")
    assert found[30] == (
        "ann@bücher.de is stored in a form the transports cannot carry (it should be "
        "ann@xn--bcher-kva.de); remove the subscriber and add them again"
    )
    assert "'two@@example.org' is not a valid e-mail address" in found[40]
    assert found[50].endswith(
        "the name is 300 characters long; at most 256 fit in a header, shorten it"
    )
    assert refusals([]) == {}


def test_a_batch_that_is_not_plain_gets_the_full_check_per_row() -> None:
    rows = [
        (1, "a@example.org", "Ann"),
        (2, "b@example.org", "B\x00"),
        (3, "c@example.org", "Zoë\u00a0Z"),  # a no-break space: printable enough for a header
        (4, "d@example.org ", "D"),  # a space cannot be written in a RCPT command
        (5, "not-an-address", "E"),
        (6, "Ann.Lee+news@Sub.Example.ORG", "Ann"),
    ]
    assert sorted(refusals(rows)) == [2, 4, 5]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Ben Okafor", "Ben Okafor"),
        ("José", "José"),
        ("Okafor, Ben", '"Okafor, Ben"'),
        ("Ben; Okafor", '"Ben; Okafor"'),
        ('Ben "The Pen" Okafor', '"Ben \\"The Pen\\" Okafor"'),
        ("Ben O. Okafor", '"Ben O. Okafor"'),
        ("Back\\slash", '"Back\\\\slash"'),
        ("Núñez, José", '"Núñez, José"'),
    ],
)
def test_sendgrid_name_quotes_what_sendgrid_would_split(name: str, value: str) -> None:
    assert sendgrid_name(name) == value
    written = f"{value} <ben@example.org>"
    assert parseaddr(written) == (name, "ben@example.org")
    header = email.policy.default.header_factory("To", written)
    assert header.addresses[0].display_name == name  # type: ignore[attr-defined]
    assert header.addresses[0].addr_spec == "ben@example.org"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "name", ["Ben\nOkafor", "Ben\r\nBcc: x@example.org", "\x00", "", "  ", "x" * 300]
)
def test_sendgrid_name_drops_a_name_no_header_can_carry(name: str) -> None:
    assert sendgrid_name(name) is None


EDGE_ADDRESSES = [
    "ann@example.org", "Ann.Lee@Example.ORG", "ann@bücher.de", "ann@BÜCHER.de",
    "postmaster@example.org", "PostMaster@example.org", "abuse@Example.org",
    "a.b-c_d+e!#$%&'*/=?^`{|}~@example.org", ".ann@example.org", "ann.@example.org",
    "an..n@example.org", "ann@localhost", "ann@example", "ann@example.local",
    "ann@example.invalid", "ann@-bad.example.org", "ann@bad-.example.org", "ann@123.456",
    "ann@exa_mple.org", "ann@@example.org", "a@b@example.org", "ann @example.org",
    '"ann"@example.org', "Ann <ann@example.org>", "ann@[127.0.0.1]", "x" * 64 + "@example.org",
    "x" * 65 + "@example.org", "x" * 64 + "@" + "d" * 63 + "." + "e" * 63 + "." + "f" * 60 + ".org",
    "ann@" + "d" * 64 + ".org", "ann@example.org.", "ann@.example.org", "ann@xn--bcher-kva.de",
    "ann@xn--zz.de", "ann@ex ample.org",
]  # fmt: skip


@pytest.mark.parametrize("address", EDGE_ADDRESSES)
def test_the_cached_domain_check_agrees_with_email_validator(address: str) -> None:
    """``normalise_address`` checks a plain mailbox itself and caches domains; the result
    (or the refusal) must be what email_validator alone gives."""
    try:
        checked = validate_email(address, check_deliverability=False, allow_smtputf8=False)
        expected: str | None = checked.ascii_email
    except EmailNotValidError:
        expected = None
    try:
        got: str | None = normalise_address(address)
    except InvalidAddress:
        got = None
    assert got == expected
