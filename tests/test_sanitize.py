"""What a subscriber's mail client receives from any source's HTML."""

from __future__ import annotations

from newsletter.sources.sanitize import absolute_url, clean_html, html_to_text

POST_URL = "https://example.org/blog/my-post/"


def test_scripts_styles_and_embeds_are_removed_with_their_content() -> None:
    html = (
        "<p>Keep me</p><script>alert('x')</script><style>p{color:red}</style>"
        '<iframe src="https://evil.example/">fallback</iframe>'
        '<form action="/steal"><input name="q">Form text</form>'
        '<object data="x.swf">obj</object>'
    )
    cleaned = clean_html(html, POST_URL)
    assert "<p>Keep me</p>" in cleaned
    for gone in ("script", "alert", "style", "color:red", "iframe", "fallback", "form", "input",
                 "object", "x.swf", "obj"):  # fmt: skip
        assert gone not in cleaned
    assert "Form text" in cleaned  # only the form's markup goes, its words stay


def test_event_handlers_and_style_attributes_are_removed() -> None:
    html = (
        '<p onclick="steal()" style="position:fixed">Hi '
        '<a href="https://example.org/" onmouseover="x()">link</a>'
        '<img src="https://example.org/a.png" onerror="boom()" alt="A"></p>'
    )
    cleaned = clean_html(html, POST_URL)
    assert cleaned == (
        '<p>Hi <a href="https://example.org/">link</a>'
        '<img src="https://example.org/a.png" alt="A"></p>'
    )


def test_javascript_and_data_urls_are_dropped() -> None:
    html = (
        '<a href="javascript:alert(1)">one</a>'
        '<a href="JaVaScRiPt:alert(1)">two</a>'
        '<a href="java\nscript:alert(1)">three</a>'
        '<img src="data:image/png;base64,AAAA" alt="pixel">'
    )
    cleaned = clean_html(html, POST_URL)
    assert "script:" not in cleaned.lower()
    assert "data:" not in cleaned
    assert cleaned == '<a>one</a><a>two</a><a>three</a><img alt="pixel">'


def test_relative_links_and_images_become_absolute_against_the_post_url() -> None:
    html = (
        '<p><a href="../other-post/">other</a> <a href="/events/">events</a> '
        '<a href="notes.html#top">notes</a> <a href="#fn1">note</a> '
        '<a href="mailto:editors@example.org">mail</a> '
        '<img src="images/chart.png" alt="Chart"></p>'
    )
    cleaned = clean_html(html, POST_URL)
    assert 'href="https://example.org/blog/other-post/"' in cleaned
    assert 'href="https://example.org/events/"' in cleaned
    assert 'href="https://example.org/blog/my-post/notes.html#top"' in cleaned
    assert 'href="https://example.org/blog/my-post/#fn1"' in cleaned
    assert 'href="mailto:editors@example.org"' in cleaned
    assert 'src="https://example.org/blog/my-post/images/chart.png"' in cleaned


def test_email_friendly_structure_is_kept() -> None:
    html = (
        "<h2>Head</h2><blockquote><p>Quote</p></blockquote><ul><li>a</li></ul>"
        "<figure><img src='x.png' alt=''><figcaption>Cap</figcaption></figure>"
        "<table><tr><td colspan='2'>cell</td></tr></table><pre><code>x = 1</code></pre>"
    )
    cleaned = clean_html(html, POST_URL)
    for kept in ("<h2>Head</h2>", "<blockquote>", "<li>a</li>", "<figcaption>Cap</figcaption>",
                 '<td colspan="2">cell</td>', "<pre><code>x = 1</code></pre>"):  # fmt: skip
        assert kept in cleaned


def test_broken_markup_is_repaired_not_an_error() -> None:
    assert (
        clean_html("<p>Unclosed <strong>bold", POST_URL) == "<p>Unclosed <strong>bold</strong></p>"
    )
    assert clean_html("", POST_URL) == ""


def test_unsafe_or_malformed_urls_resolve_to_none() -> None:
    assert absolute_url("javascript:alert(1)", POST_URL) is None
    assert absolute_url("http://[::1", POST_URL) is None
    assert absolute_url("x.png", POST_URL) == "https://example.org/blog/my-post/x.png"


def test_html_to_text_strips_tags_decodes_entities_and_separates_blocks() -> None:
    text = html_to_text("<p>Fish &amp; chips</p><p>Second\n   line<script>x()</script></p>")
    assert text == "Fish & chips Second line"
