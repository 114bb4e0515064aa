"""Reading RSS and Atom feeds from files and from a real HTTP server on loopback."""

from __future__ import annotations

import socket
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from newsletter import __version__
from newsletter.config import FeedSource, LoadedConfig, parse_config
from newsletter.errors import ContentWarning, SourceError
from newsletter.models import PostKind, SourceResult
from newsletter.sources import read_source, read_sources

FIXTURES = Path(__file__).parent / "fixtures" / "sources"

RSS = (FIXTURES / "rss.xml").read_text(encoding="utf-8")
ATOM = (FIXTURES / "atom.xml").read_text(encoding="utf-8")
BROKEN_ITEMS = (FIXTURES / "broken-items.xml").read_text(encoding="utf-8")


def make_config(tmp_path: Path, url: str, *, guest: str = "{}", timeout: float = 5) -> LoadedConfig:
    text = textwrap.dedent(
        f"""\
        newsletter:
          name: Test Letter
          site_url: https://example.org
          sender: {{name: Test, address: news@example.org}}
          postal_address: 1 Test Street, Testville
        sources:
          - name: partners
            type: feed
            url: "{url}"
            timeout: {timeout}
            guest: {guest}
        """
    )
    return LoadedConfig(settings=parse_config(text), path=tmp_path / "newsletter.yml")


def read_only_source(loaded: LoadedConfig, *, strict: bool = False) -> SourceResult:
    source = loaded.settings.sources[0]
    assert isinstance(source, FeedSource)
    return read_source(source, loaded, strict=strict)


def feed_file(tmp_path: Path, text: str, name: str = "feed.xml") -> str:
    (tmp_path / "feeds").mkdir(exist_ok=True)
    (tmp_path / "feeds" / name).write_text(text, encoding="utf-8")
    return f"feeds/{name}"


def test_rss_from_a_file(tmp_path: Path) -> None:
    loaded = make_config(tmp_path, feed_file(tmp_path, RSS))

    result = read_only_source(loaded)

    assert result.name == "partners" and result.warnings == ()
    full, short = result.posts
    assert full.id == "partner-0001"
    assert full.source == "partners"
    assert full.title == "Full content item"
    assert full.url == "https://partner.example.net/news/full/"
    assert full.published == datetime(2026, 11, 19, 9, 0, tzinfo=UTC)
    assert full.author == "Fiona Example"
    assert full.tags == ("Events", "guest-column")
    assert full.summary == "The short description."
    assert "Full body with" in full.body_html
    assert 'href="https://partner.example.net/news/other/"' in full.body_html
    assert 'src="https://partner.example.net/img/banner.jpg"' in full.body_html
    for gone in ("<script", "alert", "onclick", "javascript"):
        assert gone not in full.body_html
    assert full.kind is PostKind.POST

    assert short.id == "https://partner.example.net/news/short/"  # no guid: the link
    assert short.author == "Tom Example"
    assert short.body_html == "<p>First paragraph.</p><p>Second paragraph.</p>"
    assert short.summary == "First paragraph."
    assert short.published.tzinfo is not None


def test_atom_from_a_file(tmp_path: Path) -> None:
    loaded = make_config(tmp_path, feed_file(tmp_path, ATOM, "atom.xml"))

    first, second = read_only_source(loaded).posts

    assert first.id == "urn:uuid:entry-1"
    assert first.url == "https://partner.example.net/blog/atom-entry/"
    assert first.published == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # updated only
    assert first.author == "Priya Example"
    assert first.tags == ("policy",)
    assert first.summary == "Atom summary."
    assert first.body_html == (
        '<p>Atom <em>body</em> <a href="https://partner.example.net/blog/atom-entry/notes/">'
        "notes</a></p>"
    )
    assert second.published == datetime(2026, 11, 18, 7, 0, tzinfo=UTC)  # published wins
    assert "<p>XHTML body</p>" in second.body_html
    assert second.summary == "XHTML body"


@pytest.mark.parametrize(
    ("guest", "expected"),
    [
        ("{tags: [GUEST-COLUMN]}", ["Full content item"]),
        ("{tags: [events]}", ["Full content item"]),
        ("{authors: [tom example]}", ["Description only"]),
        ("{all: true}", ["Full content item", "Description only"]),
        ("{folders: [news]}", []),  # folders mean nothing to a feed
    ],
)
def test_guest_rules_for_feeds(tmp_path: Path, guest: str, expected: list[str]) -> None:
    loaded = make_config(tmp_path, feed_file(tmp_path, RSS), guest=guest)
    posts = read_only_source(loaded).posts
    assert [post.title for post in posts if post.kind is PostKind.GUEST] == expected


def test_items_without_title_or_date_are_skipped_with_warnings(tmp_path: Path) -> None:
    loaded = make_config(tmp_path, feed_file(tmp_path, BROKEN_ITEMS))

    result = read_only_source(loaded)

    assert [post.title for post in result.posts] == ["Good"]
    assert [str(warning) for warning in result.warnings] == [
        "source 'partners', item 'https://partner.example.net/undated/': "
        "has no date (published or updated); it was left out",
        "source 'partners', item 'https://partner.example.net/untitled/': "
        "has no title; it was left out",
    ]


def test_strict_turns_a_skipped_item_into_content_warning(tmp_path: Path) -> None:
    loaded = make_config(tmp_path, feed_file(tmp_path, BROKEN_ITEMS))
    with pytest.raises(ContentWarning) as caught:
        read_sources(loaded, strict=True)
    message = str(caught.value)
    assert f"{tmp_path / 'feeds' / 'feed.xml'} entry 2" in message
    assert "https://partner.example.net/undated/" in message
    assert "has no date" in message


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<?xml version='1.0'?><rss version='2.0'><channel><title>Cut off", ": no element found"),
        ("<html><body><p>Just a web page</p></body></html>", "not an RSS or Atom document"),
        ("", "not an RSS or Atom document"),
    ],
)
def test_a_malformed_feed_is_a_source_error(tmp_path: Path, text: str, reason: str) -> None:
    loaded = make_config(tmp_path, feed_file(tmp_path, text))
    with pytest.raises(SourceError) as caught:
        read_only_source(loaded)
    message = str(caught.value)
    assert message.startswith(
        f"source 'partners': {tmp_path / 'feeds' / 'feed.xml'} is not a readable feed: "
    )
    assert reason in message


def test_a_valid_feed_with_no_items_gives_no_posts(tmp_path: Path) -> None:
    empty = '<rss version="2.0"><channel><title>t</title><link>https://x.example/</link>'
    loaded = make_config(tmp_path, feed_file(tmp_path, empty + "</channel></rss>"))
    assert read_only_source(loaded).posts == ()


def test_a_missing_feed_file_is_a_source_error(tmp_path: Path) -> None:
    loaded = make_config(tmp_path, "feeds/nowhere.xml")
    with pytest.raises(SourceError) as caught:
        read_only_source(loaded)
    message = str(caught.value)
    assert f"cannot read the feed file {tmp_path / 'feeds' / 'nowhere.xml'}" in message
    assert "No such file or directory" in message


# --- over HTTP ------------------------------------------------------------------------


@dataclass
class FeedServer:
    base: str
    user_agents: list[str] = field(default_factory=list)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    relative_rss = RSS.replace("https://partner.example.net/news/short/", "/news/short/")
    routes = {"/feed.xml": relative_rss, "/page.html": "<html><body>Hello</body></html>"}
    seen: list[str] = []
    released = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("User-Agent", ""))
            if self.path == "/slow.xml":
                # Hangs until the test is over (30 s at most): a client's timeout of a
                # fraction of a second is what ends the wait, however loaded the machine.
                released.wait(30)
            body = routes.get(self.path, RSS if self.path == "/slow.xml" else None)
            if body is None:
                self.send_error(404, "Not Found")
                return
            data = body.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    class QuietServer(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # the slow route's client has hung up; that is the point

    server = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FeedServer(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_feed_served_over_http(tmp_path: Path, feed_server: FeedServer) -> None:
    loaded = make_config(tmp_path, f"{feed_server.base}/feed.xml")

    result = read_only_source(loaded)

    assert [post.title for post in result.posts] == ["Full content item", "Description only"]
    assert result.posts[1].url == f"{feed_server.base}/news/short/"  # relative to the feed
    assert feed_server.user_agents == [f"newsletter/{__version__}"]


def test_a_feed_on_the_web_is_fetched_at_every_read(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    loaded = make_config(tmp_path, f"{feed_server.base}/feed.xml")

    first, second = read_only_source(loaded), read_only_source(loaded)

    assert first == second
    assert len(feed_server.user_agents) == 2  # the build's cache keeps files, not the web


def test_an_edited_feed_file_is_read_again(tmp_path: Path) -> None:
    loaded = make_config(tmp_path, feed_file(tmp_path, RSS))
    assert "Full content item" in [post.title for post in read_only_source(loaded).posts]

    feed_file(tmp_path, RSS.replace("Full content item", "Full content ITEM"))

    assert "Full content ITEM" in [post.title for post in read_only_source(loaded).posts]


def test_an_http_error_is_a_source_error(tmp_path: Path, feed_server: FeedServer) -> None:
    url = f"{feed_server.base}/gone.xml"
    loaded = make_config(tmp_path, url)
    with pytest.raises(SourceError) as caught:
        read_only_source(loaded)
    assert str(caught.value).startswith(
        f"source 'partners': cannot fetch {url}: the server answered HTTP 404 Not Found"
    )


def test_a_web_page_instead_of_a_feed_is_a_source_error(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    url = f"{feed_server.base}/page.html"
    with pytest.raises(SourceError, match="is not a readable feed"):
        read_only_source(make_config(tmp_path, url))


def test_a_slow_server_times_out_as_a_source_error(tmp_path: Path, feed_server: FeedServer) -> None:
    url = f"{feed_server.base}/slow.xml"
    loaded = make_config(tmp_path, url, timeout=0.2)
    with pytest.raises(SourceError) as caught:
        read_only_source(loaded)
    assert f"cannot fetch {url}: no answer within 0.2 s" in str(caught.value)


def test_an_unreachable_url_is_a_source_error(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and is now closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/feed.xml"
    with pytest.raises(SourceError) as caught:
        read_only_source(make_config(tmp_path, url))
    message = str(caught.value)
    assert message.startswith(f"source 'partners': cannot fetch {url}: Connection refused")
    assert "hint:" in message


def test_a_repeated_guid_keeps_the_first_entry(tmp_path: Path) -> None:
    first_item = RSS[RSS.index("<item>") : RSS.index("</item>") + len("</item>")]
    repeated = RSS.replace("</channel>", f"{first_item}</channel>")
    assert repeated.count("partner-0001") == 2
    loaded = make_config(tmp_path, feed_file(tmp_path, repeated))

    result = read_only_source(loaded)

    assert [post.title for post in result.posts] == ["Full content item", "Description only"]
    assert [str(warning) for warning in result.warnings] == [
        "source 'partners', item 'partner-0001': "
        "has the same id as an earlier item ('partner-0001')"
    ]


def test_relative_entry_links_in_a_feed_file_follow_the_channel_link(tmp_path: Path) -> None:
    relative = RSS.replace("https://partner.example.net/news/short/", "news/short/")
    loaded = make_config(tmp_path, feed_file(tmp_path, relative))
    posts = read_only_source(loaded).posts
    assert posts[1].url == "https://partner.example.net/news/short/"


@pytest.mark.parametrize(
    "link",
    ["", "<link></link>", "<link>#top</link>", "<link>https://partner.example.net/</link>"],
    ids=["no-link", "empty-link", "fragment", "the-channel-page"],
)
def test_an_item_without_a_link_of_its_own_is_skipped_with_a_warning(
    tmp_path: Path, link: str
) -> None:
    linkless = (
        '<rss version="2.0"><channel><title>t</title><link>https://partner.example.net/</link>'
        "<item><title>Good</title><link>https://partner.example.net/good/</link>"
        "<pubDate>Wed, 11 Nov 2026 09:30:00 +0000</pubDate></item>"
        f"<item><title>Linkless news</title>{link}"
        "<pubDate>Thu, 12 Nov 2026 09:30:00 +0000</pubDate></item>"
        "</channel></rss>"
    )
    loaded = make_config(tmp_path, feed_file(tmp_path, linkless))

    result = read_only_source(loaded)

    assert [post.url for post in result.posts] == ["https://partner.example.net/good/"]
    assert [str(warning) for warning in result.warnings] == [
        "source 'partners', item 'Linkless news': has no http(s) link of its own; it was "
        "left out rather than sent to the feed's own page"
    ]
    with pytest.raises(ContentWarning, match=r"entry 2 \(Linkless news\): has no http"):
        read_only_source(loaded, strict=True)


def test_an_atom_entry_without_a_link_is_named_by_its_id(tmp_path: Path) -> None:
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        '<link href="https://partner.example.net/"/><id>urn:feed</id>'
        "<updated>2026-11-12T09:30:00Z</updated>"
        "<entry><title>No link</title><id>urn:entry:7</id>"
        "<updated>2026-11-12T09:30:00Z</updated></entry></feed>"
    )
    result = read_only_source(make_config(tmp_path, feed_file(tmp_path, atom)))
    assert result.posts == ()
    assert [warning.item for warning in result.warnings] == ["urn:entry:7"]
