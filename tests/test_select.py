"""Selection rules: which posts make the next issue, in which order, and when none do."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from newsletter.config import SelectionSettings
from newsletter.errors import NothingNewError
from newsletter.models import Post, PostKind, Selection
from newsletter.select import select_items

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def post(
    ident: str, days_ago: float, *, kind: PostKind = PostKind.POST, url: str | None = None
) -> Post:
    return Post(
        id=ident,
        source="blog" if kind is PostKind.POST else "partners",
        title=f"Title {ident}",
        url=url or f"https://example.org/{ident}",
        published=NOW - timedelta(days=days_ago),
        kind=kind,
    )


def guest(ident: str, days_ago: float, *, url: str | None = None) -> Post:
    return post(ident, days_ago, kind=PostKind.GUEST, url=url)


def select(
    candidates: list[Post], /, *, featured: set[str] | None = None, **settings: object
) -> Selection:
    return select_items(
        candidates,
        featured=featured or set(),
        settings=SelectionSettings(**settings),  # type: ignore[arg-type]
        now=NOW,
    )


def ids(selection: Selection) -> list[str]:
    return [item.id for item in selection.items]


def test_newest_posts_first_then_guest_columns_within_quotas() -> None:
    posts = [post("a", 5), post("b", 1), post("c", 3), post("d", 2), guest("g1", 4), guest("g2", 1)]
    selection = select(posts, posts=3, guest_columns=1)
    assert selection.lead.id == "b"
    assert [p.id for p in selection.posts] == ["d", "c"]
    assert [g.id for g in selection.guests] == ["g2"]
    assert ids(selection) == ["b", "d", "c", "g2"]


def test_posts_featured_earlier_are_skipped_by_id_or_by_url() -> None:
    posts = [post("a", 1), post("b", 2), post("c", 3, url="https://example.org/moved")]
    selection = select(posts, featured={"a", "https://example.org/moved"})
    assert ids(selection) == ["b"]


def test_excluded_posts_are_skipped_by_id_or_by_url() -> None:
    posts = [post("a", 1), post("b", 2), post("c", 3)]
    selection = select(posts, exclude=["a", "https://example.org/c"])
    assert ids(selection) == ["b"]


def test_posts_published_in_the_future_wait_for_a_later_issue() -> None:
    posts = [post("tomorrow", -1), post("today", 0)]
    assert ids(select(posts)) == ["today"]


def test_window_days_keeps_only_recent_posts() -> None:
    posts = [post("new", 2), post("edge", 7), post("old", 8)]
    assert ids(select(posts, window_days=7)) == ["new", "edge"]
    assert ids(select(posts)) == ["new", "edge", "old"]


def test_pinned_posts_come_first_in_pin_order_even_if_old_or_featured() -> None:
    posts = [post("new", 1), post("old", 90), post("again", 30), post("mid", 3)]
    selection = select(
        posts,
        posts=3,
        window_days=14,
        featured={"again"},
        pin=["https://example.org/old", "again"],
    )
    assert ids(selection) == ["old", "again", "new"]


def test_pinned_posts_count_toward_their_quota_and_are_kept_beyond_it() -> None:
    posts = [post("a", 1), post("b", 2), post("p1", 20), post("p2", 30), guest("g", 5)]
    assert ids(select(posts, posts=2, pin=["p1"])) == ["p1", "a", "g"]
    assert ids(select(posts, posts=1, pin=["p1", "p2"])) == ["p1", "p2", "g"]
    assert ids(select(posts, posts=2, guest_columns=0, pin=["g"])) == ["a", "b", "g"]


def test_exclude_wins_over_pin_and_a_future_pin_still_waits() -> None:
    posts = [post("a", 1), post("b", 2), post("later", -2)]
    assert ids(select(posts, pin=["a", "later"], exclude=["a"])) == ["b"]


def test_lead_is_the_first_post_not_a_newer_guest_column() -> None:
    selection = select([guest("g", 0.5), post("p", 3)])
    assert selection.lead.id == "p"
    assert [g.id for g in selection.guests] == ["g"]


def test_guest_column_leads_when_there_are_no_posts() -> None:
    selection = select([guest("g1", 1), guest("g2", 2)])
    assert selection.lead.id == "g1"
    assert selection.posts == ()
    assert [g.id for g in selection.guests] == ["g2"]


def test_same_url_from_two_sources_is_taken_once() -> None:
    url = "https://example.org/shared"
    posts = [post("blog-copy", 1, url=url), guest("feed-copy", 1, url=url), post("other", 2)]
    selection = select(posts)
    assert [item.url for item in selection.items].count(url) == 1
    assert ids(selection) == ["blog-copy", "other"]


def test_result_does_not_depend_on_input_order() -> None:
    posts = [post(f"p{i}", i % 3) for i in range(9)] + [guest(f"g{i}", i % 2) for i in range(4)]
    expected = ids(select(posts, posts=4, guest_columns=2))
    assert expected[:4] == ["p0", "p3", "p6", "p1"]
    for seed in range(5):
        shuffled = posts[:]
        random.Random(seed).shuffle(shuffled)
        assert ids(select(shuffled, posts=4, guest_columns=2)) == expected


def test_naive_now_is_taken_as_utc() -> None:
    selection = select_items(
        [post("a", 0.1)], featured=set(), settings=SelectionSettings(), now=NOW.replace(tzinfo=None)
    )
    assert ids(selection) == ["a"]


def test_nothing_new_says_how_many_were_found_and_what_to_do() -> None:
    posts = [post("a", 1), post("b", 20)]
    with pytest.raises(NothingNewError) as caught:
        select(posts, featured={"a"}, window_days=14)
    error = caught.value
    assert error.exit_code == 10
    assert error.message == (
        "not enough new items for an issue: 0 new items found, 0 selectable, "
        "at least 1 needed (selection.min_posts); skipped: 1 already featured in an earlier "
        "issue, 1 older than 14 days (selection.window_days)"
    )
    assert error.hint == (
        "publish new posts, pin one with selection.pin, or lower selection.min_posts"
    )


def test_fewer_than_min_posts_is_nothing_new() -> None:
    posts = [post("a", 1), guest("g", 2)]
    with pytest.raises(NothingNewError, match=r"2 new items found, 2 selectable, at least 3"):
        select(posts, min_posts=3)
    assert len(select(posts, min_posts=2).items) == 2


def test_quotas_too_small_for_min_posts_suggest_raising_them() -> None:
    posts = [post("a", 1), post("b", 2), post("c", 3)]
    with pytest.raises(NothingNewError) as caught:
        select(posts, posts=1, guest_columns=0, min_posts=2)
    assert "3 new items found, 1 selectable, at least 2 needed" in caught.value.message
    assert caught.value.hint is not None
    assert "raise selection.posts or selection.guest_columns" in caught.value.hint


def test_empty_selection_is_nothing_new_even_with_min_posts_zero() -> None:
    with pytest.raises(NothingNewError, match="0 new items found"):
        select([], min_posts=0)
