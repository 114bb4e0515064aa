"""Every answer of the web app carries the security headers: pages, redirects, errors
(404, 405, 413, 500, 503), the webhook and unsubscribe, in `serve` and `preview` alike."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

from conftest import SAMPLE_ISSUE, run_cli
from newsletter.config import Theme, load_config
from newsletter.preview import archive_server
from newsletter.web import create_app
from newsletter.web.headers import content_security_policy
from servers.web_app import add_subscriber, running_app

EXPECTED = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def assert_headed(reply: httpx.Response) -> None:
    shown = f"{reply.request.method} {reply.request.url.path} -> {reply.status_code}"
    for name, value in EXPECTED.items():
        assert reply.headers.get_list(name) == [value], f"{shown}: {name}"


@pytest.fixture
def built(built_project: Path) -> Path:
    return built_project


@pytest.fixture
def client(built: Path) -> Iterator[httpx.Client]:
    with running_app(built) as http:
        yield http


def every_route(config: Path, token: str) -> list[tuple[str, str]]:
    """(method, path) for each route of the app `serve` runs, its parameters filled in."""
    found = []
    for route in create_app(load_config(config)).routes:
        assert isinstance(route, Route)
        path = route.path.replace("{slug}", SAMPLE_ISSUE).replace("{token}", token)
        found += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


def test_every_route_answers_with_the_headers(built: Path, client: httpx.Client) -> None:
    _, token = add_subscriber(built, "ada@example.org")
    routes = every_route(built, token)
    assert len(routes) >= 12, routes

    replies = [client.request(method, path) for method, path in routes]

    assert {r.status_code for r in replies} >= {200, 301, 503}
    for reply in replies:
        assert_headed(reply)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/no-such-page", 404),
        ("GET", f"/{SAMPLE_ISSUE}/issue.json", 404),
        ("DELETE", "/webhooks/sendgrid", 405),
        ("PUT", "/", 405),
        ("GET", "/webhooks/sendgrid", 405),
        ("POST", "/unsubscribe/not-a-token", 400),
    ],
)
def test_errors_answer_with_the_headers(
    client: httpx.Client, method: str, path: str, status: int
) -> None:
    reply = client.request(method, path)

    assert reply.status_code == status
    assert_headed(reply)


def test_a_body_over_the_limit_and_a_crash_answer_with_the_headers(
    built: Path, client: httpx.Client
) -> None:
    (built.parent / "issues" / SAMPLE_ISSUE / "email.html").write_bytes(b"\xff\xfe broken")
    with built.open("a", encoding="utf-8") as config:
        config.write("\n  accept_unsigned_webhook_events: true\n  max_body_bytes: 1024\n")

    with running_app(built) as unsigned:
        too_big = unsigned.post("/webhooks/sendgrid", content=b"[" + b" " * 2000 + b"]")
        accepted = unsigned.post("/webhooks/sendgrid", json=[])
    crashed = client.get(f"/{SAMPLE_ISSUE}/email.html")

    assert (too_big.status_code, accepted.status_code, crashed.status_code) == (413, 200, 500)
    for reply in (too_big, accepted, crashed):
        assert_headed(reply)


def test_preview_answers_with_the_same_headers(built: Path) -> None:
    with archive_server(load_config(built)) as server:
        replies = [
            httpx.get(f"{server.url}{path}")
            for path in ("/", "/feed.xml", f"/{SAMPLE_ISSUE}/", f"/{SAMPLE_ISSUE}/email.html",
                         f"/{SAMPLE_ISSUE}", "/missing", "/unsubscribe/x")
        ]  # fmt: skip

    assert [r.status_code for r in replies] == [200, 200, 200, 200, 301, 404, 404]
    for reply in replies:
        assert_headed(reply)


def test_a_web_font_lets_its_stylesheet_host_and_https_fonts_in() -> None:
    theme = Theme(font_url="https://fonts.example.net/css2?family=Inter")

    policy = content_security_policy(theme)

    assert "style-src 'unsafe-inline' https://fonts.example.net;" in policy
    assert "font-src https:;" in policy
    assert policy.startswith("default-src 'none';")


def test_the_issue_page_needs_nothing_the_policy_forbids(sample_project: Path) -> None:
    """With no web font configured, the web copy loads no script, frame or stylesheet, and
    every image it shows (here a logo) comes from https or a data: URI."""
    text = sample_project.read_text(encoding="utf-8")
    sample_project.write_text(text.replace("# logo_url:", "logo_url:"), encoding="utf-8")
    built = run_cli(["build", "--config", str(sample_project), "--date", "2026-11-24"])
    assert built.exit_code == 0, built.output
    issue = sample_project.parent / "issues" / SAMPLE_ISSUE
    html = (issue / "index.html").read_text(encoding="utf-8")

    for forbidden in ("<script", "<iframe", "<object", '<link rel="stylesheet"', "@import"):
        assert forbidden not in html
    sources = re.findall(r"""<img[^>]*\ssrc=["']([^"']*)""", html)
    assert sources, "the sample issue shows no image: the check below would prove nothing"
    assert all(src.startswith(("https:", "data:")) for src in sources), sources
