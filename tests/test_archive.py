"""The issues/ folder: whole issues or none, numbering, lookup, index page and Atom feed."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from newsletter.archive import Archive, atomic_write, content_hash
from newsletter.config import NewsletterInfo
from newsletter.errors import ArchiveError
from newsletter.models import IssueMeta, Post, PostKind, RenderedIssue, Selection

ATOM = "{http://www.w3.org/2005/Atom}"
NEWSLETTER = NewsletterInfo.model_validate(
    {
        "name": "Leading Together",
        "description": "News from the network",
        "site_url": "https://example.org",
        "archive_url": "https://news.example.org/issues",
        "sender": {"name": "Editors", "address": "news@example.org"},
        "postal_address": "1 Example Street",
    }
)


def make_post(ident: str, *, kind: PostKind = PostKind.POST) -> Post:
    return Post(
        id=ident,
        source="blog",
        title=f"Title {ident}",
        url=f"https://example.org/posts/{ident}",
        published=datetime(2026, 11, 20, tzinfo=UTC),
        kind=kind,
    )


def rendered(
    number: int,
    day: date = date(2026, 11, 24),
    *,
    subject: str | None = None,
    items: tuple[str, ...] = ("lead", "second"),
    guests: tuple[str, ...] = ("guest",),
) -> RenderedIssue:
    posts = [make_post(f"{ident}-{number}") for ident in items]
    selection = Selection(
        lead=posts[0],
        posts=tuple(posts[1:]),
        guests=tuple(make_post(f"{g}-{number}", kind=PostKind.GUEST) for g in guests),
    )
    meta = IssueMeta(
        number=number,
        date=day,
        subject=subject or f"Issue {number}: news",
        preheader=f"Preheader of issue {number}",
    )
    return RenderedIssue(
        meta=meta,
        selection=selection,
        html=f"<html><body><h1>Issue {number}</h1></body></html>",
        text=f"Issue {number}\n",
        view_url=f"https://news.example.org/issues/{meta.slug}/email.html",
    )


@pytest.fixture
def issues_dir(tmp_path: Path) -> Path:
    return tmp_path / "issues"


@pytest.fixture
def archive(issues_dir: Path) -> Archive:
    return Archive(issues_dir, newsletter=NEWSLETTER)


def test_write_issue_lays_out_the_folder_and_reads_back(archive: Archive, issues_dir: Path) -> None:
    issue = rendered(1)
    written = archive.write_issue(issue)

    folder = issues_dir / "001-2026-11-24"
    assert sorted(p.name for p in folder.iterdir()) == [
        "email.html",
        "email.txt",
        "index.html",
        "issue.json",
    ]
    assert (folder / "email.html").read_text(encoding="utf-8") == issue.html
    assert (folder / "email.txt").read_text(encoding="utf-8") == issue.text
    assert (issues_dir / "index.html").is_file()
    assert (issues_dir / "feed.xml").is_file()

    record = json.loads((folder / "issue.json").read_text(encoding="utf-8"))
    assert record == {
        "number": 1,
        "date": "2026-11-24",
        "subject": "Issue 1: news",
        "preheader": "Preheader of issue 1",
        "slug": "001-2026-11-24",
        "view_url": "https://news.example.org/issues/001-2026-11-24/email.html",
        "content_hash": content_hash(issue.html, issue.text),
        "items": [
            {
                "id": "lead-1",
                "url": "https://example.org/posts/lead-1",
                "title": "Title lead-1",
                "kind": "post",
            },
            {
                "id": "second-1",
                "url": "https://example.org/posts/second-1",
                "title": "Title second-1",
                "kind": "post",
            },
            {
                "id": "guest-1",
                "url": "https://example.org/posts/guest-1",
                "title": "Title guest-1",
                "kind": "guest",
            },
        ],
    }
    raw = (folder / "issue.json").read_text(encoding="utf-8")
    assert raw.endswith("}\n")
    assert raw == json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    [read] = archive.issues()
    assert read == written
    assert read.number == 1
    assert read.date == date(2026, 11, 24)
    assert read.path == str(folder)
    assert read.html_path == f"{folder}/email.html"
    assert [item.kind for item in read.items] == ["post", "post", "guest"]


def test_numbering_and_featured_keys_follow_the_archive(archive: Archive) -> None:
    assert archive.issues() == []
    assert archive.next_number() == 1
    assert archive.next_number(first_number=40) == 40
    archive.write_issue(rendered(40, date(2026, 11, 10)))
    archive.write_issue(rendered(41, date(2026, 11, 17)))
    assert archive.next_number(first_number=40) == 42
    assert [issue.number for issue in archive.issues()] == [40, 41]
    keys = archive.featured_keys()
    assert {"lead-40", "guest-41", "https://example.org/posts/second-41"} <= keys
    assert len(keys) == 12


def test_content_hash_covers_both_bodies_unambiguously() -> None:
    first = content_hash("<p>a</p>", "a")
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 64
    assert first == content_hash("<p>a</p>", "a")
    assert first != content_hash("<p>a</p>", "b")
    assert content_hash("ab", "c") != content_hash("a", "bc")


def test_find_by_slug_number_folder_and_latest(
    archive: Archive, issues_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in (1, 2, 3):
        archive.write_issue(rendered(number, date(2026, 11, number)))
    assert archive.find("002-2026-11-02").number == 2
    assert archive.find("3").number == 3
    assert archive.find("003").number == 3
    assert archive.find("latest").number == 3
    assert archive.find(str(issues_dir / "001-2026-11-01")).number == 1
    assert archive.find(str(issues_dir / "001-2026-11-01") + "/").number == 1
    monkeypatch.chdir(issues_dir.parent)
    assert archive.find("issues/002-2026-11-02").number == 2


def test_find_unknown_lists_what_exists(archive: Archive, issues_dir: Path) -> None:
    with pytest.raises(ArchiveError) as empty:
        archive.find("latest")
    assert str(issues_dir) in empty.value.message
    assert "holds no issues yet" in empty.value.message

    archive.write_issue(rendered(1, date(2026, 11, 1)))
    archive.write_issue(rendered(2, date(2026, 11, 8)))
    with pytest.raises(ArchiveError) as caught:
        archive.find("7")
    assert caught.value.message == (
        f"no issue matches '7' in {issues_dir}; it holds 001-2026-11-01, 002-2026-11-08"
    )
    assert caught.value.exit_code == 5


def test_reading_ignores_what_is_not_an_issue(archive: Archive, issues_dir: Path) -> None:
    archive.write_issue(rendered(1))
    (issues_dir / ".tmp-002-2026-12-01-abc").mkdir()
    (issues_dir / ".tmp-002-2026-12-01-abc" / "issue.json").write_text("{broken")
    (issues_dir / "assets").mkdir()
    (issues_dir / "assets" / "logo.png").write_bytes(b"\x89PNG")
    (issues_dir / "notes.txt").write_text("hello")
    assert [issue.slug for issue in archive.issues()] == ["001-2026-11-24"]
    assert archive.next_number() == 2


def test_corrupt_issue_json_names_the_file(archive: Archive, issues_dir: Path) -> None:
    archive.write_issue(rendered(1))
    record_path = issues_dir / "001-2026-11-24" / "issue.json"
    record_path.write_text('{"number": 1,\n  "date": ', encoding="utf-8")
    with pytest.raises(ArchiveError) as caught:
        archive.issues()
    assert caught.value.message.startswith(f"{record_path}: corrupt issue record: line 2:")

    record_path.write_text(json.dumps({"number": "one"}), encoding="utf-8")
    with pytest.raises(ArchiveError) as wrong_type:
        archive.next_number()
    assert wrong_type.value.message == (
        f"{record_path}: corrupt issue record: 'number': expected a whole number, got 'one'"
    )
    assert wrong_type.value.hint is not None and "remove that issue folder" in wrong_type.value.hint

    record_path.write_text(json.dumps({"number": 1}), encoding="utf-8")
    with pytest.raises(ArchiveError, match=r"'date': expected a date string, got nothing"):
        archive.featured_keys()


def test_existing_issue_folder_is_never_overwritten(archive: Archive, issues_dir: Path) -> None:
    archive.write_issue(rendered(1))
    html = (issues_dir / "001-2026-11-24" / "email.html").read_text(encoding="utf-8")
    replacement = rendered(1, subject="Replacement")
    with pytest.raises(ArchiveError) as caught:
        archive.write_issue(replacement)
    assert str(issues_dir / "001-2026-11-24") in caught.value.message
    assert "already exists" in caught.value.message
    assert caught.value.hint == "remove that folder to rebuild it, or build for another --date"
    assert (issues_dir / "001-2026-11-24" / "email.html").read_text(encoding="utf-8") == html
    assert archive.find("1").subject == "Issue 1: news"


def test_unwritable_output_folder_names_it(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    under_a_file = Archive(blocker / "issues", newsletter=NEWSLETTER)
    with pytest.raises(ArchiveError) as caught:
        under_a_file.write_issue(rendered(1))
    assert caught.value.message == (
        f"{blocker / 'issues'}: cannot write to the issues folder: "
        "the path (or a folder above it) is a file, not a folder"
    )
    assert "output.directory" in str(caught.value)

    is_a_file = Archive(blocker, newsletter=NEWSLETTER)
    with pytest.raises(ArchiveError, match="is a file, not a folder"):
        is_a_file.write_issue(rendered(1))
    with pytest.raises(ArchiveError, match="is a file, not a folder"):
        is_a_file.issues()
    assert blocker.read_text() == "not a folder"


def test_failure_while_moving_into_place_leaves_nothing(
    archive: Archive, issues_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive.write_issue(rendered(1, date(2026, 11, 1)))
    before = sorted(p.name for p in issues_dir.iterdir())

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(ArchiveError, match="No space left on device"):
        archive.write_issue(rendered(2, date(2026, 11, 8)))
    monkeypatch.undo()

    assert sorted(p.name for p in issues_dir.iterdir()) == before
    assert archive.next_number() == 2


def test_failure_updating_the_indexes_takes_the_issue_back_out(
    archive: Archive, issues_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive.write_issue(rendered(1, date(2026, 11, 1)))
    index_before = (issues_dir / "index.html").read_bytes()
    feed_before = (issues_dir / "feed.xml").read_bytes()

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ArchiveError, match="issue 002-2026-11-08 was not archived"):
        archive.write_issue(rendered(2, date(2026, 11, 8)))
    monkeypatch.undo()

    assert sorted(p.name for p in issues_dir.iterdir()) == [
        "001-2026-11-01",
        "feed.xml",
        "index.html",
    ]
    assert (issues_dir / "index.html").read_bytes() == index_before
    assert (issues_dir / "feed.xml").read_bytes() == feed_before
    assert archive.next_number() == 2


def test_index_and_feed_are_byte_identical_for_the_same_issues(tmp_path: Path) -> None:
    outputs = []
    for name in ("one", "two"):
        archive = Archive(tmp_path / name, newsletter=NEWSLETTER)
        archive.write_issue(rendered(1, date(2026, 11, 1)))
        archive.write_issue(rendered(2, date(2026, 11, 8)))
        archive.write_indexes()
        outputs.append(
            (
                (tmp_path / name / "index.html").read_bytes(),
                (tmp_path / name / "feed.xml").read_bytes(),
            )
        )
    assert outputs[0] == outputs[1]


def test_index_lists_issues_newest_first_and_escapes_subjects(
    archive: Archive, issues_dir: Path
) -> None:
    archive.write_issue(rendered(1, date(2026, 11, 1), subject="Fish & <chips>"))
    archive.write_issue(rendered(2, date(2026, 11, 8), subject='Say "hello"'))
    page = (issues_dir / "index.html").read_text(encoding="utf-8")
    assert page.index('href="002-2026-11-08/"') < page.index('href="001-2026-11-01/"')
    assert '<a href="001-2026-11-01/">Fish &amp; &lt;chips&gt;</a>' in page
    assert "<chips>" not in page
    assert "Say &#34;hello&#34;" in page
    assert '#2 · <time datetime="2026-11-08">2026-11-08</time>' in page
    assert "No issues yet" not in page
    assert "<title>Leading Together: all issues</title>" in page


def test_feed_is_atom_with_one_entry_per_issue(archive: Archive, issues_dir: Path) -> None:
    archive.write_issue(rendered(1, date(2026, 11, 1), subject="Fish & <chips>"))
    archive.write_issue(rendered(2, date(2026, 11, 8)))
    root = ET.parse(issues_dir / "feed.xml").getroot()
    assert root.tag == f"{ATOM}feed"
    assert root.findtext(f"{ATOM}id") == "https://news.example.org/issues/"
    assert root.findtext(f"{ATOM}title") == "Leading Together"
    assert root.findtext(f"{ATOM}updated") == "2026-11-08T00:00:00Z"
    entries = root.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}id") for e in entries] == [
        "https://news.example.org/issues/002-2026-11-08/",
        "https://news.example.org/issues/001-2026-11-01/",
    ]
    oldest = entries[1]
    assert oldest.findtext(f"{ATOM}title") == "Fish & <chips>"
    assert oldest.findtext(f"{ATOM}updated") == "2026-11-01T00:00:00Z"
    assert oldest.findtext(f"{ATOM}summary") == "Preheader of issue 1"
    link = oldest.find(f"{ATOM}link")
    assert link is not None
    assert link.get("href") == "https://news.example.org/issues/001-2026-11-01/"


def test_feed_falls_back_to_the_site_archive_url(tmp_path: Path) -> None:
    info = NEWSLETTER.model_copy(update={"archive_url": None})
    archive = Archive(tmp_path / "issues", newsletter=info)
    archive.write_issue(rendered(1))
    root = ET.parse(tmp_path / "issues" / "feed.xml").getroot()
    [entry] = root.findall(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}id") == "https://example.org/newsletter/001-2026-11-24/"


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "page.html"
    atomic_write(target, "first")
    atomic_write(target, b"second")
    assert target.read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_stale_temp_folders_from_a_crash_are_cleared(archive: Archive, issues_dir: Path) -> None:
    issues_dir.mkdir()
    stale = issues_dir / ".tmp-001-2026-11-24-crashed"
    fresh = issues_dir / ".tmp-001-2026-11-24-running"
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (0, 0))
    archive.write_issue(rendered(1))
    assert not stale.exists()
    assert fresh.exists()


def test_indexes_of_an_empty_archive(archive: Archive, issues_dir: Path) -> None:
    archive.write_indexes()
    assert "<p>No issues yet.</p>" in (issues_dir / "index.html").read_text(encoding="utf-8")
    root = ET.parse(issues_dir / "feed.xml").getroot()
    assert root.findall(f"{ATOM}entry") == []
    assert root.findtext(f"{ATOM}updated") == "1970-01-01T00:00:00Z"
