"""The issue archive over real HTTP, and `newsletter serve` run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import run_cli
from servers.web_app import first_answer, free_port, running_app

SLUG = "001-2026-11-24"
SUBJECT = "Leading Together #1: Free masterclasses on leading through budget pressures"


@pytest.fixture
def built(sample_project: Path) -> Path:
    result = run_cli(["build", "--config", str(sample_project), "--date", "2026-11-24"])
    assert result.exit_code == 0, result.output
    return sample_project


@pytest.fixture
def client(built: Path) -> Iterator[httpx.Client]:
    with running_app(built) as http:
        yield http


def test_the_index_lists_the_issue(client: httpx.Client) -> None:
    root = client.get("/")
    named = client.get("/index.html")

    assert root.status_code == 200
    assert root.headers["content-type"].startswith("text/html")
    assert SUBJECT in root.text
    assert f'href="{SLUG}/"' in root.text
    assert named.text == root.text


def test_an_issue_folder_typed_without_its_slash_is_redirected(client: httpx.Client) -> None:
    reply = client.get(f"/{SLUG}")

    assert reply.status_code == 301
    assert reply.headers["location"] == f"{SLUG}/"


def test_the_feed_is_served_as_atom(client: httpx.Client) -> None:
    feed = client.get("/feed.xml")

    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("application/atom+xml")
    assert SUBJECT in feed.text


@pytest.mark.parametrize("page", [f"/{SLUG}/", f"/{SLUG}/index.html", f"/{SLUG}/email.html"])
def test_an_issue_page_has_its_merge_fields_filled_for_nobody_in_particular(
    client: httpx.Client, page: str
) -> None:
    reply = client.get(page)

    assert reply.status_code == 200
    assert "Hello there," in reply.text
    assert "%%" not in reply.text
    assert 'href="mailto:editors@leading-together.example.org?subject=unsubscribe"' in reply.text


def test_an_issue_archived_without_a_web_copy_still_reads_well(
    built: Path, client: httpx.Client
) -> None:
    (built.parent / "issues" / SLUG / "index.html").unlink()

    reply = client.get(f"/{SLUG}/")

    assert reply.status_code == 200
    assert "Hello there," in reply.text
    assert "%%" not in reply.text


@pytest.mark.parametrize(
    "path",
    [
        "/002-2026-12-08",
        "/002-2026-12-08/",
        "/002-2026-12-08/email.html",
        f"/{SLUG}/send-report.json",
        f"/{SLUG}/issue.json",
        "/.tmp-staging/email.html",
        "/newsletter.db",
    ],
)
def test_missing_issues_and_private_files_are_not_found(
    built: Path, client: httpx.Client, path: str
) -> None:
    issues = built.parent / "issues"
    (issues / SLUG / "send-report.json").write_text('{"failures": [{"email": "a@b.c"}]}')
    (issues / ".tmp-staging").mkdir()
    (issues / ".tmp-staging" / "email.html").write_text("half-written")

    reply = client.get(path)

    assert reply.status_code == 404
    assert "Page not found" in reply.text
    assert "a@b.c" not in reply.text


def test_before_the_first_issue_the_front_page_is_not_found(sample_project: Path) -> None:
    with running_app(sample_project) as client:
        assert client.get("/").status_code == 404


def serve_once(config: Path, *options: str) -> tuple[httpx.Response, httpx.Response, str]:
    """``newsletter serve`` run as a user runs it: the front page, a bad unsubscribe link,
    and everything the command printed."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "newsletter", "serve", "--config", str(config)]
    server = subprocess.Popen(
        [*command, "--port", str(port), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        front = first_answer(server, f"{base}/")
        bad_link = httpx.get(f"{base}/unsubscribe/SECRETTOKENabc123", timeout=5)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=10)
    assert f"on http://127.0.0.1:{port}/" in output
    return front, bad_link, output


def test_newsletter_serve_runs_and_keeps_tokens_out_of_its_log(built: Path) -> None:
    front, bad_link, output = serve_once(built, "--access-log")

    assert front.status_code == 200
    assert SUBJECT in front.text
    assert bad_link.status_code == 400
    assert "SendGrid Event Webhook: off (answers 503): set web.sendgrid_webhook_key" in output
    assert "/unsubscribe/<token>" in output
    assert '"GET /unsubscribe/<token> HTTP/1.1" 400' in output
    assert "SECRETTOKENabc123" not in output


def test_newsletter_serve_logs_no_request_unless_asked(built: Path) -> None:
    front, bad_link, output = serve_once(built)

    assert (front.status_code, bad_link.status_code) == (200, 400)
    assert "Application startup complete" in output
    assert "GET /" not in output
