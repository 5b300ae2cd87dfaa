"""The rate controller, stills mode and quality reports wired into a live consultation."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiortc.codecs.base import Encoder

from telecart.cart_agent.bandwidth_estimator import LinkReport
from telecart.cart_agent.consultation import Consultation
from telecart.cart_agent.encoder_control import AdaptiveVp8Encoder, encoder_of
from telecart.cart_agent.loss_window import LossWindow
from telecart.cart_agent.opus_settings import AdaptiveOpusEncoder
from telecart.cart_agent.quality_ladder import Rung, VideoMode
from telecart.cart_agent.transport_cc import PacketResult
from tests.cart_agent.conftest import Consult, eventually

QUALITY_FIELDS = {"estimate_kbps", "loss", "rtt_ms", "rung", "score", "message", "fps"}


async def test_quality_state_is_published_on_the_control_channel(live: Consult) -> None:
    events = live.specialist.received.events
    await eventually(
        lambda: any(e.get("type") == "quality" and e.get("rtt_ms") for e in events),
        what="a quality event with a round trip",
    )
    quality = next(e for e in events if e.get("type") == "quality" and e.get("rtt_ms"))
    assert QUALITY_FIELDS <= quality.keys()
    assert 0 <= quality["score"] <= 5 and quality["message"]


async def test_quality_score_reaches_the_server_metrics(live: Consult) -> None:
    text = ""
    async with aiohttp.ClientSession() as http, asyncio.timeout(20):
        while "telecart_session_quality{" not in text:
            await asyncio.sleep(0.2)
            async with http.get(f"{live.server.base}/metrics") as response:
                text = await response.text()


async def _encoders(live: Consult) -> tuple[Consultation, dict[str, Encoder]]:
    """The live consultation and each role's encoder, once every sender has made one."""
    consultation = live.agent.consultation
    assert consultation is not None
    senders = consultation.peer.senders()
    await eventually(
        lambda: all(encoder_of(s) is not None for s in senders.values()), what="encoders"
    )
    encoders = {role: encoder_of(sender) for role, sender in senders.items()}
    return consultation, {role: e for role, e in encoders.items() if e is not None}


async def test_senders_run_the_adaptive_encoders_with_the_stethoscope_profile(
    live: Consult,
) -> None:
    _, encoders = await _encoders(live)
    assert isinstance(encoders["room"], AdaptiveVp8Encoder)
    assert isinstance(encoders["exam"], AdaptiveVp8Encoder)
    stethoscope, voice = encoders["stethoscope"], encoders["voice"]
    assert isinstance(stethoscope, AdaptiveOpusEncoder) and isinstance(voice, AdaptiveOpusEncoder)
    assert stethoscope.profile.application == "audio"
    assert voice.profile.application == "voip"


async def test_only_the_last_picture_rung_sends_the_voice_without_its_repeat(
    live: Consult,
) -> None:
    consultation, encoders = await _encoders(live)
    voice, stethoscope = encoders["voice"], encoders["stethoscope"]
    assert isinstance(voice, AdaptiveOpusEncoder) and voice.red is not None
    assert isinstance(stethoscope, AdaptiveOpusEncoder) and stethoscope.red is not None
    controller = consultation.rate_controller
    await controller.stop()
    ladder = controller.ladder
    bare = next(r for r in ladder.rungs if r.levels["voice"].copies == 1)
    controller._apply(ladder.allocate(bare, bare.cost_bps), 0.05, 0.2)
    assert (voice.red.distance, stethoscope.red.distance) == (0, 1)
    above = ladder.rungs[bare.index - 1]
    controller._apply(ladder.allocate(above, above.cost_bps), 0.05, 0.2)
    assert (voice.red.distance, stethoscope.red.distance) == (1, 1)


async def test_an_aiortc_specialist_takes_the_exam_cameras_fec_apart(live: Consult) -> None:
    consultation, _ = await _encoders(live)
    controller = consultation.rate_controller
    fec = controller.video_fec.get("exam")
    assert fec is not None  # the aiortc answer took RED and ULPFEC too
    assert set(consultation.peer.fec_payload_types()) == {"exam"}  # not the two-way room
    controller.fec_group = lambda *link: 4
    frames = live.specialist.received.video_frames
    await eventually(lambda: fec.fec_packets >= 10, what="ten FEC packets")
    decoded = frames.get("exam", 0)
    await eventually(lambda: frames.get("exam", 0) >= decoded + 20, what="exam frames")
    assert fec.media_packets >= 4 * fec.fec_packets


async def test_the_exam_cameras_fec_follows_the_links_loss_and_round_trip_floor(
    live: Consult,
) -> None:
    consultation, _ = await _encoders(live)
    controller = consultation.rate_controller
    await controller.stop()
    fec = controller.video_fec.get("exam")
    assert fec is not None
    estimator = controller.estimator
    estimator._rtts.clear()
    estimator._losses.clear()
    start = time.monotonic()
    for n in range(8):  # satellite: receiver reports read its 1 % loss as 0.3 %
        estimator.update(LinkReport(start + 0.5 * n, 0.003, rtt_s=0.62))
    ladder = controller.ladder
    rung = next(r for r in ladder.rungs if r.levels["exam"].is_video)
    allocation = ladder.allocate(rung, rung.cost_bps)
    controller._apply(allocation, 0.01, 0.62)
    assert fec.group is None  # under the 0.5 % FEC needs
    # Transport feedback: 1 of each 100 packets lost (numbered past the live call's).
    window = LossWindow()
    first = 10**9
    results = [
        PacketResult(n, start, 1000, None if n % 100 == 0 else start)
        for n in range(first, first + 1000)
    ]
    window.add(start, results)
    controller._link_loss = window
    controller._apply(allocation, 0.01, 0.62)
    assert fec.group == 10
    controller._apply(allocation, 0.01, None)  # every ~10th report from Chromium
    assert fec.group == 10


async def _on_the_stills_rung(live: Consult) -> tuple[Consultation, Rung]:
    """The rate controller stopped (the test picks the rungs); exam on periodic stills."""
    consultation = live.agent.consultation
    assert consultation is not None
    await consultation.rate_controller.stop()
    ladder = consultation.rate_controller.ladder
    stills_rung = next(r for r in ladder.rungs if r.levels["exam"].mode is VideoMode.STILLS)
    consultation._allocation(ladder.allocate(stills_rung, stills_rung.cost_bps))
    return consultation, stills_rung


async def test_stills_rung_sends_periodic_exam_pictures(live: Consult) -> None:
    consultation, stills_rung = await _on_the_stills_rung(live)
    ladder = consultation.rate_controller.ladder
    stills = consultation.stills_mode
    assert stills.active and stills.budget_bps == stills_rung.levels["exam"].bitrate_bps
    stills.interval_s = 0.5  # faster, with the byte budget of a 3 s interval
    stills.set_budget(stills.budget_bps * 6)
    received = live.specialist.received
    await eventually(
        lambda: sum(s.header.get("periodic", False) for s in received.stills) >= 2,
        what="two periodic stills",
    )
    still = next(s for s in received.stills if s.header.get("periodic"))
    assert still.header["camera"] == "exam" and len(still.data) == still.header["size"]
    consultation._allocation(ladder.allocate(ladder.rungs[0], ladder.rungs[0].cost_bps))
    assert not consultation.stills_mode.active


async def test_stethoscope_mode_sets_the_band_filter(live: Consult) -> None:
    specialist = live.specialist
    await eventually(lambda: specialist.control_open, what="the control channel")
    specialist.command({"type": "set_stethoscope_mode", "mode": "heart", "id": "h"})
    events = specialist.received.events
    await eventually(lambda: any(e.get("id") == "h" for e in events), what="the ack")
    consultation = live.agent.consultation
    assert consultation is not None
    band_filter = consultation.tracks.stethoscope.band_filter
    assert band_filter is not None and band_filter.mode == "heart"
    states = [e for e in events if e.get("type") == "state"]
    assert states[-1]["stethoscope_mode"] == "heart"


async def test_a_clinical_still_never_interleaves_with_a_periodic_one(live: Consult) -> None:
    consultation, _ = await _on_the_stills_rung(live)
    stills = consultation.stills_mode
    stills.interval_s = 0.5  # periodic pictures, each paced over a second or more
    stills.set_budget(stills.budget_bps * 2)
    specialist = live.specialist
    received = specialist.received

    def periodic_on_its_way() -> bool:
        return specialist._partial is not None and bool(specialist._partial.header.get("periodic"))

    await eventually(periodic_on_its_way, what="a periodic still on its way")
    taken = [await consultation.take_still("exam") for _ in range(2)]
    await eventually(
        lambda: {t.still_id for t in taken} <= {s.header["still_id"] for s in received.stills},
        what="the clinical stills",
    )
    periodic = sum(s.header.get("periodic", False) for s in received.stills)
    await eventually(  # a chunk out of place would have broken the specialist's channel
        lambda: sum(s.header.get("periodic", False) for s in received.stills) > periodic,
        what="a periodic still after the clinical ones",
    )
    for still in received.stills:  # each put together from its own chunks only
        assert len(still.data) == still.header["size"]
    got = {s.header["still_id"]: s.sha256 for s in received.stills}
    assert all(got[t.still_id] == t.sha256 for t in taken)
