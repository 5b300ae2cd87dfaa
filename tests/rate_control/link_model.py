"""A tiny closed-loop link for replaying the estimator without a network.

Each step the sender offers `sent_bps`; the link delivers up to its capacity plus a
drop-tail queue, so overload shows up as queueing delay first, then loss, as on the
emulated rural links. Random loss is added on top. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from telecart.cart_agent.bandwidth_estimator import LinkReport


@dataclass
class LinkModel:
    capacity_bps: float
    base_rtt_s: float
    random_loss: float = 0.0
    queue_s: float = 0.3  # buffer depth in seconds of capacity
    seed: int = 1
    queued_bits: float = 0.0
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def step(self, at: float, sent_bps: float, dt: float) -> LinkReport:
        offered = sent_bps * dt
        room = self.capacity_bps * self.queue_s - self.queued_bits
        drained = self.capacity_bps * dt
        backlog = self.queued_bits + offered - drained
        dropped = max(0.0, backlog - self.capacity_bps * self.queue_s)
        self.queued_bits = min(max(0.0, backlog), self.capacity_bps * self.queue_s)
        del room
        congestion = dropped / offered if offered else 0.0
        noise = self._rng.uniform(0.5, 1.5) * self.random_loss
        loss = min(1.0, congestion + noise * (1 - congestion))
        rtt = self.base_rtt_s + self.queued_bits / self.capacity_bps
        return LinkReport(at=at, fraction_lost=loss, rtt_s=rtt, sent_bps=sent_bps)
