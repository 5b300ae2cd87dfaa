"""Sender-side estimate of the available uplink, from what the receiver reports.

aiortc's only rate control is the receiver's REMB, which on our rural links stays above
the link rate (shared/REFERENCE-LINKS.md). This estimator follows the loss-based half of
libwebrtc's send-side BWE, adds a delay trend from the RTCP round-trip time, and treats
REMB only as a ceiling:

- loss above about 10 % (or well above the link's usual random loss): step down at once
  to a little under what actually got through;
- a round-trip time rising clearly above its recent floor (a queue building): step down
  to 85 % of the sending rate;
- a few per cent of loss: hold;
- clean reports: after a hold time since the last decrease, probe up slowly (6 % a
  second, 1 % near the rate where congestion last began), never far above what is
  actually being sent;
- no report at all for a while (an outage): drop to the floor, then return quickly to
  half of the last good estimate once reports come back clean.

Everything is driven by `LinkReport` records, so recorded or synthetic sequences replay
it without a network (tests/rate_control/).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

MIN_PLAUSIBLE_RTT_S = 0.005


@dataclass(frozen=True)
class LinkReport:
    """One observation of the link, aggregated over the cart's senders.

    `fraction_lost` is 0..1 (RTCP's 8-bit value divided by 256); `rtt_s` and `jitter_s`
    are seconds; `remb_bps` is the receiver's estimate if it sent one; `sent_bps` is what
    the cart put on the wire since the previous report, overhead included.
    """

    at: float
    fraction_lost: float
    rtt_s: float | None = None
    jitter_s: float | None = None
    remb_bps: float | None = None
    sent_bps: float | None = None


@dataclass(frozen=True)
class EstimatorConfig:
    start_bps: float = 300_000
    min_bps: float = 60_000
    max_bps: float = 2_500_000
    # Step down above this loss and this much above the link's usual loss (a 5-7 %
    # spike alone, seen on a 2 Mbit/s link carrying 470 kbit/s, no longer costs a rung).
    decrease_loss: float = 0.10
    decrease_excess_loss: float = 0.05
    hold_excess_loss: float = 0.02  # no probing while loss is this much above usual
    delivered_margin: float = 0.9  # on heavy loss, aim at this share of what got through
    delay_backoff: float = 0.85  # on a rising delay, aim at this share of the sending rate
    rtt_rise_s: float = 0.15  # a delay rise counts above floor + max(this, share * floor)...
    rtt_rise_share: float = 0.5
    rtt_rise_reports: int = 2  # ...in this many reports in a row, each above the last
    # (one high RTT is often the cart's own event loop late on a busy 2-core machine:
    # measured 380 ms on rural-3g while sending 73 of 384 kbit/s)
    rtt_window_s: float = 30.0
    loss_window_s: float = 20.0
    increase_per_s: float = 0.12  # multiplicative probing speed
    startup_increase_per_s: float = 0.8  # until the first congestion signal (slow start)
    near_ceiling_increase_per_s: float = 0.01  # slower near where congestion last began
    near_ceiling_share: float = 0.8
    increase_hold_s: float = 4.0  # no probing this soon after a decrease
    probe_headroom: float = 1.5  # never estimate above this times the sending rate...
    probe_headroom_bps: float = 250_000  # ...or this much above it (paused or small video)
    # A receiver report covers about the last second: the one after a decrease still
    # shows the loss from before it (a second cut 0.5 s later took rural-3g to the floor).
    min_decrease_interval_s: float = 1.0
    silence_s: float = 6.5  # no report for this long: an outage (audio-only RR: every 5 s)
    delay_grace_s: float = 1.5  # a delay rise this soon after a decrease is the queue draining
    use_remb: bool = False  # see `update`
    recovery_share: float = 0.5  # after an outage, resume at this share of the last good
    # After the media watchdog saw the link return: reports this soon still cover the
    # outage (aiortc's first one after 5 s down said 97 % lost) and are not congestion.
    outage_report_grace_s: float = 2.5


@dataclass
class _Sample:
    at: float
    value: float


@dataclass
class BandwidthEstimator:
    """Turns a stream of `LinkReport`s into a target uplink rate in bit/s."""

    config: EstimatorConfig = field(default_factory=EstimatorConfig)
    estimate_bps: float = 0.0
    in_outage: bool = False
    reason: str = "start"
    _last_decrease_at: float = -math.inf
    _last_update_at: float | None = None
    _last_good_bps: float = 0.0
    _rtts: deque[_Sample] = field(default_factory=deque)
    _short_rtt_s: float | None = None  # the newest positive round trip under 5 ms
    _losses: deque[_Sample] = field(default_factory=deque)
    _previous_rtt: float | None = None
    _ceiling_bps: float | None = None  # the sending rate at which congestion last began
    _congested_once: bool = False  # ends the start-up phase
    _rising_reports: int = 0
    _heard_at: float | None = None  # the last report, or the link's return
    _stale_until: float = -math.inf  # reports before this still cover an outage

    def __post_init__(self) -> None:
        if self.estimate_bps <= 0:
            self.estimate_bps = self.config.start_bps
        self._last_good_bps = self.estimate_bps

    @property
    def usual_loss(self) -> float:
        """The link's background loss: a low percentile of recent reports."""
        if len(self._losses) < 5:  # too few to tell random loss from congestion
            return 0.0
        values = sorted(s.value for s in self._losses)
        return values[len(values) // 5]

    @property
    def mean_loss(self) -> float:
        """The loss over the reports of the last `loss_window_s` (0 with under 5)."""
        if len(self._losses) < 5:
            return 0.0
        return sum(s.value for s in self._losses) / len(self._losses)

    @property
    def rtt_s(self) -> float | None:
        """The newest plausible round trip (`_plausible_rtt`): what the screens show. On a
        link too short for that test (a LAN, loopback) the newest positive one."""
        return self._rtts[-1].value if self._rtts else self._short_rtt_s

    @property
    def rtt_floor_s(self) -> float | None:
        """A low percentile, not the minimum: aiortc's RTT from a receiver report that
        echoes an older sender report comes out too small or negative now and then."""
        if not self._rtts:
            return None
        values = sorted(s.value for s in self._rtts)
        return values[len(values) // 10]

    def update(self, report: LinkReport) -> float:
        """Feed one report; returns the new estimate in bit/s."""
        cfg = self.config
        now = report.at
        usual = self.usual_loss  # before this report joins the window
        self._remember(report)
        elapsed = 0.0 if self._last_update_at is None else max(0.0, now - self._last_update_at)
        self._last_update_at = now
        self._heard_at = now
        loss = min(max(report.fraction_lost, 0.0), 1.0)
        if now < self._stale_until:
            return self.estimate_bps

        if self.in_outage:
            self.in_outage = False
            if loss <= cfg.decrease_loss:
                self._set(max(self.estimate_bps, self._last_good_bps * cfg.recovery_share))
                self.reason = "recovering after an outage"
                self._last_decrease_at = now
                return self.estimate_bps

        rising = self._delay_rising(report.rtt_s)
        can_decrease = now - self._last_decrease_at >= max(
            cfg.min_decrease_interval_s, report.rtt_s or 0.0
        )
        sent = report.sent_bps

        if loss > max(cfg.decrease_loss, usual + cfg.decrease_excess_loss):
            if can_decrease:
                basis = self.estimate_bps if sent is None else min(self.estimate_bps, sent)
                self._note_ceiling(basis)
                target = basis * (1.0 - loss) * cfg.delivered_margin
                self._set(min(self.estimate_bps, target))
                self._last_decrease_at = now
            self.reason = f"loss {loss:.0%}"
        elif rising:
            if can_decrease and now - self._last_decrease_at >= cfg.delay_grace_s:
                basis = self.estimate_bps if sent is None else min(self.estimate_bps, sent)
                self._note_ceiling(basis)
                self._set(min(self.estimate_bps, basis * cfg.delay_backoff))
                self._last_decrease_at = now
            self.reason = "delay rising"
        elif loss > usual + cfg.hold_excess_loss:
            self.reason = f"holding at loss {loss:.0%}"
        elif now - self._last_decrease_at < cfg.increase_hold_s:
            self.reason = "holding after a decrease"
        else:
            ceiling = self._ceiling_bps
            speed = cfg.increase_per_s if self._congested_once else cfg.startup_increase_per_s
            if ceiling is not None and self.estimate_bps > ceiling * 1.1:
                self._ceiling_bps = None  # the link got better: probe at full speed again
            elif ceiling is not None and self.estimate_bps > ceiling * cfg.near_ceiling_share:
                speed = cfg.near_ceiling_increase_per_s
            grown = self.estimate_bps * (1.0 + speed) ** elapsed
            if sent is not None:
                limit = max(sent * cfg.probe_headroom, sent + cfg.probe_headroom_bps)
                grown = min(grown, max(self.estimate_bps, limit))
            self._set(grown)
            self._last_good_bps = max(self._last_good_bps * 0.99, self.estimate_bps)
            self.reason = "probing up"

        if cfg.use_remb and report.remb_bps is not None and report.remb_bps > 0:
            # Off by default: a receiver's REMB follows what it receives (≤ 1.5 × incoming
            # in libwebrtc, lower in aiortc), so while video is paused or small it says
            # little, and as a ceiling it pinned the estimate at the floor after a step
            # down (measured on the `step` profile). Even when on, it caps probing only.
            basis = sent if sent is not None else self.estimate_bps
            floor = max(basis * cfg.probe_headroom, basis + cfg.probe_headroom_bps)
            ceiling = max(report.remb_bps, floor)
            if ceiling < self.estimate_bps:
                self.reason = "receiver's limit"
            self._set(min(self.estimate_bps, ceiling))
        return self.estimate_bps

    def heard(self, now: float) -> None:
        """Transport-wide feedback came from the receiver: the link is up. In stills mode
        Chrome sends receiver reports about every 5 s (randomised up to 7.5 s), so one lost
        on `edge` looked like an outage while feedback arrived every 130 ms."""
        self._heard_at = now if self._heard_at is None else max(self._heard_at, now)

    def check_silence(self, now: float) -> bool:
        """Call periodically: after `silence_s` with no report, fall to the floor.

        Returns True while the link is considered down.
        """
        if self._heard_at is None:
            return False
        if now - self._heard_at >= self.config.silence_s and not self.in_outage:
            self.in_outage = True
            self._last_good_bps = max(self._last_good_bps, self.estimate_bps)
            self._set(self.config.min_bps)
            self._last_decrease_at = now
            self.reason = "no reports from the specialist"
        return self.in_outage

    def link_back(self, now: float, resume_bps: float) -> None:
        """The media watchdog saw media from the other side again after a loss.

        An outage is not congestion: resume at once at `resume_bps`, the rate from
        before it, and ignore the reports that still cover the outage.
        """
        self.in_outage = False
        self._heard_at = now
        self._stale_until = now + self.config.outage_report_grace_s
        self._set(resume_bps)
        self._last_decrease_at = now
        self.reason = "recovering after an outage"

    def _note_ceiling(self, bps: float) -> None:
        self._congested_once = True
        previous = self._ceiling_bps
        # Congestion at a lower rate replaces the ceiling (the link got worse); at a
        # higher one it moves it up only partly.
        self._ceiling_bps = (
            bps if previous is None or bps < previous else 0.7 * previous + 0.3 * bps
        )

    def _set(self, bps: float) -> None:
        self.estimate_bps = min(max(bps, self.config.min_bps), self.config.max_bps)

    def _remember(self, report: LinkReport) -> None:
        cfg = self.config
        self._losses.append(_Sample(report.at, report.fraction_lost))
        while self._losses and report.at - self._losses[0].at > cfg.loss_window_s:
            self._losses.popleft()
        if report.rtt_s is not None and 0 < report.rtt_s <= MIN_PLAUSIBLE_RTT_S:
            self._short_rtt_s = report.rtt_s
        if self._plausible_rtt(report.rtt_s):
            assert report.rtt_s is not None
            self._rtts.append(_Sample(report.at, report.rtt_s))
            while self._rtts and report.at - self._rtts[0].at > cfg.rtt_window_s:
                self._rtts.popleft()

    def _plausible_rtt(self, rtt: float | None) -> bool:
        """False for aiortc's stale-report artefacts: a round trip below 5 ms or below
        half the recent median (seen on the `step` link: -67, 8, 22 ms among 100 ms)."""
        if rtt is None or rtt <= MIN_PLAUSIBLE_RTT_S:
            return False
        if len(self._rtts) < 3:
            return True
        values = sorted(s.value for s in self._rtts)
        return rtt >= 0.5 * values[len(values) // 2]

    def _delay_rising(self, rtt: float | None) -> bool:
        if not self._plausible_rtt(rtt):
            rtt = None
        previous, self._previous_rtt = self._previous_rtt, rtt
        floor = self.rtt_floor_s
        if rtt is None or previous is None or floor is None or len(self._rtts) < 3:
            return False
        threshold = floor + max(self.config.rtt_rise_s, self.config.rtt_rise_share * floor)
        self._rising_reports = self._rising_reports + 1 if rtt > max(threshold, previous) else 0
        return self._rising_reports >= self.config.rtt_rise_reports
