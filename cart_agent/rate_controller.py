"""The sending side's control loop: receiver reports in, per-track encoder settings out.

Every `interval_s` the controller reads each sender's `getStats()` (aiortc records the
latest RTCP receiver report there as `remote-inbound-rtp`, and what it sent as
`outbound-rtp`), turns the new reports into one `LinkReport`, feeds the
`BandwidthEstimator`, picks a rung of the `QualityLadder` through a `RungSelector`
(hysteresis), and applies the allocation to the senders' encoders:
`AdaptiveVp8Encoder.set_layer` for video (size, frame rate, bit rate; paused for stills
or off) and `AdaptiveOpusEncoder` rate and loss for audio. It publishes a `QualityState`
when something a person would notice changes, and at least every `publish_every_s`.

It owns one asyncio task: `start()` creates it, `stop()` cancels and awaits it. With a
`LinkRecorder` it records what it heard (`link_recording.py`); `link_replay.py` feeds
such a recording back through `on_tick`, `on_feedback`, `on_probe_reading` and
`link_changed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCRtpSender

from .bandwidth_estimator import (
    MIN_PLAUSIBLE_RTT_S,
    BandwidthEstimator,
    EstimatorConfig,
    LinkReport,
)
from .delay_based_estimator import DelayBasedEstimator, GccConfig
from .encoder_control import AdaptiveVp8Encoder, VideoLayer, encoder_of
from .link_recording import Feedback, LinkRecorder, Tick, WatchdogVerdict
from .loss_window import LossWindow
from .opus_settings import PROFILES, AdaptiveOpusEncoder
from .prober import Prober, ProbeReading
from .quality_ladder import (
    PACKET_OVERHEAD_BYTES,
    Allocation,
    QualityLadder,
    Rung,
    RungSelector,
    TrackRole,
    audio_frame_ms,
)
from .quality_score import QualityState, quality_state
from .retransmission_budget import RetransmissionBudget
from .transport_cc import PacketResult, TransportCcTap
from .video_fec import FecPayloadTypes, UlpfecTap, VideoFec, fec_group

log = logging.getLogger(__name__)

Publish = Callable[[QualityState], Awaitable[None]]
CLOCK_RATES: Mapping[str, int] = {"audio": 48_000, "video": 90_000}
RTP_FRAMING_BYTES = 38
IP_UDP_BYTES = 28
SETTLE_AFTER_STILLS_S = 3.0  # no spare budget for video this soon after stills
SETTLED_WINDOW_S = 60.0  # `settled_bps`: the estimate's median over this long...
SETTLED_MIN_S = 20.0  # ...once the samples span this long (a short call proves little)
# No probe this soon after a rung change: the new rung's keyframe and rate are still being
# tried, and a probe on top stalled the exam camera 1.9 s on `rural-3g`.
PROBE_AFTER_RUNG_CHANGE_S = 2.0


@dataclass
class _SenderCursor:
    at: float | None = None
    bytes_sent: int = 0
    packets_sent: int = 0
    report_key: Any = None


@dataclass(frozen=True)
class SenderSample:
    """One sender's counters and latest receiver report, as read from getStats()."""

    kind: str
    bytes_sent: int
    packets_sent: int
    report_key: Any = None  # changes when a new receiver report arrived
    fraction_lost: float | None = None  # 0..1
    rtt_s: float | None = None
    jitter_s: float | None = None


async def read_sender(sender: RTCRtpSender) -> SenderSample:
    stats = await sender.getStats()
    bytes_sent = packets_sent = 0
    sample: dict[str, Any] = {}
    for item in stats.values():
        if item.type == "outbound-rtp":
            bytes_sent, packets_sent = item.bytesSent, item.packetsSent
        elif item.type == "remote-inbound-rtp":
            clock = CLOCK_RATES.get(sender.kind, 90_000)
            sample = {
                "report_key": (item.timestamp, item.packetsLost, item.jitter),
                "fraction_lost": (item.fractionLost or 0) / 256,
                "rtt_s": item.roundTripTime,
                "jitter_s": item.jitter / clock if item.jitter is not None else None,
            }
    return SenderSample(sender.kind, bytes_sent, packets_sent, **sample)


@dataclass
class LinkReportBuilder:
    """Merges per-sender samples into one `LinkReport` when any receiver report is new."""

    _cursors: dict[str, _SenderCursor] = field(default_factory=dict)
    sent_bps: float | None = None

    def add(
        self, now: float, samples: Mapping[str, SenderSample], remb_bps: float | None
    ) -> LinkReport | None:
        sent_bits = 0.0
        elapsed: float | None = None
        lost_weighted = weight = 0.0
        rtts: list[float] = []
        jitters: list[float] = []
        for name, sample in samples.items():
            cursor = self._cursors.setdefault(name, _SenderCursor())
            packets = max(0, sample.packets_sent - cursor.packets_sent)
            if cursor.at is not None:
                delta_bytes = max(0, sample.bytes_sent - cursor.bytes_sent)
                sent_bits += (delta_bytes + packets * PACKET_OVERHEAD_BYTES) * 8
                elapsed = now - cursor.at
            if sample.report_key is not None and sample.report_key != cursor.report_key:
                cursor.report_key = sample.report_key
                if sample.fraction_lost is not None:
                    lost_weighted += sample.fraction_lost * max(packets, 1)
                    weight += max(packets, 1)
                if sample.rtt_s is not None:
                    rtts.append(sample.rtt_s)
                if sample.jitter_s is not None:
                    jitters.append(sample.jitter_s)
            cursor.at, cursor.bytes_sent = now, sample.bytes_sent
            cursor.packets_sent = sample.packets_sent
        if elapsed:
            self.sent_bps = sent_bits / elapsed
        if weight == 0:
            return None
        return LinkReport(
            at=now,
            fraction_lost=lost_weighted / weight,
            rtt_s=max(rtts) if rtts else None,
            jitter_s=max(jitters) if jitters else None,
            remb_bps=remb_bps,
            sent_bps=self.sent_bps,
        )


@dataclass
class OtherTraffic:
    """The uplink rate of everything that is not RTP media: SCTP data channels and RTCP,
    from the DTLS transport's counters minus the senders' own (smoothed over ~5 s)."""

    bps: float = 0.0
    smoothing: float = 0.9
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=2))  # raw, per step
    _last: tuple[float, int, int, int, int] | None = None

    @property
    def recent_bps(self) -> float:
        """The highest raw rate of the last two steps (about a second): bursts included."""
        return max(self.recent, default=0.0)

    def add(self, now: float, transport: tuple[int, int], samples: list[SenderSample]) -> None:
        rtp_bytes = sum(x.bytes_sent for x in samples)
        rtp_packets = sum(x.packets_sent for x in samples)
        total_bytes, total_packets = transport
        last, self._last = self._last, (now, total_bytes, total_packets, rtp_bytes, rtp_packets)
        if last is None or now <= last[0]:
            return
        packets = max(0, (total_packets - last[2]) - (rtp_packets - last[4]))
        payload = (total_bytes - last[1]) - (rtp_bytes - last[3])
        # The transport counts RTP with its 12-byte header, extensions and SRTP tag (~38 B
        # a packet) where the senders count payload only; then IPv4 + UDP per packet.
        payload -= (rtp_packets - last[4]) * RTP_FRAMING_BYTES
        other = max(0.0, (payload + packets * IP_UDP_BYTES) * 8 / (now - last[0]))
        self.recent.append(other)
        self.bps = self.smoothing * self.bps + (1 - self.smoothing) * other


class RateController:
    """Owns the uplink: estimate, ladder, encoder settings, published quality."""

    def __init__(
        self,
        senders: Mapping[TrackRole, RTCRtpSender],
        publish: Publish,
        *,
        ladder: QualityLadder | None = None,
        start_bps: float | None = None,
        estimator: BandwidthEstimator | None = None,
        delay_estimator: DelayBasedEstimator | None = None,
        on_allocation: Callable[[Allocation], None] | None = None,
        fec_types: Callable[[], Mapping[TrackRole, FecPayloadTypes]] = dict,
        interval_s: float = 0.5,
        publish_every_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        recorder: LinkRecorder | None = None,
    ) -> None:
        self.senders = dict(senders)
        self.ladder = ladder or QualityLadder.build(tuple(self.senders))
        # Both estimators start at `start_bps` (the agent's `initial_uplink_kbps`): the
        # receiver-report one rules until transport-wide feedback arrives, the delay-based
        # one after; a configured start that only one of them took was undone a second in.
        rr_config = EstimatorConfig() if start_bps is None else EstimatorConfig(start_bps=start_bps)
        gcc_config = GccConfig() if start_bps is None else GccConfig(start_bps=start_bps)
        self.estimator = estimator or BandwidthEstimator(rr_config)
        self.delay_estimator = delay_estimator or DelayBasedEstimator(gcc_config)
        self._taps: list[TransportCcTap | RetransmissionBudget | UlpfecTap] = []
        self._fec_types = fec_types  # read when the media connects (after the answer)
        self.video_fec: dict[TrackRole, VideoFec] = {}
        # (loss over 20 s, round trip, current group) -> media packets per FEC packet
        self.fec_group = fec_group
        self.prober: Prober | None = None  # on the first video sender's transport
        self._probe_found = False  # a probe just raised the estimate, carried at its rate
        self._other_traffic = OtherTraffic()
        # As of the last step (`Tick`): what the senders and the data channels sent.
        self._sent_bps: float | None = None
        self._other_bps = self._other_recent_bps = 0.0
        self.recorder = recorder
        self._link_loss = LossWindow()  # for the FEC group
        self._was_in_outage = False
        self._estimate_before_loss: float | None = None  # while the watchdog says lost
        self._rung_before_loss: Rung | None = None
        self.selector = RungSelector(self.ladder)
        self._publish = publish
        self._on_allocation = on_allocation
        self._interval_s = interval_s
        self._publish_every_s = publish_every_s
        self._clock = clock
        self._reports = LinkReportBuilder()
        self._task: asyncio.Task[None] | None = None
        self._last_published: QualityState | None = None
        self._last_published_at = -1e9
        self._last_report: LinkReport | None = None
        self.allocation: Allocation | None = None
        self.state: QualityState | None = None
        self._budgets: deque[tuple[float, float]] = deque()  # (time, estimate), no outage

    @property
    def settled_bps(self) -> float | None:
        """The median estimate over the last `SETTLED_WINDOW_S` with the link up, once that
        spans `SETTLED_MIN_S` (`link_memory.py`: where the next call starts)."""
        budgets = self._budgets
        if not budgets or budgets[-1][0] - budgets[0][0] < SETTLED_MIN_S:
            return None
        return statistics.median(bps for _, bps in budgets)

    def start(self) -> None:
        if self._task is None:
            self._tap_transports()
            self._task = asyncio.create_task(self._run(), name="rate-controller")

    async def stop(self) -> None:
        """Detach, stop, and save the link recording if there is one."""
        if self.prober is not None:
            await self.prober.stop()
        for tap in reversed(self._taps):
            tap.detach()
        self._taps.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.recorder is not None and len(self.recorder):
            try:
                await self.recorder.save()
            except OSError as exc:
                log.warning("could not save the link recording %s: %s", self.recorder.path, exc)

    def _tap_transports(self) -> None:
        """Read transport-wide feedback on each distinct DTLS transport (one when bundled)."""
        transports = {id(s.transport): s.transport for s in self.senders.values() if s.transport}
        fec_types = self._fec_types()
        for key, transport in transports.items():
            on_it = [s for s in self.senders.values() if id(s.transport) == key]
            protected = {
                role: VideoFec.for_sender(sender, fec_types[role])
                for role, sender in self.senders.items()
                if role in fec_types and id(sender.transport) == key
            }
            if protected:  # innermost: FEC covers the bytes transport numbering leaves
                self._taps.append(UlpfecTap(transport, list(protected.values())))
                self.video_fec.update(protected)
            tap = TransportCcTap(transport, self._on_transport_feedback)
            rtx = {s._rtx_ssrc: s._ssrc for s in on_it}
            cameras = [s for s in on_it if s.kind == "video"]
            video = [s._ssrc for s in cameras]
            budget = RetransmissionBudget(transport, rtx, self._budget_bps, video_ssrcs=video)
            self._taps += [tap, budget]
            if self.prober is None and cameras:
                self.prober = Prober(cameras[0], tap, budget, clock=self._clock)

    def _budget_bps(self) -> float:
        allocation = self.allocation
        return allocation.budget_bps if allocation is not None else self.estimator.estimate_bps

    def _on_transport_feedback(self, results: list[PacketResult]) -> None:
        probe = self.prober.in_flight if self.prober is not None else None
        self.on_feedback(Feedback(tuple(results), probe), self._clock())

    def on_feedback(self, feedback: Feedback, now: float) -> None:
        """One transport-wide feedback (every 50-100 ms from Chrome)."""
        if self.recorder is not None:
            self.recorder.add(now, feedback)
        results = feedback.results
        delay = self.delay_estimator
        delay.untracked_bps = self._other_bps
        delay.untracked_recent_bps = self._other_recent_bps
        self.estimator.heard(now)
        self._link_loss.add(now, results)
        cut_at = delay.last_decrease_at
        delay.on_feedback(results, now, feedback.probe)
        cut = delay.last_decrease_at != cut_at
        if self.prober is not None:
            self._read_probe(self.prober, results, now, cut)
        if cut and self.allocation is not None:
            # A cut acts at once, not at the next tick (up to `interval_s` later): after
            # `step`'s drop the old rung kept filling the queue 0.4-0.5 s longer.
            self.step(None, now)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "feedback %d packets, %d lost: %s trend %.4f threshold %.1f acked %s loss %.3f"
                " -> %.0f (%s)",
                len(results),
                sum(r.arrival_s is None for r in results),
                delay.detector.usage.value,
                delay.detector.trend,
                delay.detector.threshold_ms,
                delay.acked_bps and round(delay.acked_bps),
                delay.loss,
                delay.estimate_bps,
                delay.reason,
            )

    def _read_probe(
        self, prober: Prober, results: Sequence[PacketResult], now: float, cut: bool
    ) -> None:
        """Transport feedback to the prober (`prober.py`), and a finished probe's reading
        to the estimate; after a cut, readings above the new estimate are forgotten."""
        delay = self.delay_estimator
        if cut:
            prober.forget_readings_above(delay.estimate_bps)
        judged = prober.judged
        reading = prober.on_feedback(results, now)
        if reading is not None:
            self.on_probe_reading(reading, now)
        if prober.judged > judged:
            log.info(
                "probe at %.0f bit/s: %s -> estimate %.0f",
                prober.last_rate_bps,
                reading,
                delay.estimate_bps,
            )

    def on_probe_reading(self, reading: ProbeReading, now: float) -> None:
        """What a probe showed, to the delay-based estimate and the ladder's hold."""
        if self.recorder is not None:
            self.recorder.add(now, reading)
        delay = self.delay_estimator
        changed = False
        if reading.whole:
            changed = delay.on_probe(reading.carried_bps, now, lower=False)
            # Short of its rate, the link may be nearly full there: growth past it is slow,
            # and the ladder climbs with its hold. Skipping the hold to the 640×360 rung on
            # such a reading at 94 % of `satellite`'s link sent 1.1 Mbit/s into it for a
            # second (a new resolution's first frames) and stalled the exam camera 2.4 s.
            self._probe_found = changed and not reading.short
            if reading.short:
                delay.on_saturated_probe(reading.carried_bps, now)
        else:
            changed = delay.on_probe_fell_behind(reading.carried_bps, now)
            if reading.link_bps is not None:
                changed = delay.on_probe(reading.link_bps, now, lower=True) or changed
        if changed:
            self.estimator.estimate_bps = delay.estimate_bps

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("rate control step failed; keeping the last settings")
            await asyncio.sleep(self._interval_s)

    async def tick(self) -> QualityState:
        """One control step: read stats, estimate, choose, apply, maybe publish."""
        now = self._clock()
        names = list(self.senders)
        samples = await asyncio.gather(*(read_sender(self.senders[n]) for n in names))
        other = self._other_traffic
        other.add(now, self._transport_counters(), samples)
        report = self._reports.add(now, dict(zip(names, samples, strict=True)), self._remb())
        tick = Tick(report, self._reports.sent_bps, other.bps, other.recent_bps)
        state = self.on_tick(tick, now)
        if self._should_publish(state, now):
            self._last_published, self._last_published_at = state, now
            await self._publish(state)
        return state

    def on_tick(self, tick: Tick, now: float) -> QualityState:
        """One control step on what `tick` read."""
        if self.recorder is not None:
            self.recorder.add(now, tick)
        self._other_bps, self._other_recent_bps = tick.other_bps, tick.other_recent_bps
        self._sent_bps = tick.sent_bps
        return self.step(tick.report, now)

    def step(self, report: LinkReport | None, now: float) -> QualityState:
        """Estimator, ladder and encoders for one (possibly absent) report."""
        if report is not None:
            self.estimator.update(report)
            self._last_report = report
            log.debug(
                "report loss %.3f rtt %s sent %s, data channels %.0f, repairs %d sent %d cut"
                " -> estimate %.0f (%s)",
                report.fraction_lost,
                report.rtt_s and round(report.rtt_s, 3),
                report.sent_bps and round(report.sent_bps),
                self._other_bps,
                *self.retransmissions,
                self.estimator.estimate_bps,
                self.estimator.reason,
            )
        outage = self.estimator.check_silence(now)
        budget, reason, loss = self._budget(now, outage)
        if not outage:
            self._budgets.append((now, budget))
            while now - self._budgets[0][0] > SETTLED_WINDOW_S:
                self._budgets.popleft()
        # Data channels (vitals, control, stills; SCTP with its acks and retransmissions)
        # share the uplink: measured 37 kbit/s of 120 on `edge`, unseen by the ladder.
        # Periodic stills are data-channel traffic too, but the rung already pays for them.
        stills = self.allocation.stills_bps if self.allocation is not None else 0
        other = max(0.0, self._other_bps - stills)
        media_budget = max(budget - other, self.estimator.config.min_bps)
        if self._probe_found:  # the link carried the probe's whole rate: no hold
            self._probe_found = False
            self.selector.proven(media_budget, now)
        rung = self.selector.select(media_budget, now)
        video_back = self.selector.video_back_at
        if video_back is not None and now - video_back < SETTLE_AFTER_STILLS_S:
            # Video just came back after stills: its rung's cost, no spare yet. The budget
            # seen while sending stills is untried, the new encoder starts with a
            # keyframe, and spare on top of both overshot on `step`.
            media_budget = min(media_budget, rung.cost_bps)
        if (
            self.prober is not None
            and not outage
            and self._estimate_before_loss is None
            and 0 < rung.index
            and rung.has_video
            and now - self.selector.changed_at >= PROBE_AFTER_RUNG_CHANGE_S
            and self.delay_estimator.wants_probe(now)
        ):
            self.prober.maybe_probe(now, self.delay_estimator.probe_from_bps)
        allocation = self.ladder.allocate(rung, media_budget)
        changed = self.allocation is None or self.allocation.rung.index != rung.index
        self.allocation = allocation
        # Not the last report's own: aiortc reads one in forty or so as negative or a few
        # ms (a recorded `step` call published -26 ms to both screens).
        rtt = self.estimator.rtt_s
        self._apply(allocation, loss, rtt)
        if changed:
            log.info("quality rung %d: %s (%s)", rung.index, rung.label, reason)
            if self._on_allocation is not None:
                self._on_allocation(allocation)
        self.state = quality_state(
            allocation,
            estimate_bps=budget,
            loss=loss,
            rtt_s=rtt,
            outage=outage,
            rungs=len(self.ladder.rungs),
            sent_bps=self._sent_bps,
            reason=reason,
        )
        return self.state

    @property
    def feedback_packets(self) -> int:
        """Transport-wide feedback packets received so far (every 50–100 ms from Chrome)."""
        return sum(t.feedback_packets for t in self._taps if isinstance(t, TransportCcTap))

    @property
    def retransmissions(self) -> tuple[int, int]:
        """Retransmissions sent and dropped by the cap so far (`retransmission_budget.py`)."""
        budgets = [t for t in self._taps if isinstance(t, RetransmissionBudget)]
        return sum(b.passed for b in budgets), sum(b.dropped for b in budgets)

    def link_changed(self, state: str) -> None:
        """The media watchdog's verdict (media_watchdog.py). While media is lost, video
        is paused: frames sent into a dead link only leave a gap the receiver must wait
        out or retransmit. When media comes back, both estimators resume where they were
        instead of reading the outage as congestion (a 5 s outage had taken video off for
        19 s), and each video track starts again with a keyframe."""
        now = self._clock()
        if self.recorder is not None:
            self.recorder.add(now, WatchdogVerdict(state))
        if state != "connected":
            if self._estimate_before_loss is None:
                self._estimate_before_loss = max(
                    self.estimator.estimate_bps, self.delay_estimator.estimate_bps
                )
                self._rung_before_loss = self.selector.current
        elif self._estimate_before_loss is not None:
            self.estimator.link_back(now, self._estimate_before_loss)
            self.delay_estimator.link_back(now)
            self.delay_estimator.estimate_bps = self.estimator.estimate_bps
            self._estimate_before_loss = None
            self._link_loss = LossWindow()  # what went into the outage is not the link's loss
            for sender in self.senders.values():
                encoder = encoder_of(sender)
                if isinstance(encoder, AdaptiveVp8Encoder):
                    encoder.request_keyframe()
            rung, self._rung_before_loss = self._rung_before_loss, None
            if rung is not None:  # the silence check may have taken it to audio only
                self.selector.resume(rung, now)
                self.step(None, now)
                return
        if self.allocation is not None:
            loss = self.state.loss if self.state is not None else 0.0
            self._apply(self.allocation, loss, self.estimator.rtt_s)

    def _budget(self, now: float, outage: bool) -> tuple[float, str, float]:
        """Estimate, its reason and the loss to code for: transport-wide feedback when the
        receiver sends it (every 50–100 ms, per packet), receiver reports otherwise."""
        rr, delay = self.estimator, self.delay_estimator
        last = self._last_report
        rr_loss = last.fraction_lost if last is not None else 0.0
        if rr.rtt_s is not None and rr.rtt_s > MIN_PLAUSIBLE_RTT_S:
            delay.rtt_s = rr.rtt_s
        if outage:
            self._was_in_outage = True
            delay.estimate_bps = rr.estimate_bps
            return rr.estimate_bps, rr.reason, rr_loss
        if self._was_in_outage:  # resume where the receiver-report estimator resumes
            self._was_in_outage = False
            delay.estimate_bps = rr.estimate_bps
        if delay.last_feedback_at is None:
            return rr.estimate_bps, rr.reason, rr_loss
        rr.estimate_bps = delay.estimate_bps  # a fallback that starts from the same place
        reason = delay.reason if delay.fresh(now) else "waiting for the receiver's feedback"
        return delay.estimate_bps, reason, max(delay.loss, rr_loss)

    def _transport_counters(self) -> tuple[int, int]:
        """Bytes and packets every distinct DTLS transport has sent (RTP, RTCP and SCTP),
        less the retransmissions."""
        transports = {id(s.transport): s.transport for s in self.senders.values() if s.transport}
        total_bytes = total_packets = 0
        for transport in transports.values():
            for stats in transport._get_stats().values():
                total_bytes += stats.bytesSent
                total_packets += stats.packetsSent
        for tap in self._taps:  # retransmissions are media, paid from the video's share
            if isinstance(tap, RetransmissionBudget):
                total_bytes -= tap.passed_bytes + 10 * tap.passed
                total_packets -= tap.passed
        return total_bytes, total_packets

    def _remb(self) -> float | None:
        rembs = [
            encoder.remb_bps
            for encoder in map(encoder_of, self.senders.values())
            if isinstance(encoder, AdaptiveVp8Encoder) and encoder.remb_bps
        ]
        return float(min(rembs)) if rembs else None

    def _apply(self, allocation: Allocation, loss: float, rtt_s: float | None) -> None:
        for role, sender in self.senders.items():
            encoder = encoder_of(sender)
            level = allocation.level(role)
            rate = allocation.bitrates_bps[role]
            if isinstance(encoder, AdaptiveVp8Encoder):
                encoder.keyframe_min_interval_s = max(1.0, 2 * (rtt_s or 0.0))
                paused = not level.is_video or self._estimate_before_loss is not None
                fec = self.video_fec.get(role)
                if fec is not None:
                    # The loss of the last 20 s (`loss_window.py`; of receiver reports
                    # until transport feedback tells): the loss of each step moved the
                    # group 4 → 12 → off every 0.5 s on `satellite`. And the round trip's
                    # floor, not the last report's: a report without one (every ~10th on
                    # `satellite`) switched FEC off for 0.5 s.
                    loss_20s = self._link_loss.loss(self._clock())
                    if loss_20s is None:
                        loss_20s = self.estimator.mean_loss
                    rtt_floor = self.estimator.rtt_floor_s
                    group = None if paused else self.fec_group(loss_20s, rtt_floor, fec.group)
                    if group != fec.group:
                        log.info("%s camera FEC: %s", role, f"1 per {group}" if group else "off")
                    fec.group = group
                    encoder.fec = fec
                    rate = int(rate * fec.media_share)
                encoder.set_layer(VideoLayer(level.width, level.height, level.fps, rate, paused))
            elif isinstance(encoder, AdaptiveOpusEncoder):
                profile = PROFILES.get(role)
                if profile is not None and encoder.profile != profile:
                    encoder.use_profile(profile)
                encoder.set_bitrate(rate)
                encoder.set_packet_loss(loss)
                encoder.set_frame_ms(audio_frame_ms(level.bitrate_bps))
                encoder.set_copies(level.copies)

    def _should_publish(self, state: QualityState, now: float) -> bool:
        last = self._last_published
        if last is None or now - self._last_published_at >= self._publish_every_s:
            return True
        return (state.rung, state.score, state.message) != (last.rung, last.score, last.message)
