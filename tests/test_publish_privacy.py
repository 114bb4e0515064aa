"""Publishing issues/ publishes nobody: after a build, a send to every subscriber and every
kind of report, no file in the folder and no answer of the web app names a subscriber."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

from conftest import SAMPLE_ISSUE, run_cli
from newsletter.config import load_config
from newsletter.preview import archive_server
from newsletter.store import open_store
from newsletter.web import create_app
from servers.web_app import running_app

EXTRA = ("zoe.quartermaine@example.org", "Zoë Quartermaine-Ødegård")
"""One more subscriber whose name is written differently by JSON, HTML and XML escaping."""


def private_strings(config: Path) -> set[str]:
    """Every address and name in the store, as written raw and as JSON writes it."""
    with open_store(load_config(config)) as store:
        people = list(store.all_subscribers())
    assert len(people) == 26
    found = set()
    for person in people:
        for value in (person.email, person.name):
            if value:
                found |= {value, json.dumps(value)[1:-1]}
    return found


def leaks(text: str, private: set[str]) -> list[str]:
    lowered = text.lower()
    return sorted(value for value in private if value.lower() in lowered)


@pytest.fixture
def published(built_project: Path) -> Path:
    """The sample project after a build, a send to the members list and every report."""
    config = str(built_project)
    added = run_cli(["subscribers", "add", EXTRA[0], "--name", EXTRA[1], "--list", "members",
                     "--config", config])  # fmt: skip
    assert added.exit_code == 0, added.output
    sent = run_cli(["send", SAMPLE_ISSUE, "--list", "members", "--config", config])
    assert sent.exit_code == 0, sent.output
    assert "sent 26" in sent.stdout
    for flags in ([], ["--json"], ["--csv", "--all"], ["--all"], ["--state", "sent"]):
        shown = run_cli(["report", SAMPLE_ISSUE, "--config", config, *flags])
        assert shown.exit_code == 0, shown.output
    assert EXTRA[0] in shown.stdout  # the report names people: on stdout, never in issues/
    return built_project


def test_no_file_in_issues_names_a_subscriber(published: Path) -> None:
    private = private_strings(published)
    issues = published.parent / "issues"
    outbox = published.parent / "outbox"
    assert any(EXTRA[0] in p.read_text("utf-8") for p in outbox.rglob("*.eml")), (
        "the outbox should hold the messages: else this test proves nothing"
    )

    files = [path for path in issues.rglob("*") if path.is_file()]
    assert len(files) >= 6
    found = {
        str(path.relative_to(issues)): leaks(path.read_bytes().decode("utf-8", "replace"), private)
        for path in files
    }

    assert {name: hit for name, hit in found.items() if hit} == {}


def test_no_answer_of_the_web_app_names_a_subscriber(published: Path) -> None:
    private = private_strings(published)
    issues = published.parent / "issues"
    paths = {"/" + str(p.relative_to(issues)) for p in issues.rglob("*") if p.is_file()}
    for route in create_app(load_config(published)).routes:
        assert isinstance(route, Route)
        paths.add(route.path.replace("{slug}", SAMPLE_ISSUE).replace("{token}", "x"))

    with running_app(published) as client:
        served = {path: client.get(path) for path in sorted(paths)}
    with archive_server(load_config(published)) as preview:
        previewed = {path: httpx.get(preview.url + path) for path in sorted(paths)}

    ok = {path for path, reply in served.items() if reply.status_code == 200}
    assert {"/", "/feed.xml", f"/{SAMPLE_ISSUE}/", f"/{SAMPLE_ISSUE}/email.html"} <= ok
    assert {path for path, reply in previewed.items() if reply.status_code == 200} <= ok
    for path, reply in [*served.items(), *previewed.items()]:
        assert leaks(reply.text, private) == [], path
