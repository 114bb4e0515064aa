"""The server's message page, filled from its prepared form, is the page Jinja writes."""

from __future__ import annotations

import pytest

from newsletter.config import NewsletterInfo, Sender
from newsletter.web.pages import Link, Pages

HOSTILE = [
    "<script>alert('x')</script>",
    'a "quoted" & <b>bold</b> value',
    "slot-like \ue0000\ue001 text and \ue000",
    "accents: Zoë, “curly quotes”, emoji 🙂",
    "",
]


@pytest.fixture
def pages() -> Pages:
    return Pages(
        NewsletterInfo(
            name='Leading <Together> & "Friends"',
            site_url="https://example.org",
            language="fr",
            sender=Sender(name="Editor", address="editor@example.org"),
            postal_address="1 Main Street",
        )
    )


@pytest.mark.parametrize("paragraphs", [0, 1, 3])
@pytest.mark.parametrize("button", [None, "", "Un<sub>scribe"])
@pytest.mark.parametrize("link", [None, Link("../preferences/a&b<c>", "Choose \"lists\" & <more>")])
def test_a_prepared_page_is_what_jinja_renders(
    pages: Pages, paragraphs: int, button: str | None, link: Link | None
) -> None:
    for value in HOSTILE:
        texts = [f"{value} {n}" for n in range(paragraphs)]
        prepared = pages.render(value, *texts, button=button, link=link, status=410)
        rendered = pages.page(
            "message.html", value, status=410, paragraphs=texts, button=button, link=link
        )

        assert prepared.body == rendered.body
        assert prepared.status_code == 410
        assert prepared.headers["cache-control"] == "no-store"


def test_values_are_escaped_and_the_slots_leave_no_trace(pages: Pages) -> None:
    html = pages.render(
        "<h1>", "it's <b>not</b> bold", button="go", link=Link("/x?a=1&b=2", "<i>")
    ).body.decode()

    assert "&lt;h1&gt;" in html
    assert "it&#39;s &lt;b&gt;not&lt;/b&gt; bold" in html
    assert 'href="/x?a=1&amp;b=2"' in html
    assert "Leading &lt;Together&gt; &amp; &#34;Friends&#34;" in html
    assert "\ue000" not in html and "\ue001" not in html
    assert '<html lang="fr">' in html


def test_public_pages_are_not_marked_private(pages: Pages) -> None:
    assert "cache-control" not in pages.not_found().headers
    assert pages.not_found().status_code == 404
