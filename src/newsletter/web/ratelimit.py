"""Rate limits for sign-up, counted in memory.

One process, one count: a restart forgets it, and several server processes would each
allow the limit (run one, or put a limit in the proxy too). Keys are hashes, never the
addresses themselves, so the memory holds nothing personal.
"""

from __future__ import annotations

import threading
import time
from collections import deque

WINDOW = 3600.0
MAX_KEYS = 100_000
"""Beyond this many keys the oldest are dropped: a flood of distinct keys cannot make the
server run out of memory, at worst it forgets some counts early."""


class RateLimiter:
    """At most ``limit`` events per key in any ``window`` seconds (a sliding window)."""

    def __init__(self, limit: int, window: float = WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> float:
        """Count an event for ``key`` if it is allowed: 0.0; else the seconds until it would
        be (nothing is counted)."""
        moment = time.monotonic() if now is None else now
        with self._lock:
            events = self._events.pop(key, None) or deque()
            while events and events[0] <= moment - self.window:
                events.popleft()
            self._events[key] = events  # re-inserted: dict order is least recently used first
            if len(events) >= self.limit:
                return events[0] + self.window - moment
            events.append(moment)
            if len(self._events) > MAX_KEYS:
                del self._events[next(iter(self._events))]
            return 0.0
