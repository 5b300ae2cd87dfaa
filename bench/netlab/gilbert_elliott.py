"""Gilbert–Elliott bursty loss: a two-state Markov chain stepped once per packet."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class GilbertElliottParams:
    """Per-packet transition probabilities and the loss probability in each state.

    ``p``: good → bad, ``r``: bad → good, ``loss_good`` and ``loss_bad``: the chance a
    packet is lost while the chain is in that state (``1 - k`` and ``1 - h`` in the
    literature). The mean stay in the bad state is ``1 / r`` packets.
    """

    p: float
    r: float
    loss_good: float = 0.0
    loss_bad: float = 1.0

    def __post_init__(self) -> None:
        for name in ("p", "r", "loss_good", "loss_bad"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Gilbert–Elliott {name} must be in [0, 1], got {value}")
        if self.p + self.r <= 0.0:
            raise ValueError("Gilbert–Elliott p and r cannot both be 0")

    @property
    def bad_fraction(self) -> float:
        """Stationary share of packets sent while the chain is in the bad state."""
        return self.p / (self.p + self.r)

    @property
    def average_loss(self) -> float:
        """Long-run share of packets lost."""
        bad = self.bad_fraction
        return bad * self.loss_bad + (1.0 - bad) * self.loss_good

    @classmethod
    def from_average(
        cls, average_loss: float, mean_burst_packets: float, loss_bad: float = 1.0
    ) -> GilbertElliottParams:
        """Parameters with the given average loss and mean bad-state stay (no loss when good)."""
        if not 0.0 < average_loss < loss_bad:
            raise ValueError("average loss must be between 0 and the bad-state loss")
        if mean_burst_packets < 1.0:
            raise ValueError("mean burst must be at least one packet")
        r = 1.0 / mean_burst_packets
        bad = average_loss / loss_bad
        return cls(p=r * bad / (1.0 - bad), r=r, loss_good=0.0, loss_bad=loss_bad)


class GilbertElliott:
    """The chain's state; ``lost()`` decides one packet and then steps the chain."""

    def __init__(self, params: GilbertElliottParams, rng: random.Random) -> None:
        self.params = params
        self._rng = rng
        self.bad = rng.random() < params.bad_fraction

    def lost(self) -> bool:
        params = self.params
        draw = self._rng.random
        is_lost = draw() < (params.loss_bad if self.bad else params.loss_good)
        if self.bad:
            if draw() < params.r:
                self.bad = False
        elif draw() < params.p:
            self.bad = True
        return is_lost
