"""The people behind the items: one ``authors:`` list in newsletter.yml for every source.

Feeds name an author and nothing more (``dc:creator``, an Atom ``<author>``), so a guest
column from a feed would show a bare name. The list gives each person a role, an
organisation, a link and a photo once, and every source's items by them carry those,
whatever the source. A name matches ignoring case and spacing, and a person may list the
other spellings feeds use for them (``aliases``). What an item says of itself (front
matter's ``author_role``) wins over the list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from .config import AuthorSettings, name_key
from .models import Post


def people_by_name(authors: Sequence[AuthorSettings]) -> dict[str, AuthorSettings]:
    """Every name and alias of the list, made comparable, to the person it names."""
    found: dict[str, AuthorSettings] = {}
    for person in authors:
        for name in (person.name, *person.aliases):
            found.setdefault(name_key(name), person)
    return found


def attribute(posts: Iterable[Post], authors: Sequence[AuthorSettings]) -> tuple[Post, ...]:
    """``posts`` with what the list knows of each author filled in where the item is silent."""
    known = people_by_name(authors)
    result = []
    for post in posts:
        person = known.get(name_key(post.author)) if post.author else None
        if person is not None:
            post = replace(
                post,
                author=person.name,
                author_role=post.author_role or person.role,
                author_organisation=post.author_organisation or person.organisation,
                author_url=post.author_url or person.link,
                author_photo=post.author_photo or person.photo,
            )
        result.append(post)
    return tuple(result)
