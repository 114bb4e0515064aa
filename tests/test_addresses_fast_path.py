"""The fast way through ``normalise_address`` gives email_validator's own verdict.

An import checks a million addresses, so plain ones skip most of email_validator (see
``addresses._plain_address``). These tests hold the two ways together on many addresses
made to sit on the edges the fast way decides: characters, dots, case, special mailboxes,
internationalised and refused domains, lengths around the limits.
"""

from __future__ import annotations

import random
import string

import pytest

from newsletter.addresses import _fully_checked, _plain_address, normalise_address
from newsletter.errors import InvalidAddress

_ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
_ODD = ' ."()<>[]:;@\\,\t'
_MAILBOXES = ["postmaster", "Postmaster", "ABUSE", "abuse", "hostmaster", "noc", "webmaster"]
_DOMAINS = [
    "example.org",
    "Example.ORG",
    "mail.example.co.uk",
    "bücher.de",
    "BÜCHER.DE",
    "xn--bcher-kva.de",
    "xn--zz.de",
    "例え.テスト",
    "example",
    "example.org.",
    ".example.org",
    "exa..mple.org",
    "-example.org",
    "example-.org",
    "ex_ample.org",
    "example.123",
    "localhost",
    "example.invalid",
    "mail.local",
    "[192.0.2.1]",
    "192.0.2.1",
    "a" * 63 + ".org",
    "a" * 64 + ".org",
    ".".join(["abcdefghi"] * 24) + ".org",
    "exam ple.org",
    "example.org>",
    "ex\u200bample.org",
    "ｅｘａｍｐｌｅ.org",
]


def _mailbox(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.1:
        return rng.choice(_MAILBOXES)
    if kind > 0.6:  # dot-atoms, the plain kind, up to and past the length limits
        atoms = rng.randint(1, 12)
        return ".".join(
            "".join(rng.choice(_ATEXT) for _ in range(rng.randint(1, 30))) for _ in range(atoms)
        )
    length = rng.choice([1, 2, 5, 10, 30, 63, 64, 65, 120, 200, 240])
    alphabet = _ATEXT + "." * 6 + (_ODD if kind < 0.3 else "") + ("é" if kind < 0.35 else "")
    return "".join(rng.choice(alphabet) for _ in range(length))


def _addresses(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        mailbox, domain = _mailbox(rng), rng.choice(_DOMAINS)
        joint = rng.choice(["@"] * 8 + ["@@", ""])
        made.append(f"{mailbox}{joint}{domain}")
    return made


def _full_verdict(address: str) -> str:
    try:
        return _fully_checked(address)
    except InvalidAddress:
        return "refused"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fast_way_returns_what_email_validator_returns(seed: int) -> None:
    taken = 0
    for address in _addresses(4000, seed):
        mailbox, at, domain = address.rpartition("@")
        if not at:
            continue
        fast = _plain_address(address, mailbox, domain)
        if fast is None:
            continue  # the full check decides; nothing to compare
        taken += 1
        assert fast == _full_verdict(address), address
    assert taken > 400  # the generated addresses do reach the fast way


@pytest.mark.parametrize(
    "address",
    [
        "person.5@mail5.example.org",
        "Person.5@Mail5.Example.ORG",
        "zoe.7@bücher7.example",
        "a" * 64 + "@example.org",
        "a" * 240 + "@example.org",
        "a" * 243 + "@example.org",
        "a" * 244 + "@example.org",
        "Postmaster@example.org",
        ".ann@example.org",
        "ann.@example.org",
        "an..n@example.org",
        "ann@example.org.",
        "ann@[192.0.2.1]",
        '"ann lee"@example.org',
        "ann@localhost",
    ],
)
def test_normalise_address_agrees_with_email_validator_on_the_edges(address: str) -> None:
    try:
        given = normalise_address(address)
    except InvalidAddress:
        given = "refused"
    assert given == _full_verdict(address)
