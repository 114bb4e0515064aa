"""What goes into the next issue: a pure function of the posts, the archive and the settings.

No I/O and no clock: ``now`` is passed in, so a build can be replayed and tested exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta

from .config import SelectionSettings
from .errors import NothingNewError
from .models import Post, PostKind, Selection


def select_items(
    posts: Sequence[Post],
    *,
    featured: Collection[str],
    settings: SelectionSettings,
    now: datetime,
) -> Selection:
    """Choose the lead, the other posts and the guest columns of the next issue.

    Rules, in order:

    - ``exclude`` (ids or urls) always wins: an excluded post is never selected.
    - Posts published after ``now`` are skipped, pinned or not: their link is not live yet.
    - ``pin`` (ids or urls) brings a post in even if an earlier issue featured it or it is
      outside ``window_days``. Pinned posts come first, in the order of ``pin``, and count
      toward their kind's quota; they are kept even when they alone exceed it.
    - Otherwise a post is a candidate when no earlier issue featured its id or url
      (``featured`` holds both) and, with ``window_days`` set, it was published within that
      many days of ``now``.
    - Candidates are taken newest first (ties broken by id, so the result is deterministic)
      up to ``posts`` posts and ``guest_columns`` guest columns. The same url from two
      sources is taken once.
    - The lead is the first selected post, or the first guest column when there are no posts.

    Raises NothingNewError when fewer than ``min_posts`` items (or none at all) qualify.
    ``now`` must be timezone-aware; a naive one is taken as UTC.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    featured_keys = set(featured)
    excluded = set(settings.exclude)
    pin_rank = {key: rank for rank, key in reversed(list(enumerate(settings.pin)))}
    cutoff = now - timedelta(days=settings.window_days) if settings.window_days else None

    pinned: list[tuple[int, Post]] = []
    candidates: list[Post] = []
    skipped: Counter[str] = Counter()  # why posts were left out, to explain an empty issue
    for post in _newest_first(posts):
        if post.id in excluded or post.url in excluded:
            skipped["excluded"] += 1
        elif post.published > now:
            skipped["future"] += 1
        elif (rank := _pin_rank(post, pin_rank)) is not None:
            pinned.append((rank, post))
        elif post.id in featured_keys or post.url in featured_keys:
            skipped["featured"] += 1
        elif cutoff is not None and post.published < cutoff:
            skipped["old"] += 1
        else:
            candidates.append(post)
    pinned.sort(key=lambda ranked: ranked[0])

    seen: set[str] = set()
    chosen: dict[PostKind, list[Post]] = {PostKind.POST: [], PostKind.GUEST: []}
    quota = {PostKind.POST: settings.posts, PostKind.GUEST: settings.guest_columns}
    for post in [post for _, post in pinned]:
        if _first_time(post, seen):
            chosen[post.kind].append(post)
        else:
            skipped["duplicate"] += 1
    for post in candidates:
        if not _first_time(post, seen):
            skipped["duplicate"] += 1
        elif len(chosen[post.kind]) < quota[post.kind]:
            chosen[post.kind].append(post)

    found = len(pinned) + len(candidates) - skipped["duplicate"]
    selected = chosen[PostKind.POST] + chosen[PostKind.GUEST]
    if not selected or len(selected) < settings.min_posts:
        raise _nothing_new(found, len(selected), settings, skipped)

    main_posts, guests = chosen[PostKind.POST], chosen[PostKind.GUEST]
    if main_posts:
        return Selection(lead=main_posts[0], posts=tuple(main_posts[1:]), guests=tuple(guests))
    return Selection(lead=guests[0], posts=(), guests=tuple(guests[1:]))


def _newest_first(posts: Sequence[Post]) -> list[Post]:
    by_id = sorted(posts, key=lambda post: (post.id, post.url))
    return sorted(by_id, key=lambda post: post.published, reverse=True)


def _pin_rank(post: Post, pin_rank: dict[str, int]) -> int | None:
    ranks = [pin_rank[key] for key in (post.id, post.url) if key in pin_rank]
    return min(ranks) if ranks else None


def _first_time(post: Post, seen: set[str]) -> bool:
    """True the first time a post's url (or id) is met; syndicated copies share a url."""
    keys = {f"url:{post.url}", f"id:{post.id}"}
    if keys & seen:
        return False
    seen.update(keys)
    return True


def _nothing_new(
    found: int, selected: int, settings: SelectionSettings, skipped: Counter[str]
) -> NothingNewError:
    reasons = [
        f"{count} {what}"
        for count, what in (
            (skipped["featured"], "already featured in an earlier issue"),
            (skipped["old"], f"older than {settings.window_days} days (selection.window_days)"),
            (skipped["future"], "scheduled in the future"),
            (skipped["excluded"], "excluded (selection.exclude)"),
            (skipped["duplicate"], "duplicates of another source's post"),
        )
        if count
    ]
    needed = max(settings.min_posts, 1)
    message = (
        f"not enough new items for an issue: {found} new item{'s' if found != 1 else ''} found, "
        f"{selected} selectable, at least {needed} needed (selection.min_posts)"
    )
    if reasons:
        message += "; skipped: " + ", ".join(reasons)
    if found > selected:
        hint = "raise selection.posts or selection.guest_columns, or lower selection.min_posts"
    else:
        hint = "publish new posts, pin one with selection.pin, or lower selection.min_posts"
    return NothingNewError(message, hint=hint)
