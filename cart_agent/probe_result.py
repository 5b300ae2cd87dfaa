"""What rate the link carried a probe cluster at: libwebrtc's `ProbeBitrateEstimator`, on
transport-wide feedback.

A cluster is a run of transport-wide sequence numbers sent faster than the current
estimate (`prober.py`). The send rate is its bytes over its send span, the receive rate
its bytes over its arrival span; the link carried the lower of the two. If the packets
arrived clearly slower than they were sent (under 90 %), the link was saturated and its
rate is a little under the receive rate (95 %): the link's own rate, as a probe well
over it keeps the queue from emptying while it passes. (libwebrtc discards a probe that
arrived over 2x slower than it was sent, since on the internet other flows share the
queue; a cart's uplink carries the cart's traffic, and that reading is what tells an
estimate grown past the link, `DelayBasedEstimator.on_probe`.) A cluster with under 80 %
of its packets reported received, or too few of them, says nothing.

Pure: `ProbeCluster.add(results)` with `PacketResult`s from `transport_cc.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .transport_cc import PacketResult

MIN_RECEIVED = 4
MIN_RECEIVED_SHARE = 0.8
UNSATURATED_SHARE = 0.9  # received at this share of the send rate or more: not saturated
SATURATED_UTILISATION = 0.95


def carried_bps(results: Iterable[PacketResult]) -> float | None:
    """The rate the link carried these packets at, or None if they do not tell."""
    everything = list(results)
    received = [r for r in everything if r.arrival_s is not None]
    if len(received) < MIN_RECEIVED or len(received) < MIN_RECEIVED_SHARE * len(everything):
        return None
    by_send = sorted(received, key=lambda r: r.send_s)
    by_arrival = sorted(received, key=lambda r: r.arrival_s or 0.0)
    send_span = by_send[-1].send_s - by_send[0].send_s
    arrival_span = (by_arrival[-1].arrival_s or 0.0) - (by_arrival[0].arrival_s or 0.0)
    if send_span <= 0 or arrival_span <= 0:
        return None
    total = sum(r.size_bytes for r in received)
    send_bps = (total - by_send[-1].size_bytes) * 8 / send_span
    receive_bps = (total - by_arrival[0].size_bytes) * 8 / arrival_span
    if receive_bps < UNSATURATED_SHARE * send_bps:
        return SATURATED_UTILISATION * receive_bps
    return min(send_bps, receive_bps)


@dataclass
class ProbeCluster:
    """One probe's transport-wide sequence range and the feedback collected for it."""

    first: int
    last: int  # inclusive
    rate_bps: float  # the rate it was sent at
    sent_at: float
    results: dict[int, PacketResult] = field(default_factory=dict)

    def add(self, results: Iterable[PacketResult]) -> None:
        for result in results:
            if self.first <= result.sequence <= self.last:
                self.results[result.sequence] = result

    @property
    def complete(self) -> bool:
        """Feedback has reported every packet of the cluster."""
        return len(self.results) == self.last - self.first + 1

    def carried_bps(self) -> float | None:
        return carried_bps(self.results.values())
