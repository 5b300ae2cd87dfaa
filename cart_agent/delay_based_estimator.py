"""Uplink estimate from transport-wide feedback: the delay-based half of Google Congestion
Control (libwebrtc's `TrendlineEstimator`, `OveruseDetector` and `AimdRateControl`), plus
its loss-based rule, on packet arrival times instead of once-a-second receiver reports.

- Packets sent within 5 ms of each other form a group; for each pair of groups the
  change in one-way delay is (arrival gap − send gap). Its running sum, smoothed, is
  fitted by least squares over the last 20 groups: a positive slope is a queue building.
- The slope, scaled, is compared with an adaptive threshold: over it for more than 10 ms
  and two groups → overuse, under its negative → underuse (the queue draining).
- Overuse: the target drops to 85 % of the acknowledged rate (what the receiver actually
  got over the last 0.5 s), or to 85 % of itself while the cart sends far less than it
  (stills mode: the queue is not the cart's). Underuse: hold. Normal: grow, 12 %/s
  (25 %/s before the first overuse), or about one packet per round trip near the rate
  where overuse last began; never above what was acknowledged by more than
  `probe_headroom`.
- Loss over the last 2 s of feedback (only packets sent since the last cut): above 10 %
  the target drops by half the loss; above the link's usual (median) loss by 2 points,
  or by the reading's own sampling noise when few packets make it, it holds (not on a
  reading from before the last cut).

Pure: `on_feedback(results, now)` with `PacketResult`s from `transport_cc.py`, so
recorded or synthetic feedback replays it without a network (tests/rate_control/).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .transport_cc import PacketResult

PROBING_UP = "probing up"  # the reason while the estimate grows


class Usage(enum.Enum):
    NORMAL = "normal"
    OVERUSING = "overusing"
    UNDERUSING = "underusing"


@dataclass(frozen=True)
class GccConfig:
    start_bps: float = 300_000
    min_bps: float = 60_000
    max_bps: float = 2_500_000
    burst_s: float = 0.005  # packets sent this close together are one group
    window: int = 20  # groups in the trend fit
    smoothing: float = 0.9
    threshold_gain: float = 4.0
    initial_threshold_ms: float = 12.5
    threshold_up: float = 0.0087  # adaptation speeds, per ms (libwebrtc's k_u and k_d)
    threshold_down: float = 0.039
    overuse_time_s: float = 0.010
    backoff: float = 0.85  # on overuse, this share of the acknowledged rate
    increase_per_s: float = 0.12  # libwebrtc: 8 %; ours has no probes to speed it up
    startup_increase_per_s: float = 0.25
    calm_s: float = 5.0  # no cut for this long and past the old capacity: start-up speed
    acked_window_s: float = 0.5
    # The overuse cut's basis when the link keeps up: the higher of the 0.5 s rate and
    # this longer one. At 60-80 packets a second (audio and stills on `edge`) a 0.5 s
    # window read 39 kbit/s among 90-115 k ones, the cut went to the floor and the
    # stills stayed off for 15 s.
    steady_window_s: float = 1.5
    probe_headroom: float = 1.5  # never above this times the acknowledged rate...
    probe_headroom_bps: float = 250_000  # ...or, while sending little, this much above it
    probe_when_capped: float = 1.3  # `wants_probe` at this times the acknowledged rate...
    probe_quiet_s: float = 2.0  # ...with no cut for this long
    # A probe goes from the estimate, but from no more than this times the link's rate as
    # the last probe the link fell behind read it: the estimate creeps past such a reading
    # while nothing fills the link, and on `step`'s 300 kbit/s a probe from 1.4 times it
    # overflowed the 300 ms queue and stalled the exam camera 0.75 s.
    probe_past_reading: float = 1.1
    # One probe the link fell behind, read this far under the estimate, takes it down to
    # this times the reading at once (a reading over a 120 ms cluster is within ±10 % of
    # the link): on `rural-3g`'s 384 kbit/s the estimate had grown to 573 k past such a
    # reading of 336 k, before the three that make a median came, and the ladder turned
    # the room camera on into it (an exam stall of 0.7 s).
    probe_fell_behind_ceiling: float = 1.25
    min_loss_packets: int = 40
    loss_window_s: float = 2.0  # a second holds ~50 packets: 2 % random loss reads 4 % often
    decrease_loss: float = 0.10
    # Above this, cut to what got through (not for bursty spells). At 0.3, `edge`'s
    # 300 kbit/s start read 25 % lost with 110 k of 290 k acknowledged; cut to 7/8 of the
    # estimate, the link stayed overrun 2.4 s more and stills mode came 4.5 s in.
    heavy_loss: float = 0.2
    hold_excess_loss: float = 0.02
    usual_loss_window_s: float = 20.0
    reset_gap_s: float = 2.0  # feedback silent this long: arrival clock continuity lost
    fresh_s: float = 1.5  # `fresh()` while feedback is this recent
    apply_delay_s: float = 0.5  # a new target reaches the encoders within this long
    app_limited_share: float = 0.6  # sending under this share of the target: app-limited


@dataclass
class _Group:
    first_send: float
    last_send: float
    last_arrival: float


@dataclass
class TrendlineDetector:
    """Delay gradient → trend → overuse/underuse, as libwebrtc's trendline estimator."""

    config: GccConfig = field(default_factory=GccConfig)
    usage: Usage = Usage.NORMAL
    trend: float = 0.0
    threshold_ms: float = 0.0
    _deltas: int = 0
    _accumulated_ms: float = 0.0
    _smoothed_ms: float = 0.0
    _first_arrival: float | None = None
    _history: deque[tuple[float, float]] = field(default_factory=deque)
    _over_s: float = -1.0
    _over_count: int = 0
    _previous_trend: float = 0.0
    _threshold_at: float | None = None

    def __post_init__(self) -> None:
        self.threshold_ms = self.config.initial_threshold_ms

    def update(self, arrival_delta_s: float, send_delta_s: float, arrival_s: float) -> Usage:
        cfg = self.config
        delta_ms = (arrival_delta_s - send_delta_s) * 1000.0
        self._deltas = min(self._deltas + 1, 1000)
        self._accumulated_ms += delta_ms
        self._smoothed_ms = cfg.smoothing * self._smoothed_ms + (1 - cfg.smoothing) * (
            self._accumulated_ms
        )
        if self._first_arrival is None:
            self._first_arrival = arrival_s
        self._history.append(((arrival_s - self._first_arrival) * 1000.0, self._smoothed_ms))
        if len(self._history) > cfg.window:
            self._history.popleft()
        if len(self._history) == cfg.window:
            self.trend = _slope(self._history) or self.trend
        self._detect(send_delta_s, arrival_s)
        return self.usage

    def _detect(self, send_delta_s: float, now: float) -> None:
        cfg = self.config
        if self._deltas < 2:
            return
        modified = min(self._deltas, 60) * self.trend * cfg.threshold_gain
        if modified > self.threshold_ms:
            if self._over_s < 0:
                self._over_s = send_delta_s / 2
            else:
                self._over_s += send_delta_s
            self._over_count += 1
            if (
                self._over_s > cfg.overuse_time_s
                and self._over_count > 1
                and self.trend >= self._previous_trend
            ):
                self._over_s, self._over_count = 0.0, 0
                self.usage = Usage.OVERUSING
        elif modified < -self.threshold_ms:
            self._over_s, self._over_count = -1.0, 0
            self.usage = Usage.UNDERUSING
        else:
            self._over_s, self._over_count = -1.0, 0
            self.usage = Usage.NORMAL
        self._previous_trend = self.trend
        self._adapt_threshold(modified, now)

    def _adapt_threshold(self, modified: float, now: float) -> None:
        cfg = self.config
        if self._threshold_at is None:
            self._threshold_at = now
        if abs(modified) > self.threshold_ms + 15.0:  # a spike: do not learn from it
            self._threshold_at = now
            return
        k = cfg.threshold_down if abs(modified) < self.threshold_ms else cfg.threshold_up
        elapsed_ms = min((now - self._threshold_at) * 1000.0, 100.0)
        self.threshold_ms += k * (abs(modified) - self.threshold_ms) * elapsed_ms
        self.threshold_ms = min(max(self.threshold_ms, 6.0), 600.0)
        self._threshold_at = now


def _behind(sent_bps: float | None, acked_bps: float | None) -> bool:
    """The receiver got clearly less than was sent over the same window."""
    return sent_bps is not None and acked_bps is not None and acked_bps < 0.85 * sent_bps


def _slope(points: Iterable[tuple[float, float]]) -> float | None:
    values = list(points)
    mean_x = sum(x for x, _ in values) / len(values)
    mean_y = sum(y for _, y in values) / len(values)
    numerator = sum((x - mean_x) * (y - mean_y) for x, y in values)
    denominator = sum((x - mean_x) ** 2 for x, _ in values)
    return numerator / denominator if denominator else None


@dataclass
class DelayBasedEstimator:
    """Transport feedback → target uplink rate in bit/s (see the module docstring)."""

    config: GccConfig = field(default_factory=GccConfig)
    estimate_bps: float = 0.0
    reason: str = "start"
    acked_bps: float | None = None
    steady_acked_bps: float | None = None  # over `steady_window_s`
    loss: float = 0.0
    last_feedback_at: float | None = None
    rtt_s: float = 0.2  # set by the caller from receiver reports
    # Sent outside transport-wide numbers (data channels, RTCP), set by the caller: part
    # of the link's load, so the estimate (what the link carries) counts it. Without it an
    # overuse cut on `edge` kept 85 % of the RTP alone, and the caller then took the data
    # channels' 30 kbit/s off that again: the exam stills went off for 8-13 s at a time.
    untracked_bps: float = 0.0
    # The same over about the last second, bursts included: what held the RTP back when
    # a still or SCTP retransmissions went out (`edge`: 39 kbit/s of RTP acknowledged in
    # 0.5 s, and a cut from that plus the smoothed 20 k took the stills off).
    untracked_recent_bps: float = 0.0
    detector: TrendlineDetector = field(init=False)
    _group: _Group | None = None
    _previous_group: _Group | None = None
    _received: deque[tuple[float, int]] = field(default_factory=deque)  # arrival, bytes
    _sent: deque[tuple[float, int]] = field(default_factory=deque)  # send time, bytes
    sent_bps: float | None = None
    steady_sent_bps: float | None = None
    _outcomes: deque[tuple[float, bool]] = field(default_factory=deque)  # send time, lost
    _losses: deque[tuple[float, float]] = field(default_factory=deque)
    _last_change_at: float | None = None
    _last_decrease_at: float = -math.inf
    _capacity_bps: float | None = None  # acknowledged rate when overuse last began
    _filled_bps: float | None = None  # what a saturated or "short" probe read
    _filled_carrying_bps: float = 0.0  # ...what the link delivered in all meanwhile...
    _filled_at: float = -math.inf  # ...and when
    _link_read_bps: float | None = None  # ...kept until a probe finds the link bigger
    _overused_once: bool = False
    _newest_sequence: int = -1
    _loss_since_s: float = -math.inf  # loss counts only packets sent after the last cut
    _loss_known: bool = False

    def __post_init__(self) -> None:
        self.detector = TrendlineDetector(self.config)
        if self.estimate_bps <= 0:
            self.estimate_bps = self.config.start_bps

    def fresh(self, now: float) -> bool:
        """True while feedback keeps coming (the receiver speaks transport-cc)."""
        return self.last_feedback_at is not None and now - self.last_feedback_at < (
            self.config.fresh_s
        )

    def on_feedback(
        self, results: Sequence[PacketResult], now: float, probe: range | None = None
    ) -> float:
        """Feed one transport feedback's packets; returns the new target in bit/s. The
        packets numbered in `probe` (a probe cluster, `prober.py`) count as sent and
        acknowledged but stay out of the delay trend: a probe faster than the link queues
        on purpose, and read as overuse it cut the estimate it had just raised."""
        cfg = self.config
        if self.last_feedback_at is not None and now - self.last_feedback_at > cfg.reset_gap_s:
            self._restart_after_gap()
        self.last_feedback_at = now
        fresh = sorted(
            (r for r in results if r.sequence > self._newest_sequence), key=lambda r: r.sequence
        )
        if not fresh:
            return self.estimate_bps
        self._newest_sequence = fresh[-1].sequence
        usage = self.detector.usage
        for result in fresh:
            self._sent.append((result.send_s, result.size_bytes))
            if result.send_s > self._loss_since_s:
                self._outcomes.append((result.send_s, result.arrival_s is None))
            if result.arrival_s is None:
                continue
            self._received.append((result.arrival_s, result.size_bytes))
            if probe is not None and result.sequence in probe:
                # Nor the step in delay from the last group before to the first after
                # it: the queue the probe left, which the packets after it see drain.
                self._group = self._previous_group = None
            else:
                usage = self._add_to_group(result)
        self._update_acked(fresh)
        self._update_loss(now)
        self._control(usage, now)
        return self.estimate_bps

    def link_back(self, now: float) -> None:
        """Media flows again after an outage: what was sent into it is not congestion."""
        self._restart_after_gap()
        self._sent.clear()
        self.sent_bps = self.steady_sent_bps = None
        self._loss_since_s = now

    def _restart_after_gap(self) -> None:
        self.detector = TrendlineDetector(self.config)
        self._group = self._previous_group = None
        self._received.clear()
        self._outcomes.clear()
        self.acked_bps = None

    def _add_to_group(self, result: PacketResult) -> Usage:
        assert result.arrival_s is not None
        group = self._group
        if group is None:
            self._group = _Group(result.send_s, result.send_s, result.arrival_s)
            return self.detector.usage
        send_gap = result.send_s - group.first_send
        arrival_gap = result.arrival_s - group.last_arrival
        in_burst = arrival_gap < self.config.burst_s and (
            arrival_gap - (result.send_s - group.last_send) < 0
        )
        if send_gap <= self.config.burst_s or in_burst:
            group.last_send = max(group.last_send, result.send_s)
            group.last_arrival = max(group.last_arrival, result.arrival_s)
            return self.detector.usage
        previous, self._previous_group = self._previous_group, group
        self._group = _Group(result.send_s, result.send_s, result.arrival_s)
        if previous is None:
            return self.detector.usage
        send_delta = group.last_send - previous.last_send
        arrival_delta = group.last_arrival - previous.last_arrival
        if arrival_delta < -1.0 or arrival_delta - send_delta > 3.0:  # receiver clock jumped
            self._restart_after_gap()
            return Usage.NORMAL
        return self.detector.update(arrival_delta, send_delta, group.last_arrival)

    def _update_acked(self, fresh: list[PacketResult]) -> None:
        newest_send = fresh[-1].send_s
        self.sent_bps, self.steady_sent_bps = self._rates(
            self._sent, newest_send, self.sent_bps, self.steady_sent_bps
        )
        newest = max((r.arrival_s for r in fresh if r.arrival_s is not None), default=None)
        if newest is not None:
            self.acked_bps, self.steady_acked_bps = self._rates(
                self._received, newest, self.acked_bps, self.steady_acked_bps
            )

    def _rates(
        self,
        packets: deque[tuple[float, int]],
        newest: float,
        short_bps: float | None,
        steady_bps: float | None,
    ) -> tuple[float | None, float | None]:
        """Bit rates of (time, bytes) `packets` over the short and the steady window up to
        `newest`; a window less than half full keeps the previous value."""
        cfg = self.config
        while packets and packets[0][0] < newest - cfg.steady_window_s:
            packets.popleft()
        rates: list[float | None] = []
        for window, previous in (
            (cfg.acked_window_s, short_bps),
            (cfg.steady_window_s, steady_bps),
        ):
            inside = [(t, size) for t, size in packets if t >= newest - window]
            span = newest - inside[0][0] if inside else 0.0
            if span >= window * 0.5:
                total = sum(size for _, size in inside)
                rates.append(total * 8 / max(span, window * 0.9))
            else:
                rates.append(previous)
        return rates[0], rates[1]

    def _update_loss(self, now: float) -> None:
        cfg = self.config
        newest_send = self._outcomes[-1][0] if self._outcomes else now
        start = max(newest_send - cfg.loss_window_s, self._loss_since_s)
        while self._outcomes and self._outcomes[0][0] <= start:
            self._outcomes.popleft()
        # At least a second's worth of packets: 2 lost of 10 read as 20 % on `edge` (5 %
        # random loss) and cut the estimate to the floor.
        span = self._outcomes[-1][0] - self._outcomes[0][0] if self._outcomes else 0.0
        self._loss_known = len(self._outcomes) >= cfg.min_loss_packets and span >= 1.0
        if self._loss_known:
            self.loss = sum(lost for _, lost in self._outcomes) / len(self._outcomes)
            # The usual loss is background loss, never over `decrease_loss`: on `bursty`
            # an overrun link lost 10-60 % of each report for 10 s, the median of those
            # became "usual", and no loss cut followed (three exam stalls of 3.5-3.9 s).
            self._losses.append((now, min(self.loss, cfg.decrease_loss)))
        while self._losses and self._losses[0][0] < now - cfg.usual_loss_window_s:
            self._losses.popleft()

    @property
    def app_limited(self) -> bool:
        """Sending well under the target, so the acknowledged rate says little of the link."""
        sent = self.sent_bps
        return (
            sent is not None
            and sent + self.untracked_bps < self.config.app_limited_share * self.estimate_bps
        )

    @property
    def link_behind(self) -> bool:
        """The receiver gets clearly less than the cart sends: the cart fills a queue."""
        return _behind(self.sent_bps, self.acked_bps)

    @property
    def steadily_behind(self) -> bool:
        """`link_behind` over the steady window too: a capacity drop, not a short dip."""
        return self.link_behind and _behind(self.steady_sent_bps, self.steady_acked_bps)

    @property
    def _carrying_bps(self) -> float:
        """What the link carries now: the media acknowledged over the steady window plus
        what is sent outside transport-wide numbers."""
        return (self.steady_acked_bps or 0.0) + self.untracked_bps

    @property
    def usual_loss(self) -> float:
        if len(self._losses) < 20:
            return 0.0
        values = sorted(value for _, value in self._losses)
        return values[
            len(values) // 2
        ]  # congestion loss comes in spells; the median is random loss

    @property
    def _loss_noise(self) -> float:
        """How far above the usual loss a reading must be to count: `hold_excess_loss`, or
        two binomial standard deviations of a reading from this few packets. On `edge`
        (5 % random loss, 60 packets in 2 s: readings 2-10 %) the estimate held at a
        quarter of the feedback, and a delay-based cut then stood for seconds."""
        cfg = self.config
        usual = max(self.usual_loss, cfg.hold_excess_loss)
        packets = max(len(self._outcomes), 1)
        return max(cfg.hold_excess_loss, 2 * math.sqrt(usual * (1 - usual) / packets))

    def _control(self, usage: Usage, now: float) -> None:
        cfg = self.config
        elapsed = 0.0 if self._last_change_at is None else min(now - self._last_change_at, 1.0)
        self._last_change_at = now
        acked = None if self.acked_bps is None else self.acked_bps + self.untracked_bps
        can_decrease = now - self._last_decrease_at >= max(0.3, self.rtt_s)
        if usage is Usage.OVERUSING:
            if can_decrease:
                basis = self.estimate_bps
                if self.acked_bps is not None:  # what the link carried, bursts included
                    basis = self.acked_bps + max(self.untracked_bps, self.untracked_recent_bps)
                    if self.steady_acked_bps and not self.steadily_behind:
                        basis = max(basis, self.steady_acked_bps + self.untracked_bps)
                if self.app_limited and not self.link_behind:
                    # Sending far below the target (stills mode, small video) and all of it
                    # getting through: the queue is not ours, or is jitter; 85 % of a
                    # trickle would turn the video off.
                    basis = self.estimate_bps
                self._capacity_bps = basis
                self._overused_once = True
                self._set(min(self.estimate_bps, basis * cfg.backoff))
                self._cut(now)
            elif acked is not None and not self.app_limited and self._capacity_bps is not None:
                # Still overusing right after a cut: the acknowledged rate then was partly
                # from before the link changed (`step`: 461 k measured on a 300 k link).
                self._capacity_bps = min(self._capacity_bps, acked)
            self.reason = "delay rising"
            return
        excess = self.usual_loss + self._loss_noise
        if self.loss > cfg.decrease_loss and self.loss > excess:
            if can_decrease and self._loss_known:
                target = self.estimate_bps * (1 - 0.5 * self.loss)
                if acked is not None and self.link_behind and self.loss > cfg.heavy_loss:
                    target = min(target, acked)  # 68 % lost on `step`: the link's rate, at once
                self._set(target)
                self._cut(now)
            self.reason = f"loss {self.loss:.0%}"
            return
        if usage is Usage.UNDERUSING:
            self.reason = "queue draining"
            return
        if self._loss_known and self.loss > excess:
            self.reason = f"holding at loss {self.loss:.0%}"
            return
        self._set(self._grown(elapsed, acked, now))
        self.reason = PROBING_UP

    @property
    def last_decrease_at(self) -> float:
        return self._last_decrease_at

    def wants_probe(self, now: float) -> bool:
        """Growing with no cut for `probe_quiet_s`, but held back by what was acknowledged
        (the estimate at `probe_when_capped` of its headroom or more): only sending more
        can tell whether the link carries more (`prober.py`)."""
        cfg = self.config
        acked = self.steady_acked_bps  # a media burst's short dip is no headroom
        return (
            acked is not None
            and self.fresh(now)
            and self.reason == PROBING_UP
            and now - self._last_decrease_at >= cfg.probe_quiet_s
            and self.estimate_bps >= cfg.probe_when_capped * (acked + self.untracked_bps)
            and self.estimate_bps < cfg.max_bps
        )

    def on_probe(self, carried_bps: float, now: float, lower: bool) -> bool:
        """Probes showed the link carrying `carried_bps` (`prober.py`); `lower`: the reading
        is the link's own rate, not a lower bound. Higher than the estimate, and no queue
        building: the estimate goes there. The link's own rate, lower than the estimate:
        the estimate had grown past the link on headroom nobody used, and comes down to
        it, though never under what the link is carrying now (on `step` and `rural-3g`
        such an estimate tried a rung above the link and stalled the exam camera for a
        second). Either way growth past the link's own rate then slows to a packet per
        round trip, as past where overuse began: raised to a reading of 935 kbit/s with
        that forgotten, `satellite`'s estimate grew to 1.19 M in 1.6 s, and the rung it
        allowed lost half of the packets of the next report. Returns whether the
        estimate changed."""
        if self.detector.usage is Usage.OVERUSING:
            return False
        if lower:
            self._link_read_bps = carried_bps
            if carried_bps < self.estimate_bps:
                carried_bps = max(carried_bps, self._carrying_bps)
                if carried_bps >= self.estimate_bps:
                    return False
            self._capacity_bps = carried_bps
            self.reason = "probe: link full"
        elif carried_bps > self.estimate_bps:
            # Where overuse began, or a probe filled the link, is history: it is bigger.
            self._capacity_bps = self._filled_bps = self._link_read_bps = None
            self.reason = "probe"
        else:
            return False
        self._set(carried_bps)
        self._last_change_at = now
        return True

    def on_saturated_probe(self, carried_bps: float, now: float) -> None:
        """One probe the link fell behind, or only just kept up with ("short",
        `prober.py`), read `carried_bps`. Alone it is too noisy to move the estimate
        (±25 % with 10 ms of jitter over 60 ms clusters, ±10 % over 120 ms), but growth past it
        slows to a packet per round trip, as near the rate of the last overuse
        (libwebrtc's link capacity estimate takes probe rates too): on `satellite` the
        estimate grew at 25 %/s past a reading of 974 kbit/s to 1.24 M before more
        readings came, and the rung it allowed lost 14 % of the stethoscope for 2 s.
        Below it growth keeps its speed: slowed there as well, `step`'s rise to 80 % of
        the link took 9.5-10 s instead of 5.4-8.9."""
        self._filled_bps = self._link_read_bps = carried_bps
        self._filled_carrying_bps = self._carrying_bps
        self._filled_at = now

    def on_probe_fell_behind(self, carried_bps: float, now: float) -> bool:
        """A probe the link fell behind read `carried_bps` (`on_saturated_probe`); an
        estimate over `probe_fell_behind_ceiling` times that comes down to it, though never
        under what the link carries now. Returns whether the estimate changed."""
        self.on_saturated_probe(carried_bps, now)
        target = max(self.config.probe_fell_behind_ceiling * carried_bps, self._carrying_bps)
        if self.detector.usage is Usage.OVERUSING or target >= self.estimate_bps:
            return False
        self._set(target)
        self._last_change_at = now
        self.reason = "probe: link full"
        return True

    @property
    def probe_from_bps(self) -> float:
        """The rate a probe is sized from (`prober.py`): the estimate, at most
        `probe_past_reading` times the link's rate as the last saturated probe read it."""
        reading = self._link_read_bps
        if reading is None:
            return self.estimate_bps
        return min(self.estimate_bps, self.config.probe_past_reading * reading)

    def _cut(self, now: float) -> None:
        """After a decrease, judge loss afresh: the packets sent before it are the ones
        the old rate lost (a 2 s window still full of them took `step` to the floor)."""
        self._last_decrease_at = now
        # Packets still in flight, and those sent before the encoders take the new rate
        # (the controller applies it within its 0.5 s step), were sent at the old rate.
        self._loss_since_s = now + self.config.apply_delay_s
        self._outcomes.clear()
        self._loss_known = False

    def _grown(self, elapsed: float, acked: float | None, now: float) -> float:
        cfg = self.config
        capacity = self._capacity_bps
        if capacity is not None and self.estimate_bps > 1.25 * capacity:
            capacity = self._capacity_bps = None  # the link got better
        filled = self._filled_bps
        carried_more = (
            acked is not None
            and acked > 1.1 * max(filled or 0.0, self._filled_carrying_bps)
            and now - self._filled_at >= cfg.steady_window_s
        )
        if filled is not None and (
            carried_more or (self.app_limited and self.estimate_bps > 1.25 * filled)
        ):
            # The link carried more than it did when a probe found it full: it got better.
            # Not more than the reading alone (a cautious share of the cluster's own
            # packets' rate, without the audio between them), nor while the cluster's own
            # burst drains: on `rural-3g` a reading of 337 kbit/s, the link delivering
            # 384 in all, was "passed" 0.3 s later at 448 k, the estimate grew at full
            # speed to 555 k and the room camera came on (an exam stall of 1.57 s). Not the
            # estimate passing it (as libwebrtc's link capacity, reset by throughput):
            # growing a packet per round trip on nothing but headroom, `rural-3g`'s
            # estimate passed 1.25 times a 370 kbit/s reading in 6 s, grew at full speed
            # from there and turned the room camera on into 38 % loss. Unless the cart
            # sends too little to show it (stills): with a 1.5 s round trip a packet per
            # round trip kept the exam camera on stills to the end of a call.
            filled = self._filled_bps = None
            if carried_more:  # and probes go from the estimate again, not from the reading
                self._link_read_bps = None
        near_capacity = capacity is not None and self.estimate_bps > 0.8 * capacity
        if near_capacity or (filled is not None and self.estimate_bps >= filled):
            packet_bits = 1200 * 8
            grown = self.estimate_bps + packet_bits / (self.rtt_s + 0.1) * elapsed
        else:
            # Start-up speed again once well past the old capacity with no cut for a while:
            # the link has grown (`step`: 300 → 1000 kbit/s), and there are no probes.
            calm = now - self._last_decrease_at >= cfg.calm_s and capacity is None
            speed = (
                cfg.startup_increase_per_s
                if calm or not self._overused_once
                else cfg.increase_per_s
            )
            grown = self.estimate_bps * (1 + speed) ** elapsed
            if filled is not None:
                grown = min(grown, filled)
        if acked is not None:
            limit = acked * cfg.probe_headroom
            if self.app_limited:  # stills or small video: let the next rung be tried
                limit = max(limit, acked + cfg.probe_headroom_bps)
            grown = min(grown, max(self.estimate_bps, limit))
        return grown

    def _set(self, bps: float) -> None:
        self.estimate_bps = min(max(bps, self.config.min_bps), self.config.max_bps)
