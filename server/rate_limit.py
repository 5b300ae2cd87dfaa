"""Token buckets for message floods and a sliding window for login attempts."""

from __future__ import annotations

import time
from collections import deque


class TokenBucket:
    """Allows `rate` events a second on average, with bursts up to `burst`."""

    def __init__(self, rate: float, burst: int, now: float | None = None) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = time.monotonic() if now is None else now

    def allow(self, now: float | None = None) -> bool:
        t = time.monotonic() if now is None else now
        self._tokens = min(self._burst, self._tokens + (t - self._at) * self._rate)
        self._at = t
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class AttemptLimiter:
    """At most `limit` failures per key within `window_s`; success does not clear the record."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 100_000) -> None:
        self._limit = limit
        self._window_s = window_s
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, key: str, now: float | None = None) -> bool:
        t = time.monotonic() if now is None else now
        times = self._failures.get(key)
        if not times:
            return False
        while times and times[0] <= t - self._window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return False
        return len(times) >= self._limit

    def record_failure(self, key: str, now: float | None = None) -> None:
        t = time.monotonic() if now is None else now
        if key not in self._failures and len(self._failures) >= self._max_keys:
            self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(key, deque()).append(t)

    def retry_after(self, key: str, now: float | None = None) -> float:
        t = time.monotonic() if now is None else now
        times = self._failures.get(key)
        return max(0.0, times[0] + self._window_s - t) if times else 0.0
