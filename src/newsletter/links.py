"""Fetching an issue's links for `newsletter check --links`: each one asked once, politely.

A HEAD first (cheap), then a GET where a server refuses HEAD; a bounded number at once and
a timeout each, so a newsletter of forty links takes seconds and no site sees a burst.
Answers are kept in ``.newsletter/link-cache.json`` for ``check.link_cache_hours``, so a
check run again before a send does not ask again. Off by default: checks run offline.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from . import __version__

USER_AGENT = f"newsletter-link-check/{__version__}"


@dataclass(frozen=True)
class LinkStatus:
    url: str
    ok: bool
    detail: str
    """The status code and reason, or the error, as a finding shows it."""


def fetch_all(
    urls: Iterable[str],
    *,
    timeout: float,
    concurrency: int,
    cache_path: Path | None = None,
    cache_hours: float = 24.0,
) -> dict[str, LinkStatus]:
    """The status of each distinct URL, from the cache where it is fresh enough."""
    wanted = sorted(set(urls))
    cache = _read_cache(cache_path, cache_hours)
    results = {url: LinkStatus(url, *cache[url]) for url in wanted if url in cache}
    missing = [url for url in wanted if url not in results]
    if missing:
        limits = httpx.Limits(max_connections=concurrency)
        headers = {"User-Agent": USER_AGENT}
        with (
            httpx.Client(timeout=timeout, limits=limits, headers=headers) as client,
            ThreadPoolExecutor(max_workers=concurrency) as pool,
        ):
            for status in pool.map(lambda url: _fetch(client, url), missing):
                results[status.url] = status
        _write_cache(cache_path, [results[url] for url in missing])
    return results


def _fetch(client: httpx.Client, url: str) -> LinkStatus:
    try:
        reply = client.head(url, follow_redirects=True)
        if reply.status_code >= 400:
            reply = client.get(url, follow_redirects=True)  # some servers refuse HEAD
    except httpx.HTTPError as exc:
        return LinkStatus(url, False, f"{type(exc).__name__} {exc}".strip())
    ok = 200 <= reply.status_code < 400
    return LinkStatus(url, ok, f"{reply.status_code} {reply.reason_phrase}".strip())


def _read_cache(path: Path | None, hours: float) -> dict[str, tuple[bool, str]]:
    if path is None or hours <= 0:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    fresh_after = time.time() - hours * 3600
    return {
        url: (bool(entry["ok"]), str(entry["detail"]))
        for url, entry in data.items()
        if isinstance(entry, dict) and entry.get("at", 0) >= fresh_after and entry.get("ok")
    }


def _write_cache(path: Path | None, new: list[LinkStatus]) -> None:
    """Only good answers are kept: a link that failed is asked again next time."""
    if path is None:
        return
    now = time.time()
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        existing = {}
    if not isinstance(existing, dict):
        existing = {}
    existing.update({s.url: {"ok": s.ok, "detail": s.detail, "at": now} for s in new if s.ok})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(existing, handle)
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
