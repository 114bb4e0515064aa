"""Bad-input catalogue, the web endpoint: forged, garbled and truncated unsubscribe tokens,
wrong methods, oversize bodies and paths outside the archive, sent over HTTP to the real
app. Each gets its status and a page that says what is wrong, and nobody's status, no
ledger row and no file changes."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import build_first_issue, import_members, make_sample_project
from disk_state import assert_unchanged, project_state
from newsletter.tokens import make_token
from servers.web_app import add_subscriber, running_app

INVALID = "This unsubscribe link is not valid"
NOT_FOUND = "There is nothing at this address"
NOT_ALLOWED = "Method Not Allowed"
ONE_CLICK = b"List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class Served:
    config: Path
    client: httpx.Client
    token: str
    """A genuine token of a subscribed reader, which each case spoils its own way."""


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[Served]:
    monkeypatch_module.setenv("NEWSLETTER_SECRET", "catalogue-secret")
    config = build_first_issue(import_members(make_sample_project(tmp_path_factory.mktemp("web"))))
    _, token = add_subscriber(config, "ada@example.org", "Ada")
    with running_app(config) as client:
        yield Served(config, client, token)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def flipped(token: str, index: int) -> str:
    """``token`` with one bit of its ``index``-th byte changed (negative: from the end)."""
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[index] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def other_secret(token: str) -> str:
    return make_token("another-secret", 26, "ada@example.org", 1)


Spoil = Callable[[str], str]
CASES = [
    pytest.param(method, spoil, body, status, says, id=broken)
    for broken, method, spoil, body, status, says in [
        ("garbage token, get", "GET", lambda t: "/unsubscribe/not-a-token", b"", 400, INVALID),
        ("garbage token, one-click", "POST", lambda t: "/unsubscribe/not-a-token", ONE_CLICK,
         400, INVALID),
        ("truncated token, get", "GET", lambda t: f"/unsubscribe/{t[:-4]}", b"", 400, INVALID),
        ("truncated token, one-click", "POST", lambda t: f"/unsubscribe/{t[:-4]}", ONE_CLICK,
         400, INVALID),
        ("half a token", "POST", lambda t: f"/unsubscribe/{t[: len(t) // 2]}", ONE_CLICK, 400,
         INVALID),
        ("forged mac", "POST", lambda t: f"/unsubscribe/{flipped(t, -1)}", ONE_CLICK, 400,
         INVALID),
        ("forged subscriber id", "POST", lambda t: f"/unsubscribe/{flipped(t, 1)}", ONE_CLICK,
         400, INVALID),
        ("token of another secret", "POST", lambda t: f"/unsubscribe/{other_secret(t)}",
         ONE_CLICK, 400, INVALID),
        ("token with padding", "POST", lambda t: f"/unsubscribe/{t}==", ONE_CLICK, 400,
         INVALID),
        ("token not base64", "POST", lambda t: "/unsubscribe/%25%25%25%25", ONE_CLICK, 400,
         INVALID),
        ("token with a line break", "GET", lambda t: f"/unsubscribe/{t}%0d%0aSet-Cookie:x=1",
         b"", 400, INVALID),
        ("token of 10 KB", "POST", lambda t: "/unsubscribe/" + "A" * 10_000, ONE_CLICK, 400,
         INVALID),
        ("token doubled", "POST", lambda t: f"/unsubscribe/{t}{t}", ONE_CLICK, 400, INVALID),
        ("put on a token", "PUT", lambda t: f"/unsubscribe/{t}", ONE_CLICK, 405, NOT_ALLOWED),
        ("delete on a token", "DELETE", lambda t: f"/unsubscribe/{t}", b"", 405, NOT_ALLOWED),
        ("post to the bare page", "POST", lambda t: "/unsubscribe/", ONE_CLICK, 405, NOT_ALLOWED),
        ("post to the archive", "POST", lambda t: "/", b"", 405, NOT_ALLOWED),
        ("get on the webhook", "GET", lambda t: "/webhooks/sendgrid", b"", 405, NOT_ALLOWED),
        ("oversize body", "POST", lambda t: f"/unsubscribe/{t}", b"x" * 9_000, 413,
         "request body too large"),
        ("oversize one-click", "POST", lambda t: f"/unsubscribe/{t}",
         ONE_CLICK + b"&pad=" + b"y" * 20_000, 413, "request body too large"),
        ("store through a dot path", "GET", lambda t: "/..%2fnewsletter.db", b"", 404,
         NOT_FOUND),
        ("issue record", "GET", lambda t: "/001-2026-11-24/issue.json", b"", 404, NOT_FOUND),
        ("text of an issue", "GET", lambda t: "/001-2026-11-24/email.txt", b"", 404, NOT_FOUND),
        ("hidden staging folder", "GET", lambda t: "/.staging/email.html", b"", 404,
         NOT_FOUND),
        ("issue that does not exist", "GET", lambda t: "/999-2026-01-01/", b"", 404,
         NOT_FOUND),
    ]
]  # fmt: skip


@pytest.mark.parametrize(("method", "spoil", "body", "status", "says"), CASES)
def test_a_bad_request_changes_nothing(
    served: Served, method: str, spoil: Spoil, body: bytes, status: int, says: str
) -> None:
    before = project_state(served.config.parent)
    reply = served.client.request(method, spoil(served.token), content=body or None)
    assert reply.status_code == status, reply.text
    assert says in reply.text
    assert_unchanged(before, project_state(served.config.parent))


def test_an_oversize_body_without_a_length_is_refused_as_it_streams(served: Served) -> None:
    """A chunked body declares no Content-Length: the limit is counted as it arrives."""
    before = project_state(served.config.parent)
    chunks = (ONE_CLICK + b"&pad=" + b"z" * 1000 for _ in range(20))
    reply = served.client.post(f"/unsubscribe/{served.token}", content=chunks)
    assert reply.status_code == 413, reply.text
    assert "request body too large" in reply.text
    assert_unchanged(before, project_state(served.config.parent))


def test_the_genuine_token_still_works_after_every_spoilt_one(served: Served) -> None:
    """The cases above leave Ada subscribed because each token was refused, not because no
    token could work."""
    page = served.client.get(f"/unsubscribe/{served.token}")
    assert page.status_code == 200
    assert "Unsubscribe from Leading Together?" in page.text
