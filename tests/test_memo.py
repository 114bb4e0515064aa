"""The build's cache (.newsletter/cache/): a source or a render is answered from it only
while nothing it was made from has changed, and a build never files anything else than
what a build without the cache files."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from conftest import edit, make_sample_project, run_cli, set_setting
from newsletter.build import BuildResult, build_issue
from newsletter.config import load_config
from newsletter.memo import KEPT_ENTRIES, Memo, _code_files, cache_dir
from newsletter.models import Post, PostKind, SourceResult
from newsletter.post_json import NotKept, result_from_json, result_to_json

ON = "2026-11-24"
MENTORING = "samples/content/2026-11-10-mentoring-circles.md"


def dry_run(config: Path, *extra: str) -> dict[str, Any]:
    result = run_cli(
        ["build", "--config", str(config), "--date", ON, "--dry-run", "--json", *extra]
    )
    assert result.exit_code == 0, result.output
    shape: dict[str, Any] = json.loads(result.stdout)
    del shape["seconds"]
    return shape


def built(config: Path) -> BuildResult:
    return build_issue(load_config(config), on=date(2026, 11, 24), dry_run=True)


def entries(config: Path, kind: str) -> list[Path]:
    return sorted((cache_dir(config.parent) / kind).glob("*.json"))


def test_a_second_dry_run_is_answered_from_the_cache_with_the_same_issue(
    sample_project: Path,
) -> None:
    first = dry_run(sample_project)
    assert len(entries(sample_project, "sources")) == 2  # the Markdown folder and the feed file
    assert len(entries(sample_project, "render")) == 1
    kept = {
        path: (path.stat().st_ino, path.read_bytes()) for path in entries(sample_project, "render")
    }

    assert dry_run(sample_project) == first
    assert {
        path: (path.stat().st_ino, path.read_bytes()) for path in entries(sample_project, "render")
    } == kept  # read, not written again


def test_a_post_edited_at_the_same_size_is_read_again(sample_project: Path) -> None:
    before = dry_run(sample_project)
    post = sample_project.parent / MENTORING
    size = post.stat().st_size

    edit(post, "title: Mentoring circles open", "title: Mentoring circles OPEN")

    assert post.stat().st_size == size
    titles = [item["title"] for item in dry_run(sample_project)["items"]]
    assert "Mentoring circles OPEN for the new year" in titles
    assert "Mentoring circles open for the new year" in [i["title"] for i in before["items"]]


def test_a_post_added_to_the_folder_is_read(sample_project: Path) -> None:
    dry_run(sample_project)
    (sample_project.parent / "samples/content/2026-11-23-late-news.md").write_text(
        "---\ntitle: Late news from the network\ndate: 2026-11-23\n---\nJust in.\n",
        encoding="utf-8",
    )

    lead = dry_run(sample_project)["items"][0]

    assert lead["title"] == "Late news from the network"


def test_an_edited_template_renders_again(sample_project: Path) -> None:
    built(sample_project)
    template = sample_project.parent / "templates/default/email.txt.j2"
    template.write_text(template.read_text(encoding="utf-8") + "\nEdited footer line\n")

    assert "Edited footer line" in built(sample_project).rendered.text


def test_an_edited_setting_renders_again(sample_project: Path) -> None:
    dry_run(sample_project)
    set_setting(sample_project, "issue.subject", "Issue {{ issue.number }} of the week")

    assert dry_run(sample_project)["issue"]["subject"] == "Issue 1 of the week"


def test_a_build_after_a_dry_run_files_what_a_build_without_the_cache_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "cached").mkdir()
    (tmp_path / "fresh").mkdir()
    cached = make_sample_project(tmp_path / "cached")
    fresh = make_sample_project(tmp_path / "fresh")
    dry_run(cached)

    for config in (cached, fresh):
        result = run_cli(["build", "--config", str(config), "--date", ON])
        assert result.exit_code == 0, result.output

    issue = Path("issues") / f"001-{ON}"
    for name in ("email.html", "email.txt", "index.html", "issue.json"):
        kept = (cached.parent / issue / name).read_text(encoding="utf-8")
        made = (fresh.parent / issue / name).read_text(encoding="utf-8")
        assert kept == made.replace(str(fresh.parent), str(cached.parent)), name


def test_strict_reads_again_a_source_whose_kept_result_skipped_items(
    sample_project: Path,
) -> None:
    (sample_project.parent / "samples/content/untitled.md").write_text(
        "---\ndate: 2026-11-20\n---\nNo title.\n", encoding="utf-8"
    )
    assert dry_run(sample_project)["warnings"]  # kept with its skipped item

    result = run_cli(
        ["build", "--config", str(sample_project), "--date", ON, "--dry-run", "--strict"]
    )

    assert result.exit_code == 3
    assert "samples/content/untitled.md:1" in result.output


def test_a_cache_folder_that_cannot_be_written_changes_nothing(sample_project: Path) -> None:
    blocker = cache_dir(sample_project.parent)
    blocker.parent.mkdir()
    blocker.write_text("not a folder")

    first = dry_run(sample_project)

    assert dry_run(sample_project) == first
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("garbage", ["{not json", '{"subject": 1}', '{"name": "blog"}', "null"])
def test_an_entry_that_cannot_be_read_counts_as_absent(sample_project: Path, garbage: str) -> None:
    first = dry_run(sample_project)
    for kind in ("sources", "render"):
        for entry in entries(sample_project, kind):
            entry.write_text(garbage)

    assert dry_run(sample_project) == first
    assert all(
        entry.read_text() != garbage
        for kind in ("sources", "render")
        for entry in entries(sample_project, kind)
    )


def test_the_cache_keeps_the_entries_of_a_kind_used_last(tmp_path: Path) -> None:
    memo = Memo(tmp_path, "sources")
    memo.put("unchanged", "feed")
    os.utime(memo.folder / "unchanged.json", ns=(0, 0))  # kept long ago
    for number in range(KEPT_ENTRIES + 5):
        assert memo.get("unchanged") == "feed"  # every build uses an unchanged source's entry
        memo.put(f"edit{number}", number)  # while another source is edited again and again
        kept_at = (number + 1) * 10**9
        os.utime(memo.folder / f"edit{number}.json", ns=(kept_at, kept_at))

    assert len(list(memo.folder.glob("*.json"))) == KEPT_ENTRIES
    assert memo.get("unchanged") == "feed"
    assert memo.get(f"edit{KEPT_ENTRIES + 4}") == KEPT_ENTRIES + 4
    assert memo.get("edit0") is None


def post_at(moment: datetime) -> Post:
    return Post(
        id="blog:x", source="blog", title="T", url="https://example.org/x/", published=moment,
        kind=PostKind.GUEST, author="Ann", summary="S", body_html="<p>B</p>", tags=("a", "b"),
    )  # fmt: skip


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 10, 25, 1, 30, fold=1, tzinfo=ZoneInfo("Europe/London")),  # 2nd 01:30
        datetime(2026, 11, 2, 9, 30, tzinfo=ZoneInfo("Europe/London")),
        datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        datetime(2026, 11, 2, 9, 30, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_a_post_reads_back_exactly_with_its_zone(moment: datetime) -> None:
    result = SourceResult(name="blog", posts=(post_at(moment),))

    back = result_from_json(json.loads(json.dumps(result_to_json(result))))

    assert repr(back) == repr(result)
    assert back.posts[0].published.utcoffset() == moment.utcoffset()


def test_a_zone_that_would_not_read_back_is_not_kept() -> None:
    class OtherZone(tzinfo):
        def utcoffset(self, moment: datetime | None) -> timedelta:
            return timedelta(0)

    result = SourceResult(name="blog", posts=(post_at(datetime(2026, 1, 1, tzinfo=OtherZone())),))

    with pytest.raises(NotKept):
        result_to_json(result)


def test_a_source_that_cannot_be_read_is_reported_and_nothing_is_kept(tmp_path: Path) -> None:
    config = make_sample_project(tmp_path)
    shutil.rmtree(config.parent / "samples")

    result = run_cli(["build", "--config", str(config), "--date", ON, "--dry-run"])

    assert result.exit_code == 3  # the source folder is gone: nothing to keep
    assert not (cache_dir(config.parent) / "sources").exists()


def test_the_code_stamp_covers_every_code_file_and_changes_with_any_of_them(tmp_path: Path) -> None:
    """What keys every cache entry: each .py and .po file at any depth, and nothing else,
    so an edit or a reinstall of one module is a miss, and compiled bytecode never is."""
    package = tmp_path / "package"
    for name in ("a.py", "deep/er/b.py", "locales/fr/c.po", "__pycache__/a.cpython.pyc",
                 "deep/__pycache__/b.py", "templates/email.mjml", "py.typed"):  # fmt: skip
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(name)

    stamp = sorted(_code_files(str(package), ""))

    assert [path for path, _ in stamp] == ["a.py", "deep/er/b.py", "locales/fr/c.po"]
    (package / "deep/er/b.py").write_text("changed, and longer than before")
    assert sorted(_code_files(str(package), "")) != stamp
