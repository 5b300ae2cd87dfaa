"""The share of packets the link lost over the last seconds, from transport-wide feedback.

Receiver reports tell loss per report interval and per stream, as 8-bit fractions that
late and repaired packets pull toward 0: on `satellite` (1 % random loss) their 20 s mean
hovered at 0.3-0.6 %, around the threshold at which video FEC turns on, so FEC came on
20 s into some calls and at once in others. Transport-wide feedback reports every packet
of every stream, retransmissions and probes included, once: counted over a window it
reads the link's own loss.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from .transport_cc import PacketResult

WINDOW_S = 20.0
MIN_PACKETS = 200  # under this many in the window, no reading (about 2 s of a call)


class LossWindow:
    """Packets reported and lost per transport feedback, over the last `window_s`."""

    def __init__(self, window_s: float = WINDOW_S, min_packets: int = MIN_PACKETS) -> None:
        self.window_s = window_s
        self.min_packets = min_packets
        self._batches: deque[tuple[float, int, int]] = deque()  # (at, reported, lost)
        self._reported = self._lost = 0
        self._newest = -1

    def add(self, now: float, results: Iterable[PacketResult]) -> None:
        """One feedback's results; a packet already reported is not counted again."""
        fresh = [r for r in results if r.sequence > self._newest]
        if not fresh:
            return
        self._newest = max(r.sequence for r in fresh)
        lost = sum(r.arrival_s is None for r in fresh)
        self._batches.append((now, len(fresh), lost))
        self._reported += len(fresh)
        self._lost += lost
        self._expire(now)

    def loss(self, now: float) -> float | None:
        """Lost over reported in the window, or None with too few packets to tell."""
        self._expire(now)
        if self._reported < self.min_packets:
            return None
        return self._lost / self._reported

    def _expire(self, now: float) -> None:
        while self._batches and now - self._batches[0][0] > self.window_s:
            _, reported, lost = self._batches.popleft()
            self._reported -= reported
            self._lost -= lost
