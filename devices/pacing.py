"""Real-time pacing for simulated sources: ticks clocked by the event loop, never faster."""

from __future__ import annotations

import asyncio


class Pacer:
    """Yields once per `period_s` on the loop clock; after a stall it resynchronises
    instead of bursting to catch up (a live source cannot deliver the past)."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._next: float | None = None

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._next is None or now - self._next > 5 * self.period_s:
            self._next = now
        delay = self._next - now
        self._next += self.period_s
        await asyncio.sleep(max(0.0, delay))
