"""A reader in a real browser: Debian's Chromium, driven by Playwright, against `serve`
on loopback. Signs up, finds the confirmation in the outbox, follows its link, changes
the preferences and unsubscribes; once with JavaScript and once without."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import configure
from newsletter.config import load_config
from newsletter.preview import CHROMIUM_FLAGS
from newsletter.send_models import SubscriberStatus
from newsletter.store import open_store
from newsletter.web import create_app
from newsletter.web.server import LoopbackServer
from servers.confirmations import confirmation_for, link_in

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (scripts/install-chromium)"
    ),
]
LISTS = [
    {"name": "members", "description": "Members of the network"},
    {"name": "guests", "description": "Guest columns, once a month", "public": True},
    {"name": "events", "description": "Events near you", "public": True},
]


@pytest.fixture
def served(sample_project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    configure(sample_project, lists=LISTS)
    with LoopbackServer(create_app(load_config(sample_project))) as server:
        yield sample_project, server.url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_FLAGS))
        yield launched
        launched.close()


def status(project: Path, list_name: str) -> SubscriberStatus | None:
    with open_store(load_config(project)) as store:
        return store.status_on("ada@example.org", list_name)


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_a_reader_signs_up_confirms_chooses_lists_and_unsubscribes(
    served: tuple[Path, str], browser: object, javascript: bool
) -> None:
    project, base = served
    context = browser.new_context(java_script_enabled=javascript)  # type: ignore[attr-defined]
    page = context.new_page()

    page.goto(f"{base}/subscribe")
    page.fill("#email", "ada@example.org")
    page.fill("#name", "Ada Lovlace")
    page.check("input[name=list][value=guests]")
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "Almost done"
    assert status(project, "guests") is SubscriberStatus.PENDING

    # The link in the e-mail names the public site; the same path is served here.
    path = urlsplit(link_in(confirmation_for(project, "ada@example.org"))).path
    page.goto(f"{base}{path}")
    assert status(project, "guests") is SubscriberStatus.PENDING  # opening it only asks
    page.click("text=Yes, subscribe me")
    assert page.locator("h1").inner_text() == "You are subscribed"
    assert status(project, "guests") is SubscriberStatus.SUBSCRIBED

    page.click("text=Choose which lists you receive")
    assert page.locator("h1").inner_text() == "Your subscription to Leading Together"
    page.fill("#name", "Ada Lovelace")
    page.check("input[name=lists][value=events]")
    page.click("text=Save my choices")
    assert "Your choices are saved." in page.content()
    assert page.is_checked("input[name=lists][value=events]")
    assert status(project, "events") is SubscriberStatus.SUBSCRIBED
    with open_store(load_config(project)) as store:
        assert store.get("ada@example.org").name == "Ada Lovelace"

    token = re.sub(r"^.*/preferences/([^/?]+).*$", r"\1", page.url)
    page.goto(f"{base}/unsubscribe/{token}")
    page.click("button:has-text('Unsubscribe')")
    assert page.locator("h1").inner_text() == "You are unsubscribed"
    assert status(project, "guests") is SubscriberStatus.UNSUBSCRIBED
    assert status(project, "events") is SubscriberStatus.SUBSCRIBED  # one list left only

    page.goto(f"{base}/preferences/{token}")
    page.click("text=Unsubscribe from everything")
    assert "from any list" in page.content()
    assert status(project, "events") is SubscriberStatus.UNSUBSCRIBED
    context.close()
