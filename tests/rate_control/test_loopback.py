"""Two aiortc peers in-process: the rate controller drives real senders from real RTCP."""

from __future__ import annotations

import asyncio
import fractions
import itertools
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender
from av import AudioFrame, VideoFrame

from telecart.cart_agent.encoder_control import (
    AdaptiveVp8Encoder,
    encoder_of,
    install_encoder_control,
    uninstall_encoders,
)
from telecart.cart_agent.link_recording import LinkRecorder, Tick, WatchdogVerdict, read_recording
from telecart.cart_agent.link_replay import replay
from telecart.cart_agent.opus_settings import AdaptiveOpusEncoder, install_opus_settings
from telecart.cart_agent.probe_result import carried_bps
from telecart.cart_agent.quality_score import QualityState
from telecart.cart_agent.rate_controller import RateController
from telecart.cart_agent.retransmission_budget import RetransmissionBudget
from telecart.cart_agent.transport_cc import (
    HISTORY,
    PacketResult,
    TransportCcTap,
    install_transport_cc,
)

from ..cart_agent.conftest import eventually
from .keyframe_storm import moving_frames


class MovingVideo(MediaStreamTrack):
    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._frames = moving_frames(600.0, 320, 240)
        self._start = time.monotonic()
        self._count = 0

    async def recv(self) -> VideoFrame:
        self._count += 1
        await asyncio.sleep(max(0.0, self._start + self._count / 15 - time.monotonic()))
        return next(self._frames)


class LowTone(MediaStreamTrack):
    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._sent = 0
        self._start = time.monotonic()

    async def recv(self) -> AudioFrame:
        await asyncio.sleep(max(0.0, self._start + self._sent / 48_000 - time.monotonic()))
        t = (self._sent + np.arange(960)) / 48_000
        samples = (8000 * np.sin(2 * math.pi * 40 * t)).astype(np.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48_000, self._sent
        frame.time_base = fractions.Fraction(1, 48_000)
        self._sent += 960
        return frame


@pytest.fixture
async def call() -> AsyncIterator[tuple[RTCRtpSender, RTCRtpSender, list[int]]]:
    assert install_encoder_control() and install_opus_settings() and install_transport_cc()
    cart, specialist = RTCPeerConnection(), RTCPeerConnection()
    video = cart.addTrack(MovingVideo())
    audio = cart.addTrack(LowTone())
    received: list[int] = []
    readers: list[asyncio.Task[None]] = []

    async def read(track: MediaStreamTrack) -> None:
        while True:
            frame = await track.recv()
            if isinstance(frame, VideoFrame):
                received.append(frame.width)

    specialist.on("track", lambda track: readers.append(asyncio.create_task(read(track))))
    await cart.setLocalDescription(await cart.createOffer())
    await specialist.setRemoteDescription(cart.localDescription)
    await specialist.setLocalDescription(await specialist.createAnswer())
    await cart.setRemoteDescription(specialist.localDescription)
    try:
        for _ in range(100):
            if len(received) >= 5:
                break
            await asyncio.sleep(0.1)
        yield video, audio, received
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await cart.close()
        await specialist.close()
        uninstall_encoders()


async def test_rate_changes_in_a_live_call_make_no_keyframes(
    call: tuple[RTCRtpSender, RTCRtpSender, list[int]],
) -> None:
    video, _, received = call
    encoder = encoder_of(video)
    assert isinstance(encoder, AdaptiveVp8Encoder)
    keyframes, requests = encoder.counters.keyframes, encoder.counters.keyframe_requests
    frames_before = len(received)
    for step in range(8):
        encoder.set_target_bitrate((150_000, 600_000)[step % 2])
        await asyncio.sleep(0.3)
    assert encoder.counters.rate_changes >= 6
    new_requests = encoder.counters.keyframe_requests - requests
    assert encoder.counters.keyframes - keyframes <= new_requests
    assert encoder.counters.encoders_built == 1
    assert len(received) > frames_before + 20


async def test_rate_controller_reads_reports_and_sets_the_encoders(
    call: tuple[RTCRtpSender, RTCRtpSender, list[int]],
) -> None:
    video, audio, received = call
    states: list[QualityState] = []

    async def publish(state: QualityState) -> None:
        states.append(state)

    controller = RateController({"exam": video, "stethoscope": audio}, publish, interval_s=0.25)
    controller.start()
    try:
        await asyncio.sleep(4.0)
    finally:
        await controller.stop()
    assert states
    last = states[-1]
    assert last.rtt_ms is not None and last.rtt_ms < 500
    assert last.loss < 0.05
    assert last.sent_kbps is not None and last.sent_kbps > 20
    steth = encoder_of(audio)
    assert isinstance(steth, AdaptiveOpusEncoder)
    assert steth.libopus.application == "audio"
    exam = encoder_of(video)
    assert isinstance(exam, AdaptiveVp8Encoder)
    assert controller.allocation is not None
    assert exam.layer.bitrate_bps == controller.allocation.bitrates_bps["exam"]
    assert received


async def test_a_recorded_call_replays_to_the_same_decisions(
    call: tuple[RTCRtpSender, RTCRtpSender, list[int]], tmp_path: Path
) -> None:
    video, audio, _ = call
    states: list[QualityState] = []

    async def publish(state: QualityState) -> None:
        states.append(state)

    path = tmp_path / "link-recordings" / "call.jsonl.gz"
    controller = RateController(
        {"exam": video, "stethoscope": audio},
        publish,
        interval_s=0.25,
        publish_every_s=0.0,  # every step, to compare with the replay
        start_bps=400_000,
        recorder=LinkRecorder(path, 400_000),
    )
    controller.start()
    try:
        await asyncio.sleep(3.0)
        controller.link_changed("lost")  # as the media watchdog says it
        await asyncio.sleep(1.0)
        controller.link_changed("connected")
        await asyncio.sleep(1.0)
    finally:
        await controller.stop()
    recording = read_recording(path)
    assert recording.start_bps == 400_000
    ticks = [r.event for r in recording.events if isinstance(r.event, Tick)]
    assert len(ticks) == len(states) >= 15
    assert any(t.report is not None and t.report.rtt_s is not None for t in ticks)
    verdicts = [r.event.state for r in recording.events if isinstance(r.event, WatchdogVerdict)]
    assert verdicts == ["lost", "connected"]
    replayed = replay(recording, controller.ladder)
    assert [s.state for s in replayed] == states
    assert replayed[-1].delay_estimate_bps == controller.delay_estimator.estimate_bps


async def test_a_configured_start_holds_on_both_estimators_paths(
    call: tuple[RTCRtpSender, RTCRtpSender, list[int]],
) -> None:
    """`initial_uplink_kbps` for an EDGE clinic: the first rung fits it, and so does the
    rung once transport-wide feedback takes over (it once restarted from 300 kbit/s)."""
    video, audio, _ = call

    async def publish(state: QualityState) -> None:
        pass

    start = 100_000
    controller = RateController({"exam": video, "stethoscope": audio}, publish, start_bps=start)
    first = controller.step(None, 0.0)
    assert controller.allocation is not None
    assert controller.allocation.budget_bps == start
    # Feedback from a browser: 20 packets in 100 ms, all arriving on time.
    packets = [PacketResult(i, i * 0.005, 300, 0.05 + i * 0.005) for i in range(20)]
    controller.delay_estimator.on_feedback(packets, 0.2)
    controller.step(None, 0.3)
    assert controller.delay_estimator.fresh(0.3)
    assert controller.allocation.budget_bps <= 1.05 * start
    assert controller.allocation.rung.index >= first.rung


async def test_the_settled_rate_is_the_median_estimate_once_20_s_are_known(
    call: tuple[RTCRtpSender, RTCRtpSender, list[int]],
) -> None:
    video, audio, _ = call

    async def publish(state: QualityState) -> None:
        pass

    controller = RateController({"exam": video, "stethoscope": audio}, publish, start_bps=150_000)
    packets = [PacketResult(i, i * 0.005, 300, 0.05 + i * 0.005) for i in range(20)]
    controller.step(None, 0.0)
    assert controller.settled_bps is None
    controller.delay_estimator.estimate_bps = 400_000  # a short spike: not the median
    for t in range(1, 4):
        controller.delay_estimator.on_feedback(packets, t - 0.1)
        controller.step(None, float(t))
    controller.delay_estimator.estimate_bps = 150_000  # the link's rate from then on
    for t in range(4, 19):
        controller.step(None, float(t))
    assert controller.settled_bps is None  # 18 s: too short a call to prove a rate
    for t in range(19, 25):
        controller.step(None, float(t))
    assert controller.settled_bps == 150_000


@pytest.fixture
async def controller(
    call: tuple[RTCRtpSender, RTCRtpSender, list[int]],
) -> AsyncIterator[RateController]:
    """A started controller on the call's senders that publishes nowhere."""
    video, audio, _ = call

    async def publish(state: QualityState) -> None:
        pass

    running = RateController({"exam": video, "stethoscope": audio}, publish, interval_s=0.25)
    running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_lost_media_pauses_video_and_its_return_starts_with_a_keyframe(
    call: tuple[RTCRtpSender, RTCRtpSender, list[int]], controller: RateController
) -> None:
    video, _, received = call
    exam = encoder_of(video)
    assert isinstance(exam, AdaptiveVp8Encoder)
    await asyncio.sleep(1.0)
    estimate = controller.estimator.estimate_bps
    controller.link_changed("disconnected")  # the media watchdog's verdict
    await asyncio.sleep(0.5)
    frames, keyframes = len(received), exam.counters.keyframes
    await asyncio.sleep(1.0)
    assert len(received) == frames  # nothing encoded into a dead link
    controller.link_changed("connected")
    await asyncio.sleep(1.0)
    assert exam.counters.keyframes > keyframes
    assert len(received) > frames
    assert controller.estimator.estimate_bps >= estimate * 0.9


async def test_after_an_outage_the_rung_from_before_it_comes_back_at_once(
    controller: RateController,
) -> None:
    await asyncio.sleep(1.0)
    assert controller.allocation is not None
    before = controller.allocation.rung
    assert before.has_video
    controller.link_changed("disconnected")
    # What the receiver-report silence check does after a few seconds of outage.
    floor = controller.estimator.config.min_bps
    controller.estimator.estimate_bps = controller.delay_estimator.estimate_bps = floor
    controller.step(None, time.monotonic())
    assert controller.allocation.rung.index > before.index
    controller.link_changed("connected")
    # Not a climb from audio only, a rung every 2.5 s.
    assert controller.allocation.rung.index == before.index


async def test_a_probe_goes_out_as_retransmissions_outside_their_cap_and_raises_the_estimate(
    call: tuple[RTCRtpSender, RTCRtpSender, list[int]], controller: RateController
) -> None:
    video, _, _ = call
    tap, budget = controller._taps[0], controller._taps[1]
    assert isinstance(tap, TransportCcTap) and isinstance(budget, RetransmissionBudget)
    prober = controller.prober
    assert prober is not None and tap.negotiated
    await eventually(lambda: tap.newest_rtp_sequence(video._ssrc) is not None, 5, "video")
    assert tap.newest_rtp_sequence(video._rtx_ssrc) is None  # nothing was lost
    assert prober.maybe_probe(time.monotonic(), 300_000)
    sending = prober._sending
    assert sending is not None
    await asyncio.wait_for(sending, 5)
    cluster = prober.cluster
    assert cluster is not None
    # Six of the newest video packets again (120 ms at 450 kbit/s), on the RTX stream,
    # none taken by the cap that limits retransmissions to a fifth of 300 kbit/s (3.9 KB
    # at once).
    assert prober.config.packets(450_000) == 6
    assert budget.probes == 6 and budget.dropped == 0
    assert tap.newest_rtp_sequence(video._rtx_ssrc) is not None
    assert cluster.last - cluster.first + 1 >= 6
    assert not prober.maybe_probe(time.monotonic(), 300_000)  # one in flight at a time
    # A browser reports each packet arriving as far apart as it was sent: the link kept
    # up with the probe's 450 kbit/s (1.5x the estimate).
    sent = [tap._sent[n % HISTORY] for n in range(cluster.first, cluster.last + 1)]
    results = [
        PacketResult(p.sequence, p.send_s, p.size_bytes, 5.0 + p.send_s - sent[0].send_s)
        for p in sent
        if p is not None
    ]
    controller.delay_estimator.estimate_bps = 300_000
    controller._on_transport_feedback(results)
    assert prober.judged == 1 and prober.found == 1
    # Three quarters of the probe's rate at least (pacing on a loaded machine runs late).
    assert prober.last_rate_bps == pytest.approx(450_000)
    assert controller.delay_estimator.estimate_bps > 0.75 * prober.last_rate_bps
    assert controller.delay_estimator.reason == "probe"
    assert controller.delay_estimator._filled_bps is None  # carried in full: grow freely
    assert controller._probe_found  # and the ladder may climb to it without its hold
    # Found: the next may go at once. Probes the link falls behind (arriving at 200 of
    # their 750 kbit/s) each wait `interval_s` or more, and after three their median reading
    # is the link's rate.
    now = time.monotonic()
    readings = []
    for _ in range(3):
        assert prober.maybe_probe(now, 500_000)
        assert not prober.maybe_probe(now, 500_000)
        sending = prober._sending
        assert sending is not None
        await asyncio.wait_for(sending, 5)
        cluster = prober.cluster
        assert cluster is not None
        sent = [tap._sent[n % HISTORY] for n in range(cluster.first, cluster.last + 1)]
        # Arrivals spaced by a 200 kbit/s link, whatever the sending's timing on a loaded
        # machine (spaced by the send times, the three readings once fell 1.5x apart).
        arrivals = itertools.accumulate((p.size_bytes * 8 / 200_000 for p in sent if p), initial=9)
        slow = [
            PacketResult(p.sequence, p.send_s, p.size_bytes, arrival)
            for p, arrival in zip((p for p in sent if p is not None), arrivals, strict=False)
        ]
        reading = prober.on_feedback(slow, now + 0.5)
        assert reading is not None and not reading.whole
        assert reading.carried_bps < prober.last_rate_bps / 2
        readings.append(reading)
        assert not prober.maybe_probe(now + 1.5, 500_000)
        now += prober.config.max_interval_s + 0.1
    assert [r.link_bps is None for r in readings] == [True, True, False]
    assert readings[-1].link_bps in sorted(r.carried_bps for r in readings)[1:2]
    assert prober.found == 1
    # A cut (here for 30 % loss) makes readings of a much bigger link history.
    before = controller.delay_estimator.estimate_bps = 100_000  # readings were 160-190 k
    base, t0 = tap.next_sequence + 100_000, time.monotonic() + 10
    lossy = [
        PacketResult(base + i, t0 + i * 0.025, 1000, None if i % 3 == 0 else 50 + i * 0.025)
        for i in range(60)
    ]
    controller._on_transport_feedback(lossy)
    cut = controller.delay_estimator.estimate_bps
    assert cut < before
    assert not prober._saturated


async def test_a_probe_carried_whole_but_short_of_its_rate_slows_the_growth_past_it(
    call: tuple[RTCRtpSender, RTCRtpSender, list[int]], controller: RateController
) -> None:
    video, _, _ = call
    tap = controller._taps[0]
    prober = controller.prober
    assert isinstance(tap, TransportCcTap) and prober is not None
    await eventually(lambda: tap.newest_rtp_sequence(video._ssrc) is not None, 5, "video")
    assert prober.maybe_probe(time.monotonic(), 300_000)
    assert prober._sending is not None
    await asyncio.wait_for(prober._sending, 5)
    cluster = prober.cluster
    assert cluster is not None
    sent = [p for n in range(cluster.first, cluster.last + 1) if (p := tap._sent[n % HISTORY])]
    results = [PacketResult(p.sequence, p.send_s, p.size_bytes, 5.0 + p.send_s) for p in sent]
    carried = carried_bps(results)
    assert carried is not None
    # The link carried it at 92 % of the rate it was sent at: whole, as far as jitter
    # can tell, but only just.
    cluster.rate_bps = carried / 0.92
    controller.delay_estimator.estimate_bps = 300_000
    controller._on_transport_feedback(results)
    delay = controller.delay_estimator
    assert prober.found == 1
    assert delay.estimate_bps == pytest.approx(carried)
    assert delay._filled_bps == pytest.approx(delay.estimate_bps)
    assert not controller._probe_found  # the ladder climbs to it with its hold


async def test_a_cut_in_the_estimate_moves_the_rung_down_before_the_next_tick(
    controller: RateController,
) -> None:
    await asyncio.sleep(0.5)
    now = time.monotonic()
    controller.delay_estimator.estimate_bps = controller.estimator.estimate_bps = 1_500_000
    controller.step(None, now)
    assert controller.allocation is not None
    before = controller.allocation
    # Transport feedback for 1.5 s of 1000-byte packets, a third of them lost.
    base = controller._taps[0].next_sequence + 100_000  # type: ignore[union-attr]
    lossy = [
        PacketResult(base + i, now + i * 0.025, 1000, None if i % 3 == 0 else 50 + i * 0.025)
        for i in range(60)
    ]
    controller._on_transport_feedback(lossy)  # no await: no tick can run in between
    assert controller.delay_estimator.estimate_bps < 500_000
    assert controller.allocation.rung.index > before.rung.index
    assert controller.allocation.budget_bps < before.budget_bps / 2


async def test_transport_feedback_alone_keeps_the_link_up(controller: RateController) -> None:
    await asyncio.sleep(0.5)
    now = time.monotonic()
    controller.estimator._heard_at = now - 10  # the receiver's last reports were lost
    base = controller._taps[0].next_sequence + 100_000  # type: ignore[union-attr]
    arrived = [PacketResult(base + i, now + i * 0.025, 1000, 50 + i * 0.025) for i in range(20)]
    controller._on_transport_feedback(arrived)  # no await: no report can come in between
    controller.step(None, time.monotonic())
    assert not controller.estimator.in_outage
    assert controller.allocation is not None and controller.allocation.rung.has_video
