"""Probes: short bursts of retransmitted video that show whether the link has grown.

Sending no faster than its estimate, the cart learns of a bigger link only as fast as the
estimate may grow past what the receiver acknowledged (1.5x, `delay_based_estimator.py`)
and the ladder climbs after it (2 s a step): on `step` it took 9-12 s to get from 300 back
to 800 kbit/s. libwebrtc probes instead: a cluster of packets at twice the estimate, whose
arrival spacing shows what the link carries (`probe_result.py`). Here a cluster is the
video sender's newest packets sent again, at 1.5x the estimate, as retransmissions
through aiortc's own NACK path (`RTCRtpSender._retransmit`): they ride the negotiated RTX
stream, the receiver drops them as duplicates or repairs a loss with them, and the
retransmission cap (`retransmission_budget.py`) lets them through uncounted.

The rate controller asks for a probe when the estimate is held back by what was
acknowledged, with no cut for a while (only more sending can tell more). One probe is
in flight at a time; one the link falls behind doubles the wait before the next (from
`interval_s` up to `max_interval_s`), one that finds the link carrying most of its rate
lets the next go at once, from the new estimate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiortc import RTCRtpSender

from .probe_result import ProbeCluster
from .retransmission_budget import RetransmissionBudget
from .transport_cc import PacketResult, TransportCcTap

log = logging.getLogger(__name__)
TYPICAL_PACKET_BYTES = 1000  # a video packet at the rates probes matter for
SATURATED_READINGS = 3


@dataclass(frozen=True)
class ProbeConfig:
    # A probe goes at this times the estimate (libwebrtc: 2). At 2 the first probe after
    # `step`'s rise, from an estimate already grown to 680 kbit/s, went past the 1000
    # kbit/s link: one the link falls behind proves nothing by itself.
    rate_factor: float = 1.5
    max_rate_bps: float = 2_500_000  # ...and never faster than this
    # About this long, in at least `min_packets` and at most `max_packets` packets. The
    # arrival span is what a reading divides by, and jitter moves both of its ends: on the
    # link lab's `rural-3g` (384 kbit/s, ±26 ms) 4.6 % of 60 ms clusters sent from a 400
    # kbit/s estimate were read whole, and one such misreading turned the room camera on
    # past the link and stalled the exam camera for 3 s. Of 120 ms clusters none of 400
    # were, and 8 in 10 saturated readings fell within 323-398 kbit/s instead of 294-444
    # (tests/rate_control/test_probe_on_emulated_link.py).
    duration_s: float = 0.12
    min_packets: int = 5
    max_packets: int = 16
    interval_s: float = 2.0  # between probes; doubled after each that finds nothing...
    max_interval_s: float = 4.0  # ...up to this
    found_share: float = 0.8  # carried at this share of its rate: the link may carry more
    full_share: float = 0.95  # ...and under this share: it may also be nearly full
    feedback_timeout_s: float = 2.0  # a cluster not fully reported by then is judged as is
    readings_kept_s: float = 20.0  # a reading the link fell behind counts this long...
    forget_above: float = 1.5  # ...or until a cut or a new reading this far from it

    def packets(self, rate_bps: float) -> int:
        """How many packets a cluster at `rate_bps` retransmits."""
        packets = rate_bps * self.duration_s / 8 / TYPICAL_PACKET_BYTES
        return int(min(max(packets, self.min_packets), self.max_packets))


def has_rtx(sender: RTCRtpSender) -> bool:
    """The answer negotiated RTX for this sender (aiortc keeps it privately): without it a
    retransmission repeats the original sequence number, which SRTP rejects as a replay."""
    return getattr(sender, "_RTCRtpSender__rtx_payload_type", None) is not None


@dataclass(frozen=True)
class ProbeReading:
    """What one probe showed."""

    carried_bps: float
    whole: bool  # the link kept up with the probe: it carries at least `carried_bps`
    # (then at most the probe's own rate)
    # The median of the last `SATURATED_READINGS` probes the link fell behind (None until
    # there are that many since the last whole one): the link's own rate. One such
    # reading comes from arrival spacing, and 10 ms of jitter put a 1000 kbit/s
    # satellite link anywhere from 730 to 1180.
    link_bps: float | None
    # Whole, but carried under `full_share` of the probe's rate: the link may be little
    # bigger than `carried_bps`. On `satellite` 10 of 12 probes sent at 1040-1110 kbit/s
    # were read whole at 840-1000, and the estimate, growing freely from there, passed
    # the 1000 kbit/s link within 0.7-3.7 s.
    short: bool = False


class Prober:
    """Sends probe clusters on one video sender and judges their feedback."""

    def __init__(
        self,
        sender: RTCRtpSender,
        tap: TransportCcTap,
        budget: RetransmissionBudget | None = None,
        config: ProbeConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sender = sender
        self._tap = tap
        self._budget = budget
        self.config = config or ProbeConfig()
        self._clock = clock
        self.cluster: ProbeCluster | None = None
        self._sending: asyncio.Task[None] | None = None
        self._sending_from: int | None = None
        self._wait_s = 0.0
        self._last_at = -1e9
        self.sent = 0  # clusters sent
        self.judged = 0  # ...whose feedback was read (or whose time ran out)
        self.found = 0  # ...that found the link carrying most of their rate
        self.last_rate_bps = 0.0  # the rate the newest cluster was sent at
        self._saturated: deque[tuple[float, float]] = deque(maxlen=SATURATED_READINGS)

    @property
    def in_flight(self) -> range | None:
        """Transport-wide numbers of the cluster being sent or awaiting feedback."""
        if self.cluster is not None:
            return range(self.cluster.first, self.cluster.last + 1)
        if self._sending_from is not None:
            return range(self._sending_from, self._tap.next_sequence + 1)
        return None

    def maybe_probe(self, now: float, estimate_bps: float) -> bool:
        """Start a probe at `rate_factor` times the estimate if none is in flight and the
        wait after the last one has passed. The caller has judged that one is wanted."""
        cluster = self.cluster
        if cluster is not None and now - cluster.sent_at > self.config.feedback_timeout_s:
            self._judge(None)  # no feedback for it at all
        if self.cluster is not None or self._sending is not None:
            return False
        if now - self._last_at < self._wait_s or not has_rtx(self._sender):
            return False
        newest = self._tap.newest_rtp_sequence(self._sender._ssrc)
        if newest is None:
            return False
        rate = min(self.config.rate_factor * estimate_bps, self.config.max_rate_bps)
        self._last_at, self.last_rate_bps = now, rate
        self._sending = asyncio.create_task(self._send(newest, rate, now), name="probe")
        return True

    def on_feedback(self, results: Sequence[PacketResult], now: float) -> ProbeReading | None:
        """Feedback for the cluster in flight; its reading once the cluster is fully
        reported (or its time is up), else None."""
        cluster = self.cluster
        if cluster is None:
            return None
        cluster.add(results)
        if not cluster.complete and now - cluster.sent_at < self.config.feedback_timeout_s:
            return None
        return self._judge(cluster.carried_bps())

    async def stop(self) -> None:
        task, self._sending = self._sending, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _judge(self, carried: float | None) -> ProbeReading | None:
        cluster, self.cluster = self.cluster, None
        cfg = self.config
        self.judged += 1
        rate = cluster.rate_bps if cluster is not None else math.inf
        whole = carried is not None and carried >= cfg.found_share * rate
        short = False
        if carried is not None and whole:
            # The link kept up with what was tried, and shows no more than that: 10 ms
            # of jitter over a 60 ms cluster read a 905 kbit/s probe as 1072 on the 1000
            # kbit/s `satellite` link, and the rung that allowed overshot it for 2.6 s.
            carried = min(carried, rate)
            short = carried < cfg.full_share * rate
            self.found += 1
            self._wait_s = 0.0
            self._saturated.clear()  # the link has grown: older readings are history
        else:
            self._wait_s = min(max(2 * self._wait_s, cfg.interval_s), cfg.max_interval_s)
            if carried is not None:
                # Readings far from this one (over `forget_above` times apart) are of a
                # link that has since changed: two of 288 kbit/s from before `step`'s
                # rise outvoted one of 900 after it.
                limit = cfg.forget_above
                self._keep_readings(lambda value: carried / limit <= value <= carried * limit)
                self._saturated.append((self._clock(), carried))
        if carried is None:
            return None
        now = self._clock()
        while self._saturated and now - self._saturated[0][0] > cfg.readings_kept_s:
            self._saturated.popleft()
        link = None
        if len(self._saturated) == self._saturated.maxlen:
            link = statistics.median(value for _, value in self._saturated)
        return ProbeReading(carried, whole, link, short)

    def forget_readings_above(self, bps: float) -> None:
        """The estimate was cut to `bps`: readings of a link much bigger than that (over
        `forget_above` times it) describe the link before it changed. Kept, two readings
        of 1.8 Mbit/s from before `step`'s drop outvoted one of 280 kbit/s after it."""
        limit = self.config.forget_above * bps
        self._keep_readings(lambda value: value <= limit)

    def _keep_readings(self, keep: Callable[[float], bool]) -> None:
        kept = [(at, value) for at, value in self._saturated if keep(value)]
        self._saturated.clear()
        self._saturated.extend(kept)

    async def _send(self, newest: int, rate_bps: float, now: float) -> None:
        """The newest video packets again, one after another at `rate_bps`."""
        first = self._sending_from = self._tap.next_sequence
        count = self.config.packets(rate_bps)
        try:
            for sequence in range(newest - count + 1, newest + 1):
                before = self._tap.bytes_numbered
                budget = self._budget
                with budget.unmetered() if budget is not None else contextlib.nullcontext():
                    await self._sender._retransmit(sequence & 0xFFFF)
                size = self._tap.bytes_numbered - before
                if size:
                    await asyncio.sleep(size * 8 / rate_bps)
        except (ConnectionError, OSError) as exc:  # the transport closed under it
            log.debug("probe not sent: %s", exc)
            return
        finally:
            self._sending = self._sending_from = None
        last = self._tap.next_sequence - 1
        if last >= first:
            self.sent += 1
            self.cluster = ProbeCluster(first, last, rate_bps, now)
