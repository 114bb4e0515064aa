"""Summaries from what real feeds carry: boilerplate gone, cut at a sentence or a word."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from newsletter.config import LoadedConfig, parse_config
from newsletter.errors import ConfigError
from newsletter.sources import read_sources
from newsletter.sources.summary import BUILTIN_BOILERPLATE, Summarizer

DEFAULT = Summarizer()

WORDPRESS_EXCERPT = (
    "<p>Leaders across integrated care systems told us what made partnership work &#8230; "
    '[&#8230;]</p>\n<p>The post <a href="https://blog.example.org/p/1">Partnership that '
    'lasts</a> appeared first on <a href="https://blog.example.org">Leading Care</a>.</p>'
)


@pytest.mark.parametrize(
    ("platform", "description", "expected"),
    [
        (
            "wordpress excerpt and footer",
            WORDPRESS_EXCERPT,
            "Leaders across integrated care systems told us what made partnership work…",
        ),
        (
            "wordpress theme link",
            '<p>We asked five directors about budgets. <a href="/p">Continue reading '
            '<span class="screen-reader-text">Budgets</span> <span>&rarr;</span></a></p>',
            "We asked five directors about budgets.",
        ),
        (
            "read more with an arrow",
            "<p>Care at home is changing. Read more &raquo;</p>",
            "Care at home is changing.",
        ),
        (
            "medium",
            '<p>Data saves lives when it is shared well.</p><p class="medium-feed-link">'
            '<a href="https://medium.com/p/1">Continue reading on Medium »</a></p>',
            "Data saves lives when it is shared well.",
        ),
        (
            "medium footer",
            "<p>Nine lessons from the pandemic.</p><hr><p><a>Nine lessons</a> was originally "
            "published in <a>Health Notes</a> on Medium, where people are continuing the "
            "conversation by highlighting and responding to this story.</p>",
            "Nine lessons from the pandemic.",
        ),
        (
            "substack",
            "<p>The workforce plan, read closely.</p><p>Thanks for reading Care Notes! Subscribe "
            "for free to receive new posts and support my work.</p><p>Subscribe now</p>",
            "The workforce plan, read closely.",
        ),
        (
            "blogger",
            "A winter of pressure, and what helped. Read more »",
            "A winter of pressure, and what helped.",
        ),
        (
            "three dots cut",
            "What we learned from the pilot in Leeds ...",
            "What we learned from the pilot in Leeds…",
        ),
        (
            "dangling comma before the cut",
            "Budgets, staff, and beds, [...]",
            "Budgets, staff, and beds…",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else None,
)
def test_platform_boilerplate_is_removed(platform: str, description: str, expected: str) -> None:
    assert DEFAULT.summary(description, "") == expected, platform


def test_a_description_that_is_only_boilerplate_gives_way_to_the_content() -> None:
    body = "<p>Continue reading →</p><p>The first paragraph a reader wrote.</p><p>More.</p>"
    assert DEFAULT.summary("[…]", body) == "The first paragraph a reader wrote."
    assert DEFAULT.summary(None, body) == "The first paragraph a reader wrote."
    assert DEFAULT.summary("   ", "<ul><li>Only a list</li></ul>") == "Only a list"
    assert DEFAULT.summary(None, "") == ""


def test_the_authors_summary_wins_and_is_made_plain() -> None:
    body = "<h2>Intro</h2><p></p><p>First <em>real</em> paragraph.</p><p>Second.</p>"
    assert DEFAULT.summary(None, body) == "First real paragraph."
    assert DEFAULT.summary("  <b>Given</b>   summary ", body) == "Given summary"


def test_a_long_text_ends_with_a_whole_sentence_when_one_ends_late_enough() -> None:
    first = "Integrated care is a team sport, and the teams are bigger than ever before."
    text = f"{first} {first} " + "Then a very long sentence that goes on " * 10
    cut = Summarizer(length=200).cut(text)
    assert cut == f"{first} {first}"
    assert len(cut) <= 200 and not cut.endswith("…")


def test_otherwise_it_ends_with_a_word_and_one_joined_ellipsis() -> None:
    text = " ".join(["word"] * 100)
    cut = Summarizer(length=120).cut(text)
    assert len(cut) <= 120
    assert cut.endswith("word…") and "…" not in cut[:-1] and " …" not in cut


@pytest.mark.parametrize("length", range(40, 141, 7))
def test_no_cut_leaves_punctuation_dangling(length: int) -> None:
    text = (
        "Budgets, staff (and beds) — the three things; every director: “we need more”, "
        "and the answer - as always - is partnership, data, and time. " * 3
    )
    cut = Summarizer(length=length).cut(text)
    assert len(cut) <= length
    assert cut.endswith(("…", ".", "!", "?"))
    before = cut[:-1].rstrip("…")
    assert before and before[-1] not in " ,;:-–—(“\"'"


def test_a_short_text_is_left_alone() -> None:
    assert Summarizer(length=50).cut("Short enough.") == "Short enough."


def test_a_newsletter_adds_its_own_patterns_or_drops_the_builtin_ones() -> None:
    description = "New guidance on discharge. Listen to the podcast on our site!"
    own = Summarizer(patterns=[r"Listen to the podcast on our site!"])
    assert own.summary(description, "") == "New guidance on discharge."
    bare = Summarizer(builtin=False)
    assert bare.summary("Care at home. Read more »", "") == "Care at home. Read more »"
    assert DEFAULT.summary("Care at home. Read more »", "") == "Care at home."


def test_ordinary_sentences_that_mention_reading_are_kept() -> None:
    for text in (
        "Read more about our work in the annual report.",
        "Keep reading to find out how the pilot did.",
        "We share what we learn, and we read more than we write.",
    ):
        assert DEFAULT.summary(text, "") == text


def test_every_platform_has_patterns() -> None:
    assert set(BUILTIN_BOILERPLATE) == {"wordpress", "ghost", "substack", "medium", "blogger"}


WORDPRESS_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>Leading Care</title><link>https://blog.example.org</link>
<description>Posts</description>
<item><title>Partnership that lasts</title><link>https://blog.example.org/p/1</link>
<guid>https://blog.example.org/?p=1</guid><pubDate>Mon, 23 Nov 2026 09:00:00 +0000</pubDate>
<description><![CDATA[{description}]]></description>
<content:encoded><![CDATA[<p>Body first paragraph.</p>]]></content:encoded></item>
</channel></rss>
"""


def read_feed(tmp_path: Path, description: str, summaries: str = "{}") -> str:
    (tmp_path / "feed.xml").write_text(
        WORDPRESS_FEED.format(description=description), encoding="utf-8"
    )
    text = textwrap.dedent(
        f"""\
        newsletter:
          name: Test Letter
          site_url: https://example.org
          sender: {{name: Test, address: news@example.org}}
          postal_address: 1 Test Street, Testville
        summaries: {summaries}
        sources:
          - {{name: blog, type: feed, url: feed.xml}}
        """
    )
    loaded = LoadedConfig(settings=parse_config(text), path=tmp_path / "newsletter.yml")
    (result,) = read_sources(loaded)
    (post,) = result.posts
    return post.summary


def test_a_wordpress_feed_item_gets_a_clean_summary(tmp_path: Path) -> None:
    assert read_feed(tmp_path, WORDPRESS_EXCERPT) == (
        "Leaders across integrated care systems told us what made partnership work…"
    )


def test_the_summaries_settings_reach_the_readers(tmp_path: Path) -> None:
    summary = read_feed(
        tmp_path,
        "Partners met in Leeds to agree a plan for winter. Listen on our podcast!",
        "{length: 40, boilerplate: ['Listen on our podcast!']}",
    )
    assert summary == "Partners met in Leeds to agree a plan…"


def test_a_description_of_boilerplate_alone_falls_back_to_the_body(tmp_path: Path) -> None:
    assert read_feed(tmp_path, "<p>[&#8230;]</p>") == "Body first paragraph."


def test_a_bad_pattern_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "newsletter: {name: N, site_url: 'https://e.org', sender: {name: T, address: a@e.org},"
            " postal_address: x}\nsummaries: {boilerplate: ['ok', '(unclosed']}\n"
            "sources: [{name: b, type: feed, url: f.xml}]\n"
        )
    assert "summaries.boilerplate" in str(caught.value)
    assert "item 1 ('(unclosed') is not a regular expression" in str(caught.value)
