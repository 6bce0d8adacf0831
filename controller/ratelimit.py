"""Sliding-window rate limit per client key (login attempts), on an injected clock."""

from __future__ import annotations

from collections import deque

__all__ = ["SlidingWindowLimiter"]


class SlidingWindowLimiter:
    def __init__(self, limit: int, window_s: float, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str, now_s: float) -> float | None:
        """Count an attempt; None if allowed, else seconds until the next one is allowed."""
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:  # bounded: forget the idlest clients
                self._evict(now_s)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now_s - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            return hits[0] + self.window_s - now_s
        hits.append(now_s)
        return None

    def _evict(self, now_s: float) -> None:
        stale = [k for k, h in self._hits.items() if not h or h[-1] <= now_s - self.window_s]
        for k in stale:
            del self._hits[k]
        while len(self._hits) >= self.max_keys:
            self._hits.pop(next(iter(self._hits)))
