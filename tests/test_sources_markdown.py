"""Reading a folder of Markdown posts, as an editor keeps them beside newsletter.yml."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from newsletter.config import LoadedConfig, MarkdownSource, load_config, parse_config
from newsletter.errors import ContentWarning, SourceError
from newsletter.models import PostKind
from newsletter.sources import read_source, read_sources

LONDON = ZoneInfo("Europe/London")
REPO = Path(__file__).resolve().parents[1]


def make_config(
    tmp_path: Path, source_yaml: str, *, timezone: str = "Europe/London"
) -> LoadedConfig:
    text = textwrap.dedent(
        f"""\
        newsletter:
          name: Test Letter
          site_url: https://example.org
          timezone: {timezone}
          sender: {{name: Test, address: news@example.org}}
          postal_address: 1 Test Street, Testville
        sources:
        """
    ) + textwrap.indent(textwrap.dedent(source_yaml), "  ")
    return LoadedConfig(settings=parse_config(text), path=tmp_path / "newsletter.yml")


def write(folder: Path, relative: str, text: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def post_file(
    title: str = "A title", date: str = "2026-11-02", extra: str = "", body: str = "Body."
) -> str:
    return f"---\ntitle: {title}\ndate: {date}\n{extra}---\n{body}\n"


BLOG = """\
- name: blog
  type: markdown
  path: content
  base_url: https://example.org/blog
"""


def only_source(loaded: LoadedConfig) -> MarkdownSource:
    source = loaded.settings.sources[0]
    assert isinstance(source, MarkdownSource)
    return source


def test_reads_posts_with_ids_urls_and_rendered_bodies(tmp_path: Path) -> None:
    content = tmp_path / "content"
    write(content, "2026-11-02-first-post.md", post_file(
        "First post", "2026-11-02 09:30",
        extra="author: Ann Example\nauthor_role: Director, Example Council\n"
              "tags: [Housing, leadership]\nsummary: A short summary.\n",
        body="Hello *world*. It's \"quoted\".\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
    ))  # fmt: skip
    write(content, "notes/second.md", post_file(
        "Second", "2026-11-03", extra="id: custom-id\nurl: /elsewhere/second/\nimage: pic.png\n",
    ))  # fmt: skip
    loaded = make_config(tmp_path, BLOG)

    result = read_source(only_source(loaded), loaded)

    assert result.name == "blog"
    assert result.warnings == ()
    first, second = result.posts
    assert first.id == "blog:2026-11-02-first-post"
    assert first.url == "https://example.org/blog/first-post/"
    assert first.title == "First post"
    assert first.author == "Ann Example"
    assert first.author_role == "Director, Example Council"
    assert first.tags == ("Housing", "leadership")
    assert first.summary == "A short summary."
    assert first.kind is PostKind.POST
    assert "<em>world</em>" in first.body_html
    assert "It’s “quoted”" in first.body_html  # smarty
    assert "<table>" in first.body_html  # extra
    assert second.id == "custom-id"
    assert second.url == "https://example.org/elsewhere/second/"
    assert second.image == "https://example.org/elsewhere/second/pic.png"
    assert second.summary == "Body."


def test_without_base_url_posts_live_under_the_site_url(tmp_path: Path) -> None:
    write(tmp_path / "posts", "2026-10-01_hello.md", post_file())
    loaded = make_config(tmp_path, "- {name: news, type: markdown, path: posts}\n")
    (post,) = read_source(only_source(loaded), loaded).posts
    assert post.url == "https://example.org/hello/"
    assert post.id == "news:2026-10-01_hello"


def test_dates_are_timezone_aware_in_the_newsletter_zone(tmp_path: Path) -> None:
    content = tmp_path / "content"
    write(content, "a.md", post_file(date="2026-07-01"))  # plain date: midnight local
    write(content, "b.md", post_file(date="2026-11-02 09:30"))  # naive datetime
    write(content, "c.md", post_file(date="2026-07-01T09:30:00+00:00"))  # explicit offset
    write(content, "d.md", post_file(date="'2026-07-01T10:00'"))  # ISO string
    loaded = make_config(tmp_path, BLOG)

    posts = read_source(only_source(loaded), loaded).posts

    assert all(post.published.tzinfo is not None for post in posts)
    assert posts[0].published == datetime(2026, 7, 1, tzinfo=LONDON)
    assert posts[0].published.utcoffset().total_seconds() == 3600  # type: ignore[union-attr]
    assert posts[1].published == datetime(2026, 11, 2, 9, 30, tzinfo=UTC)  # GMT in November
    assert posts[2].published == datetime(2026, 7, 1, 9, 30, tzinfo=UTC)
    assert posts[3].published == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)  # BST in July


def test_naive_dates_follow_the_configured_zone(tmp_path: Path) -> None:
    write(tmp_path / "content", "a.md", post_file(date="2026-11-02 09:30"))
    loaded = make_config(tmp_path, BLOG, timezone="America/New_York")
    (post,) = read_source(only_source(loaded), loaded).posts
    assert post.published == datetime(2026, 11, 2, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("guest_yaml", "relative", "extra", "expected"),
    [
        ("{all: true}", "a.md", "", PostKind.GUEST),
        ("{folders: [guest]}", "guest/a.md", "", PostKind.GUEST),
        ("{folders: [guest]}", "guesthouse/a.md", "", PostKind.POST),
        ("{folders: [columns/guest]}", "columns/guest/a.md", "", PostKind.GUEST),
        ("{tags: [Guest-Column]}", "a.md", "tags: [policy, guest-column]\n", PostKind.GUEST),
        ("{tags: [guest-column]}", "a.md", "tags: [policy]\n", PostKind.POST),
        ("{authors: [ann example]}", "a.md", "author: Ann Example\n", PostKind.GUEST),
        ("{authors: [ann example]}", "a.md", "author: Bob Example\n", PostKind.POST),
        ("{}", "a.md", "kind: guest\n", PostKind.GUEST),
        ("{all: true}", "a.md", "kind: post\n", PostKind.POST),  # the file's own word wins
    ],
)
def test_guest_rules(
    tmp_path: Path, guest_yaml: str, relative: str, extra: str, expected: PostKind
) -> None:
    write(tmp_path / "content", relative, post_file(extra=extra))
    loaded = make_config(tmp_path, BLOG + f"  guest: {guest_yaml}\n")
    (post,) = read_source(only_source(loaded), loaded).posts
    assert post.kind is expected
    assert post.is_guest is (expected is PostKind.GUEST)


def test_reading_is_deterministic_and_sorted_by_path(tmp_path: Path) -> None:
    content = tmp_path / "content"
    for name in ("z.md", "a.md", "m/b.md", "m/a.md", ".hidden/x.md", "_draft.md", "readme.txt"):
        write(content, name, post_file(title=name))
    loaded = make_config(tmp_path, BLOG)

    first = read_source(only_source(loaded), loaded)
    again = read_source(only_source(loaded), loaded)

    assert [post.title for post in first.posts] == ["a.md", "m/a.md", "m/b.md", "z.md"]
    assert first == again


INVALID = [
    ("yaml.md", "---\ntitle: Fine\ndate: 2026-11-02\ntags: [unclosed\n---\nBody\n", "yaml.md:5",
     "front matter is not valid YAML"),
    ("list.md", "---\n- just\n- a list\n---\nBody\n", "list.md:2", "must be 'key: value' lines"),
    ("notitle.md", "---\ndate: 2026-11-02\n---\nBody\n", "notitle.md:1", "no 'title'"),
    ("nodate.md", "---\ntitle: Hi\n---\nBody\n", "nodate.md:1", "no 'date'"),
    ("baddate.md", "---\ntitle: Hi\n\ndate: next Tuesday\n---\n", "baddate.md:4",
     "date 'next Tuesday' is not a date"),
    ("kind.md", "---\ntitle: Hi\ndate: 2026-11-02\nkind: column\n---\n", "kind.md:4",
     "unknown kind 'column'; expected 'post' or 'guest'"),
    ("nofront.md", "# Just markdown\n", "nofront.md:1", "no front matter"),
    ("open.md", "---\ntitle: Hi\n", "open.md:1", "front matter is not closed"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "item", "message"), INVALID)
def test_invalid_front_matter_skips_the_item_with_a_warning(
    tmp_path: Path, name: str, text: str, item: str, message: str
) -> None:
    content = tmp_path / "content"
    write(content, "good.md", post_file("Good"))
    (content / name).write_text(text, encoding="utf-8")
    loaded = make_config(tmp_path, BLOG)

    result = read_source(only_source(loaded), loaded)

    assert [post.title for post in result.posts] == ["Good"]
    (warning,) = result.warnings
    assert warning.source == "blog"
    assert warning.item == item
    assert message in warning.message
    assert str(warning).startswith(f"source 'blog', item '{item}': ")


@pytest.mark.parametrize(("name", "text", "item", "message"), INVALID)
def test_strict_raises_content_warning_naming_file_and_line(
    tmp_path: Path, name: str, text: str, item: str, message: str
) -> None:
    content = tmp_path / "content"
    (content / "sub").mkdir(parents=True)
    (content / "sub" / name).write_text(text, encoding="utf-8")
    loaded = make_config(tmp_path, BLOG)

    with pytest.raises(ContentWarning) as caught:
        read_sources(loaded, strict=True)

    shown = str(caught.value)
    assert shown.startswith(f"source 'blog': content/sub/{item}: ")
    assert message in shown
    assert "without --strict" in shown


def test_a_missing_folder_is_a_source_error_that_says_what_to_do(tmp_path: Path) -> None:
    loaded = make_config(tmp_path, BLOG)
    with pytest.raises(SourceError) as caught:
        read_sources(loaded)
    message = str(caught.value)
    assert f"source 'blog': the Markdown folder {tmp_path / 'content'} does not exist" in message
    assert "correct 'path'" in message
    assert caught.value.exit_code == 3


def test_a_file_where_the_folder_should_be_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "content").write_text("not a folder", encoding="utf-8")
    loaded = make_config(tmp_path, BLOG)
    with pytest.raises(SourceError, match="is not a folder"):
        read_sources(loaded)


def test_body_html_is_sanitised_and_links_absolute(tmp_path: Path) -> None:
    body = (
        "See [the other post](../other/) and ![chart](img/chart.png).\n\n"
        '<p onclick="steal()">Click <a href="javascript:alert(1)">here</a></p>\n\n'
        "<script>alert('x')</script>\n"
    )
    write(tmp_path / "content", "2026-11-02-post.md", post_file(body=body))
    loaded = make_config(tmp_path, BLOG)
    (post,) = read_source(only_source(loaded), loaded).posts
    assert 'href="https://example.org/blog/other/"' in post.body_html
    assert 'src="https://example.org/blog/post/img/chart.png"' in post.body_html
    for gone in ("onclick", "javascript", "<script", "alert"):
        assert gone not in post.body_html
    assert post.summary == "See the other post and ."


def test_the_bundled_samples_read_without_warnings() -> None:
    loaded = load_config(REPO / "newsletter.yml")
    blog, partners = read_sources(loaded, strict=True)

    assert blog.warnings == () and partners.warnings == ()
    regular = [post for post in blog.posts if not post.is_guest]
    guests = [post for post in blog.posts if post.is_guest]
    assert len(regular) >= 6 and len(guests) >= 3
    assert all(post.author and post.author_role for post in guests)
    assert all(datetime(2026, 10, 1, tzinfo=UTC) <= post.published < datetime(2026, 12, 1,
               tzinfo=UTC) for post in blog.posts)  # fmt: skip
    assert all(post.url.startswith("https://leading-together.example.org/blog/")
               for post in blog.posts)  # fmt: skip
    every_body = "".join(post.body_html for post in blog.posts)
    assert "<script" not in every_body and "onclick" not in every_body
    assert len(partners.posts) == 3
    assert len({post.id for post in (*blog.posts, *partners.posts)}) == 12


def test_a_second_file_with_the_same_id_is_skipped_with_a_warning(tmp_path: Path) -> None:
    content = tmp_path / "content"
    write(content, "a.md", post_file("First", extra="id: shared\n"))
    write(content, "b.md", post_file("Second", extra="id: shared\n"))
    loaded = make_config(tmp_path, BLOG)

    result = read_source(only_source(loaded), loaded)

    assert [post.title for post in result.posts] == ["First"]
    assert [str(warning) for warning in result.warnings] == [
        "source 'blog', item 'b.md': has the same id as an earlier item ('shared')"
    ]
