"""Bad-input catalogue, sources and templates: `build --strict` stops at a broken post,
feed or template with exit 3 or 4, names the file (and line) or the URL, and writes no
issue."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from bad_input import Breakage, Case, cases, expect_refusal, replaced, setting, written
from conftest import closed_port, set_setting
from servers.loopback import LoopbackHTTP

BUILD = ("build", "--strict", "--date", "2026-11-24")
POST = "samples/content/2026-10-15-planning-for-winter.md"
POST_NAME = "2026-10-15-planning-for-winter.md"
HTML = "templates/default/email.mjml.j2"
TEXT = "templates/default/email.txt.j2"
FEED_ITEM = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Partners</title><link>https://partners.example.org/</link>
<description>News</description>
<item><title>{title}</title><link>https://partners.example.org/a/</link>
<guid isPermaLink="false">partner-a</guid><pubDate>{date}</pubDate></item>
</channel></rss>
"""
FEEDS: dict[str, tuple[int, bytes, float]] = {
    "/garbage.xml": (200, b"this is not a feed <<<", 0),
    "/empty.xml": (200, b"", 0),
    "/page.html": (200, b"<html><body><p>Our news</p></body></html>", 0),
    "/huge.xml": (200, b"<rss><channel>" + b"x" * 4_000_000, 0),
    "/gone.xml": (404, b"Not Found", 0),
    "/broken.xml": (500, b"Internal Server Error", 0),
    "/slow.xml": (200, b"", 1.0),
    "/bad-date.xml": (200, FEED_ITEM.format(title="A", date="the 45th of Nevember").encode(), 0),
    "/no-title.xml": (200, FEED_ITEM.format(title="", date="Thu, 19 Nov 2026 10:00:00 +0000")
                      .encode(), 0),
}  # fmt: skip
"""What the loopback feed server answers for each path: status, body, delay in seconds."""


class FeedHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body, delay = FEEDS.get(self.path, (404, b"Not Found", 0))
        time.sleep(delay)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the slow route's reader has given up: that is the point

    def log_message(self, format: str, *args: object) -> None:
        pass


class FeedServer:
    """Started on first use, so the cases can name it before any fixture runs."""

    server: LoopbackHTTP | None = None

    def url(self) -> str:
        if self.server is None:
            self.server = LoopbackHTTP(FeedHandler)
            self.server.start()
        return self.server.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


SERVER = FeedServer()


@pytest.fixture(scope="module", autouse=True)
def _stop_feed_server() -> Iterator[None]:
    yield
    SERVER.stop()


def feed(path: str, timeout: float = 5.0) -> Breakage:
    """Point the 'partners' source at a path of the loopback feed server."""

    def point(config: Path) -> None:
        set_setting(config, "sources.1.url", SERVER.url() + path)
        set_setting(config, "sources.1.timeout", timeout)

    return point


def unreachable(config: Path) -> None:
    set_setting(config, "sources.1.url", f"http://127.0.0.1:{closed_port()}/feed.xml")


def front(old: str, new: str) -> Breakage:
    return replaced(POST, old, new)


SOURCE_CASES = cases(
    ("front matter bad yaml", front("title: ", "title: [unclosed "), BUILD, 3,
     f"{POST_NAME}:3: front matter is not valid YAML"),
    ("front matter no title", front("title: ", "heading: "), BUILD, 3,
     f"{POST_NAME}:N: front matter has no 'title'; add one"),
    ("front matter no date", front("date: ", "published: "), BUILD, 3,
     f"{POST_NAME}:N: front matter has no 'date'; add one such as 2026-11-02"),
    ("front matter impossible date", front("date: 2026-10-15", "date: 2026-13-45"), BUILD, 3,
     f"{POST_NAME}:3: date '2026-13-45 08:30' is not a date; write it as 2026-11-02"),
    ("front matter date a phrase", front("date: 2026-10-15 ", "date: next tuesday "), BUILD, 3,
     f"{POST_NAME}:3: date 'next tuesday 08:30' is not a date"),
    ("front matter unknown kind", front("title: ", "kind: column\ntitle: "), BUILD, 3,
     f"{POST_NAME}:2: unknown kind 'column'; expected 'post' or 'guest'"),
    ("front matter not closed", front("\n---\n", "\n\n"), BUILD, 3,
     f"{POST_NAME}:1: front matter is not closed; add a '---' line after it"),
    ("front matter a list", written(POST, "---\n- a\n- b\n---\nBody\n"), BUILD, 3,
     f"{POST_NAME}:2: front matter must be 'key: value' lines"),
    ("post not utf-8", written(POST, b"---\ntitle: Caf\xe9\ndate: 2026-10-15\n---\nx\n"), BUILD,
     3, f"{POST_NAME}: not UTF-8 text"),
    ("post url not http", front("title: ", "url: ftp://example.org/a\ntitle: "), BUILD, 3,
     f"{POST_NAME}:2: url 'ftp://example.org/a' is not an http(s) link"),
    ("markdown path is a file", setting("sources.0.path", "newsletter.yml"), BUILD, 3,
     "source 'blog': the Markdown folder"),
    ("markdown folder missing", setting("sources.0.path", "samples/gone"), BUILD, 3,
     "samples/gone does not exist"),
    ("feed garbage", feed("/garbage.xml"), BUILD, 3,
     "/garbage.xml is not a readable feed: line 2, column 0: syntax error"),
    ("feed empty", feed("/empty.xml"), BUILD, 3, "/empty.xml is not a readable feed"),
    ("feed a web page", feed("/page.html"), BUILD, 3, "/page.html is not a readable feed"),
    ("feed huge and broken", feed("/huge.xml"), BUILD, 3,
     "/huge.xml is not a readable feed: line 2, column 4000014"),
    ("feed answers 404", feed("/gone.xml"), BUILD, 3,
     "/gone.xml: the server answered HTTP 404"),
    ("feed answers 500", feed("/broken.xml"), BUILD, 3,
     "/broken.xml: the server answered HTTP 500"),
    ("feed too slow", feed("/slow.xml", timeout=0.3), BUILD, 3,
     "/slow.xml: no answer within 0.3 s"),
    ("feed port closed", unreachable, BUILD, 3,
     "/feed.xml: Connection refused"),
    ("feed item bad date", feed("/bad-date.xml"), BUILD, 3,
     "/bad-date.xml entry 1 (partner-a): has no date (published or updated)"),
    ("feed item no title", feed("/no-title.xml"), BUILD, 3,
     "/no-title.xml entry 1 (partner-a): has no title"),
    ("feed file malformed", written("samples/partners-feed.xml", "{'a': 1"), BUILD,
     3, "samples/partners-feed.xml is not a readable feed"),
)  # fmt: skip

TEMPLATE_CASES = cases(
    ("html template syntax", replaced(HTML, "</mj-body>", "{% if %}</mj-body>"), BUILD, 4,
     "email.mjml.j2:N: Expected an expression, got 'end of statement block'"),
    ("text template syntax", written(TEXT, "{{ lead.title }\n"), BUILD, 4,
     "email.txt.j2:1: unexpected '}'"),
    ("block never closed", written(TEXT, "{% for post in posts %}\n{{ post.title }}\n"), BUILD,
     4, "email.txt.j2:2: Unexpected end of template"),
    ("undefined variable html", replaced(HTML, '">{{ lead.title }}</a>', '">{{ lead.titel }}</a>'),
     BUILD, 4, "email.mjml.j2:N: 'newsletter.models.Post object' has no attribute 'titel'"),
    ("undefined variable text", written(TEXT, "Hello\n{{ reader.name }}\n"), BUILD, 4,
     "email.txt.j2:2: 'reader' is undefined"),
    ("unknown filter", written(TEXT, "{{ lead.title | shout }}\n"), BUILD, 4,
     "email.txt.j2:1: No filter named 'shout'."),
    ("html template missing", lambda config: (config.parent / HTML).unlink(), BUILD, 4,
     "template 'email.mjml.j2' not found in"),
    ("text template missing", lambda config: (config.parent / TEXT).unlink(), BUILD, 4,
     "template 'email.txt.j2' not found in"),
    ("include of a missing file", written(TEXT, "{% include 'footer.txt.j2' %}\n"), BUILD, 4,
     "email.txt.j2:1: template 'footer.txt.j2' not found in"),
    ("extends a missing base", written(TEXT, "{% extends 'base.txt.j2' %}\n"), BUILD, 4,
     "email.txt.j2:1: template 'base.txt.j2' not found in"),
    ("template includes itself", written(TEXT, "{% include 'email.txt.j2' %}\n"), BUILD, 4,
     "email.txt.j2:1: maximum recursion depth exceeded"),
    ("template not utf-8", written(TEXT, b"Caf\xe9 {{ lead.title }}\n"), BUILD, 4,
     "email.txt.j2 (or a template it includes): not UTF-8 text (byte 0xe9 at offset 3)"),
    ("division by zero", written(TEXT, "{{ 1 // 0 }}\n"), BUILD, 4,
     "email.txt.j2:1: integer division or modulo by zero"),
    ("invalid mjml", written(HTML, "<mjml><mj-body><mj-section>\n"), BUILD, 4,
     "email.mjml.j2: the template did not produce valid MJML"),
    ("template folder missing", setting("template.directory", "templates/none"), BUILD, 4,
     "not found in {project}/templates/none"),
    ("subject syntax", setting("issue.subject", "{{ lead.title"), BUILD, 4,
     "newsletter.yml: issue.subject: template syntax error"),
    ("subject undefined", setting("issue.subject", "{{ leed.title }}"), BUILD, 4,
     "newsletter.yml: issue.subject: 'leed' is undefined"),
    ("preheader undefined", setting("issue.preheader", "{{ lead.summery }}"), BUILD, 4,
     "newsletter.yml: issue.preheader: 'newsletter.models.Post object' has no attribute"),
)  # fmt: skip


@pytest.mark.parametrize("case", SOURCE_CASES + TEMPLATE_CASES)
# feedparser warns of its own fallback for an entry without a date; the date is the point.
@pytest.mark.filterwarnings("ignore:To avoid breaking existing software:DeprecationWarning")
def test_a_broken_source_or_template_stops_the_build(sample_project: Path, case: Case) -> None:
    expect_refusal(sample_project, case)
