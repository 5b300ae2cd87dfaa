"""Reconnect delays: exponential backoff with full jitter."""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff_delays(
    base_s: float = 0.5, cap_s: float = 30.0, rng: random.Random | None = None
) -> Iterator[float]:
    """Endless delays, each uniform in [base/2, min(cap, base * 2**n)] so carts spread out."""
    pick = rng or random.Random()
    attempt = 0
    while True:
        ceiling = min(cap_s, base_s * (2**attempt))
        yield pick.uniform(base_s / 2, max(ceiling, base_s / 2))
        attempt = min(attempt + 1, 30)
