"""End to end: build the bundled sample and read the result as a subscriber's client would."""

from __future__ import annotations

import json
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import run_cli
from newsletter.build import build_issue
from newsletter.config import load_config
from newsletter.errors import NothingNewError

ON = "2026-11-24"


class LinkCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"] or "")
        if tag == "img" and values.get("src"):
            self.srcs.append(values["src"] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_sample_issue_end_to_end(sample_project: Path) -> None:
    result = run_cli(["build", "--config", str(sample_project), "--date", ON])
    assert result.exit_code == 0, result.output
    folder = sample_project.parent / "issues" / f"001-{ON}"
    assert f"built issue 1 ({ON}): {folder}" in result.stdout

    html = (folder / "email.html").read_text(encoding="utf-8")
    text = (folder / "email.txt").read_text(encoding="utf-8")
    issue = json.loads((folder / "issue.json").read_text(encoding="utf-8"))

    assert issue["number"] == 1
    assert issue["date"] == ON
    assert len(issue["items"]) == 7  # 5 posts (lead included) and 2 guest columns
    assert sum(1 for item in issue["items"] if item["kind"] == "guest") == 2

    parser = LinkCollector()
    parser.feed(html)
    page_text = " ".join(parser.text)
    for item in issue["items"]:
        assert item["title"] in page_text, item["title"]
        assert item["url"] in parser.hrefs
        assert item["title"] in text
        assert item["url"] in text
    for url in parser.hrefs + parser.srcs:
        assert url.startswith(("https://", "http://", "mailto:", "%%")), url
    assert "%%unsubscribe_url%%" in parser.hrefs

    for leftover in ("{{", "}}", "{%", "%}", "<mj-", "<script", "onclick"):
        assert leftover not in html, leftover
        assert leftover not in text, leftover
    assert "@media" in html
    assert "<!--[if mso" in html
    assert 'lang="en-GB"' in html
    assert html.startswith("<!DOCTYPE html>")
    assert len(html.encode("utf-8")) < 102 * 1024  # Gmail clips longer messages

    assert issue["subject"] in html  # <title>
    assert issue["preheader"][:60] in html
    assert "Leading Together Network, 10 Example Street" in text
    assert "Unsubscribe: %%unsubscribe_url%%" in text
    assert re.search(r"^\[1\] https://", text, re.MULTILINE)

    archive_index = (sample_project.parent / "issues" / "index.html").read_text()
    assert f'href="001-{ON}/"' in archive_index
    web = (folder / "index.html").read_text(encoding="utf-8")
    assert "%%" not in web
    assert "Hello there," in web
    assert "mailto:editors@leading-together.example.org?subject=unsubscribe" in web
    assert f"https://leading-together.example.org/newsletter/001-{ON}/" in html
    assert "<entry>" in (sample_project.parent / "issues" / "feed.xml").read_text()


def test_same_inputs_give_byte_identical_files(sample_project: Path, tmp_path: Path) -> None:
    run_cli(["build", "--config", str(sample_project), "--date", ON])
    issues = sample_project.parent / "issues"
    first = {p.relative_to(issues): p.read_bytes() for p in issues.rglob("*") if p.is_file()}
    for path in issues.rglob("*"):
        if path.is_file():
            path.unlink()
    for path in sorted(issues.rglob("*"), reverse=True):
        path.rmdir()
    run_cli(["build", "--config", str(sample_project), "--date", ON])
    second = {p.relative_to(issues): p.read_bytes() for p in issues.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    assert first == second


def test_second_build_features_only_new_items(sample_project: Path) -> None:
    loaded = load_config(sample_project)
    first = build_issue(loaded, on=date(2026, 11, 24))
    assert first.archived is not None
    # The sample has 12 items: 9 posts and 3 guest columns; the first issue took 5 and 2.
    second = build_issue(loaded, on=date(2026, 11, 25))
    assert second.archived is not None
    assert second.rendered.meta.number == 2
    first_ids = {item.id for item in first.archived.items}
    second_ids = {item.id for item in second.archived.items}
    assert first_ids.isdisjoint(second_ids)
    assert len(second_ids) == 5  # 4 remaining posts and 1 remaining guest column


def test_nothing_new_exits_10_and_writes_nothing(sample_project: Path) -> None:
    loaded = load_config(sample_project)
    build_issue(loaded, on=date(2026, 11, 24))
    build_issue(loaded, on=date(2026, 11, 25))
    issues = sample_project.parent / "issues"
    before = sorted(p.name for p in issues.iterdir())
    with pytest.raises(NothingNewError):
        build_issue(loaded, on=date(2026, 11, 26))
    result = run_cli(["build", "--config", str(sample_project), "--date", "2026-11-26"])
    assert result.exit_code == 10
    assert "not enough new items" in result.stderr
    assert sorted(p.name for p in issues.iterdir()) == before


def test_dry_run_writes_nothing(sample_project: Path) -> None:
    result = run_cli(["build", "--config", str(sample_project), "--date", ON, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would write issue 1" in result.stdout
    assert re.search(r"html: \d+\.\d KB\s+text: \d+\.\d KB", result.stdout)
    assert not (sample_project.parent / "issues").exists()


def test_validate_reports_the_sources(sample_project: Path) -> None:
    result = run_cli(["validate", "--config", str(sample_project)])
    assert result.exit_code == 0, result.output
    assert "valid. 2 sources, 12 items (9 posts, 3 guest columns)" in result.stdout


def test_build_times_each_stage(sample_project: Path) -> None:
    result = build_issue(load_config(sample_project), on=date(2026, 11, 24), dry_run=True)
    assert set(result.timings) == {"sources", "select", "render"}
    assert all(seconds > 0 for seconds in result.timings.values())
