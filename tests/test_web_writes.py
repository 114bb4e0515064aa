"""Readers' writes batched into one transaction: each committed before its answer, and a
failing one rolled back alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from newsletter.config import LoadedConfig, load_config
from newsletter.store import open_store
from newsletter.web.common import store_for_request
from newsletter.web.writes import committed


class Refused(Exception):
    pass


def add(loaded: LoadedConfig, email: str, *, then_fail: bool = False) -> str:
    with store_for_request(loaded, writing=True) as store:
        store.add(email, "", list_name="members")
        if then_fail:
            raise Refused(email)
    return email


def stored(loaded: LoadedConfig) -> set[str]:
    """What a connection of its own sees: only committed rows."""
    with open_store(loaded) as store:
        return {row[0] for row in store.db.all("SELECT email FROM subscribers")}


@pytest.fixture
def loaded(sample_project: Path) -> LoadedConfig:
    config = load_config(sample_project)
    with open_store(config):
        pass  # migrated, as create_app leaves it
    return config


@pytest.fixture
def gate() -> threading.Event:
    return threading.Event()


@pytest.fixture
def held(gate: threading.Event) -> Callable[[], None]:
    """A write that keeps the writer busy until the gate opens: what is queued meanwhile
    shares the next batch."""

    def hold() -> None:
        assert gate.wait(10)

    return hold


def test_each_write_is_committed_before_its_answer(loaded: LoadedConfig) -> None:

    async def one() -> set[str]:
        await committed(loaded, add, loaded, "first@example.org")
        return stored(loaded)

    assert "first@example.org" in asyncio.run(one())


def test_a_failed_write_is_rolled_back_alone_in_its_batch(
    loaded: LoadedConfig, gate: threading.Event, held: Callable[[], None]
) -> None:
    async def together() -> list[object]:
        first = asyncio.ensure_future(committed(loaded, held))
        await asyncio.sleep(0.05)
        writes = [
            asyncio.ensure_future(committed(loaded, add, loaded, "kept@example.org")),
            asyncio.ensure_future(
                committed(loaded, lambda: add(loaded, "undone@example.org", then_fail=True))
            ),
            asyncio.ensure_future(committed(loaded, add, loaded, "also-kept@example.org")),
        ]
        await asyncio.sleep(0.05)
        gate.set()
        await first
        return await asyncio.gather(*writes, return_exceptions=True)

    kept, failed, also_kept = asyncio.run(together())
    assert (kept, also_kept) == ("kept@example.org", "also-kept@example.org")
    assert isinstance(failed, Refused)
    emails = stored(loaded)
    assert {"kept@example.org", "also-kept@example.org"} <= emails
    assert "undone@example.org" not in emails


def test_writes_go_on_after_a_server_stopped_with_one_pending(
    loaded: LoadedConfig, gate: threading.Event, held: Callable[[], None]
) -> None:
    async def stopped_waiting() -> list[asyncio.Future[object]]:
        # Their loop is closed by asyncio.run before the writer can answer them.
        pending = [
            asyncio.ensure_future(committed(loaded, held)),
            asyncio.ensure_future(committed(loaded, add, loaded, "orphan@example.org")),
        ]
        await asyncio.sleep(0.05)
        return pending

    asyncio.run(stopped_waiting())
    gate.set()

    async def next_server() -> str:
        return await asyncio.wait_for(committed(loaded, add, loaded, "next@example.org"), 10)

    assert asyncio.run(next_server()) == "next@example.org"
    assert {"orphan@example.org", "next@example.org"} <= stored(loaded)
