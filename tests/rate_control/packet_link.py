"""A packet-level link and sender for replaying the delay-based estimator without a network.

The sender sends a video frame every 40 ms (its packets back to back, as aiortc does) and
an audio packet every 40 ms, at the estimator's current target. The link serialises
packets at its capacity through a drop-tail queue, adds a one-way delay with jitter that
never reorders (as the link lab does), and loses packets at random. Every 50 ms the
receiver's feedback, for what has arrived, reaches the sender one delay later.
Deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from telecart.cart_agent.delay_based_estimator import DelayBasedEstimator
from telecart.cart_agent.transport_cc import PacketResult

FRAME_S = 0.04
FEEDBACK_S = 0.05
AUDIO_BYTES = 160
MTU_BYTES = 1200


@dataclass
class PacketLink:
    capacity_bps: Callable[[float], float]
    delay_s: float
    jitter_s: float = 0.0
    loss: float = 0.0
    queue_s: float = 0.3
    seed: int = 1
    _busy_until: float = 0.0
    _last_arrival: float = 0.0
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def send(self, at: float, size_bytes: int) -> float | None:
        """The packet's arrival time, or None if the queue or the line lost it."""
        capacity = self.capacity_bps(at)
        if capacity <= 0 or self._busy_until - at > self.queue_s:
            return None
        start = max(at, self._busy_until)
        self._busy_until = start + size_bytes * 8 / capacity
        if self._rng.random() < self.loss:
            return None
        jitter = abs(self._rng.gauss(0.0, self.jitter_s)) if self.jitter_s else 0.0
        arrival = max(self._busy_until + self.delay_s + jitter, self._last_arrival)
        self._last_arrival = arrival
        return arrival


@dataclass
class Run:
    """Target rate (bit/s) and acknowledged rate over time, from `simulate`."""

    times: list[float] = field(default_factory=list)
    targets: list[float] = field(default_factory=list)
    decreases: int = 0

    def mean_target(self, start: float, end: float) -> float:
        values = [v for t, v in zip(self.times, self.targets, strict=True) if start <= t < end]
        return sum(values) / len(values)

    def target_at(self, when: float) -> float:
        for t, v in zip(self.times, self.targets, strict=True):
            if t >= when:
                return v
        return self.targets[-1]


def simulate(link: PacketLink, seconds: float, estimator: DelayBasedEstimator | None = None) -> Run:
    """Closed loop: the sender sends at the estimate, the link answers with feedback."""
    estimator = estimator or DelayBasedEstimator()
    estimator.rtt_s = 2 * link.delay_s
    run = Run()
    sequence = 0
    pending: list[PacketResult] = []
    t = 0.0
    next_feedback = FEEDBACK_S
    previous = estimator.estimate_bps
    owed = 0.0  # video bytes the target allows that have not been sent yet
    while t < seconds:
        owed = min(owed + estimator.estimate_bps * FRAME_S / 8 - AUDIO_BYTES, 10 * MTU_BYTES)
        count = max(0, int(owed // MTU_BYTES))
        owed -= count * MTU_BYTES
        sizes = [AUDIO_BYTES] + [MTU_BYTES] * count
        for index, size in enumerate(sizes):
            sent_at = t + index * 1e-4
            pending.append(PacketResult(sequence, sent_at, size, link.send(sent_at, size)))
            sequence += 1
        t += FRAME_S
        while next_feedback <= t:
            # The receiver reports what has arrived (and the gaps before it) by now.
            arrived = [
                p for p in pending if p.arrival_s is not None and p.arrival_s <= next_feedback
            ]
            if arrived:
                last = max(p.sequence for p in arrived)
                report = [p for p in pending if p.sequence <= last]
                pending = [p for p in pending if p.sequence > last]
                estimator.on_feedback(report, next_feedback + link.delay_s)
            next_feedback += FEEDBACK_S
        run.times.append(t)
        run.targets.append(estimator.estimate_bps)
        run.decreases += estimator.estimate_bps < previous * 0.97
        previous = estimator.estimate_bps
    return run
