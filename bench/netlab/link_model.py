"""One direction of an emulated link, as a pure model driven by an explicit clock.

A packet goes through, in order: the drop-tail queue (its limit is milliseconds of the
rate in force when the packet arrives), serialisation at the current rate (the rate is
looked up at the moment the packet starts on the wire, so trace steps and outages are
exact whatever the caller's polling granularity), random and Gilbert–Elliott loss (a
lost packet has used its share of the link, like a radio loss), then the one-way delay
plus jitter. Jitter never reorders: a packet is delivered no earlier than the one before.

No I/O and no clock of its own: ``enqueue`` and ``pop_delivered`` take ``now``, and
``next_wakeup`` tells the caller when something happens next. The emulator and the
tests both drive it that way.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import deque
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bench.netlab.gilbert_elliott import GilbertElliott, GilbertElliottParams

Packet = TypeVar("Packet")

_SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True)
class DirectionParams:
    """Everything that shapes one direction. Times in ms, rates in kbit/s (1000 bit/s).

    ``rate_trace``: ``(t_seconds, kbps)`` steps, times from the link's start; before the
    first step ``rate_kbps`` applies. A rate of 0 means the link is down.
    ``jitter_ms`` is the standard deviation of the one-way delay; samples are uniform in
    ``±√3·jitter_ms`` (bounded, like netem's default shape). ``loss`` is Bernoulli;
    ``gilbert_elliott`` adds bursty loss on top. ``outages``: ``(start_s, end_s)`` windows
    in which the link is down; ``down`` takes it down until set back.
    ``overhead_bytes`` is added to the IP packet size on the wire.
    """

    rate_kbps: float = 1000.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    gilbert_elliott: GilbertElliottParams | None = None
    queue_ms: float = 100.0
    rate_trace: tuple[tuple[float, float], ...] = ()
    outages: tuple[tuple[float, float], ...] = ()
    down: bool = False
    overhead_bytes: int = 0

    def __post_init__(self) -> None:
        if self.rate_kbps < 0 or any(kbps < 0 for _, kbps in self.rate_trace):
            raise ValueError("rate must not be negative")
        if self.delay_ms < 0 or self.jitter_ms < 0 or self.queue_ms < 0:
            raise ValueError("delay, jitter and queue must not be negative")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss is a probability in [0, 1], got {self.loss}")
        if list(self.rate_trace) != sorted(self.rate_trace):
            raise ValueError("rate trace times must be increasing")
        if any(end <= start for start, end in self.outages):
            raise ValueError("an outage must end after it starts")

    @property
    def average_loss(self) -> float:
        """Long-run share of serialised packets the loss models drop."""
        bursty = self.gilbert_elliott.average_loss if self.gilbert_elliott else 0.0
        return 1.0 - (1.0 - self.loss) * (1.0 - bursty)

    def rate_at(self, t: float) -> float:
        """The rate in kbit/s at ``t`` seconds after the link's start (0 while down)."""
        if self.down or any(start <= t < end for start, end in self.outages):
            return 0.0
        rate = self.rate_kbps
        for start, kbps in self.rate_trace:
            if start > t:
                break
            rate = kbps
        return rate

    def next_up(self, t: float) -> float | None:
        """The first time ``>= t`` at which the rate is above 0, or None if never."""
        if self.down:
            return None
        if not self.outages and not self.rate_trace and self.rate_kbps > 0.0:
            return t
        changes = sorted({end for _, end in self.outages} | {s for s, _ in self.rate_trace})
        candidate = t
        while self.rate_at(candidate) <= 0.0:
            later = [c for c in changes if c > candidate]
            if not later:
                return None
            candidate = later[0]
        return candidate

    def with_changes(self, **changes: Any) -> DirectionParams:
        """A copy with ``changes``; setting ``rate_kbps`` alone ends a running trace."""
        if "rate_kbps" in changes and "rate_trace" not in changes:
            changes["rate_trace"] = ()
        if isinstance(changes.get("gilbert_elliott"), dict):
            changes["gilbert_elliott"] = GilbertElliottParams(**changes["gilbert_elliott"])
        for key in ("rate_trace", "outages"):
            if key in changes:
                changes[key] = tuple((float(a), float(b)) for a, b in changes[key])
        return dataclasses.replace(self, **changes)


@dataclass
class DirectionStats:
    """Counters of one direction since the link started."""

    packets_in: int = 0
    bytes_in: int = 0
    delivered_packets: int = 0
    delivered_bytes: int = 0
    queue_drops: int = 0
    model_losses: int = 0
    down_drops: int = 0
    queued_packets: int = 0
    queued_bytes: int = 0
    in_flight_packets: int = 0
    rate_kbps: float = 0.0


@dataclass
class _Queued(Generic[Packet]):
    packet: Packet
    size: int
    arrival: float


class LinkDirection(Generic[Packet]):
    """One direction's queue, wire and loss/delay stages. ``epoch``: the link's start."""

    def __init__(self, params: DirectionParams, epoch: float, rng: random.Random) -> None:
        self._epoch = epoch
        self._rng = rng
        self._queue: deque[_Queued[Packet]] = deque()
        self._queued_bytes = 0
        self._busy_until = epoch
        self._in_flight: deque[tuple[float, Packet, int]] = deque()
        self._last_delivery = epoch
        self._stats = DirectionStats()
        self._ge: GilbertElliott | None = None
        self.params = params
        self._apply_loss_model()

    def set(self, now: float, **changes: Any) -> None:
        """Change parameters from ``now`` on; packets already on the wire keep their timing."""
        self._serve(now)
        head = self._head_finish()
        if head is None or head[0] > now:
            # A packet not yet on the wire starts no earlier than the change.
            self._busy_until = max(self._busy_until, now)
        self.params = self.params.with_changes(**changes)
        if "gilbert_elliott" in changes:
            self._apply_loss_model()

    def restart_clock(self, now: float) -> None:
        """Make ``now`` t=0 for the rate trace and outages."""
        self._serve(now)
        self._epoch = now

    def _apply_loss_model(self) -> None:
        ge = self.params.gilbert_elliott
        self._ge = GilbertElliott(ge, self._rng) if ge else None

    def rate_now(self, now: float) -> float:
        return self.params.rate_at(now - self._epoch)

    def enqueue(self, packet: Packet, size: int, now: float) -> bool:
        """Offer a packet of ``size`` bytes at ``now``; False if the link dropped it."""
        self._serve(now)
        stats = self._stats
        stats.packets_in += 1
        stats.bytes_in += size
        rate = self.rate_now(now)
        if rate <= 0.0:
            stats.down_drops += 1
            return False
        limit_bytes = rate * self.params.queue_ms / 8.0  # kbit/s × ms / 8 = bytes
        if self._queue and self._queued_bytes + size > limit_bytes:
            stats.queue_drops += 1
            return False
        self._queue.append(_Queued(packet, size, now))
        self._queued_bytes += size
        self._serve(now)
        return True

    def pop_delivered(self, now: float) -> list[Packet]:
        """Packets whose delivery time has come, in order."""
        self._serve(now)
        ready: list[Packet] = []
        in_flight = self._in_flight
        stats = self._stats
        while in_flight and in_flight[0][0] <= now:
            _, packet, size = in_flight.popleft()
            ready.append(packet)
            stats.delivered_packets += 1
            stats.delivered_bytes += size
        return ready

    def next_wakeup(self) -> float | None:
        """When ``pop_delivered`` may next return something, or None if nothing is pending."""
        times = []
        if self._in_flight:
            times.append(self._in_flight[0][0])
        head = self._head_finish()
        if head is not None:
            times.append(head[1])
        return min(times) if times else None

    def stats(self, now: float) -> DirectionStats:
        self._serve(now)
        return dataclasses.replace(
            self._stats,
            queued_packets=len(self._queue),
            queued_bytes=self._queued_bytes,
            in_flight_packets=len(self._in_flight),
            rate_kbps=self.rate_now(now),
        )

    def _head_finish(self) -> tuple[float, float] | None:
        """Start and end of serialisation of the queue's head, if it can ever start."""
        if not self._queue:
            return None
        head = self._queue[0]
        up = self.params.next_up(max(head.arrival, self._busy_until) - self._epoch)
        if up is None:
            return None
        rate = self.params.rate_at(up)
        start = self._epoch + up
        bits = (head.size + self.params.overhead_bytes) * 8.0
        return start, start + bits / (rate * 1000.0)

    def _serve(self, now: float) -> None:
        """Move every packet whose serialisation has ended by ``now`` onto the delay line."""
        stats = self._stats
        params = self.params
        while True:
            head = self._head_finish()
            if head is None or head[1] > now:
                return
            item = self._queue.popleft()
            self._queued_bytes -= item.size
            finish = head[1]
            self._busy_until = finish
            if self._is_lost():
                stats.model_losses += 1
                continue
            delay = params.delay_ms
            if params.jitter_ms > 0.0:
                spread = _SQRT3 * params.jitter_ms
                delay = max(0.0, delay + self._rng.uniform(-spread, spread))
            delivery = max(self._last_delivery, finish + delay / 1000.0)
            self._last_delivery = delivery
            self._in_flight.append((delivery, item.packet, item.size))

    def _is_lost(self) -> bool:
        # Both models are drawn for every packet so each keeps its own statistics.
        random_loss = self.params.loss > 0.0 and self._rng.random() < self.params.loss
        bursty_loss = self._ge.lost() if self._ge else False
        return random_loss or bursty_loss
