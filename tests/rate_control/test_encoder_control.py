"""VP8 rate changes in place: no keyframe storm, keyframes only on size change or PLI."""

from __future__ import annotations

import aiortc
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av import VideoFrame

from telecart.cart_agent import encoder_control
from telecart.cart_agent.encoder_control import (
    AdaptiveVp8Encoder,
    VideoLayer,
    fit_within,
    install_encoder_control,
    libvpx,
    uninstall_encoders,
)

from .keyframe_storm import is_keyframe, moving_frames, run


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_aiortc_and_libvpx_are_the_versions_this_was_built_against() -> None:
    assert aiortc.__version__.startswith(encoder_control.TESTED_AIORTC)
    assert encoder_control.aiortc_seams_present()
    assert libvpx().abi_version > 0  # also checks the config struct layout


def test_moving_estimate_makes_no_keyframes_where_aiortc_makes_many() -> None:
    stock = run("aiortc", Vp8Encoder, 12.0)
    ours = run("ours", AdaptiveVp8Encoder, 12.0)
    assert stock.keyframes >= 8
    assert ours.keyframes == 1


def test_output_rate_follows_the_target_without_a_new_encoder() -> None:
    encoder = AdaptiveVp8Encoder(1_000_000)
    sizes: list[int] = []
    for i, frame in enumerate(moving_frames(12.0)):
        if i == 60:
            encoder.set_target_bitrate(150_000)
        payloads, _ = encoder.encode(frame)
        sizes.append(sum(map(len, payloads)))
    high = sum(sizes[15:60]) * 8 / 3
    low = sum(sizes[120:]) * 8 / 4
    assert low < high / 3
    assert encoder.counters.encoders_built == 1
    assert encoder.counters.keyframes == 1


def test_resolution_change_makes_exactly_one_keyframe() -> None:
    encoder = AdaptiveVp8Encoder(500_000)
    keyframes = []
    for i, frame in enumerate(moving_frames(4.0)):
        if i == 30:
            encoder.set_layer(VideoLayer(640, 360, 15, 500_000))  # from START_BOX
        payloads, _ = encoder.encode(frame)
        keyframes.append(is_keyframe(payloads))
    assert [i for i, k in enumerate(keyframes) if k] == [0, 30]
    assert encoder.counters.encoders_built == 2


def test_keyframe_requests_are_rate_limited() -> None:
    clock = FakeClock()
    encoder = AdaptiveVp8Encoder(300_000, keyframe_min_interval_s=1.0, clock=clock)
    keyframes = 0
    for i, frame in enumerate(moving_frames(4.0)):  # 60 frames, a PLI with every one
        clock.now = i / 15
        payloads, _ = encoder.encode(frame, force_keyframe=True)
        keyframes += is_keyframe(payloads)
    assert 3 <= keyframes <= 5
    assert encoder.counters.keyframes_deferred > 40


def test_frame_rate_is_decimated_to_the_layer() -> None:
    encoder = AdaptiveVp8Encoder()
    encoder.set_layer(VideoLayer(320, 180, 5, 100_000))
    for frame in moving_frames(4.0):  # 60 frames at 15 fps
        encoder.encode(frame)
    assert 18 <= encoder.counters.frames <= 22  # reached libvpx (which may skip some)
    assert encoder.counters.dropped == 60 - encoder.counters.frames


def test_paused_layer_sends_nothing() -> None:
    encoder = AdaptiveVp8Encoder()
    encoder.set_layer(VideoLayer(0, 0, 15, 100_000, paused=True))
    assert all(not encoder.encode(frame)[0] for frame in moving_frames(1.0))


def test_output_decodes_at_the_layer_size_keeping_aspect() -> None:
    encoder = AdaptiveVp8Encoder()
    encoder.set_layer(VideoLayer(320, 180, 15, 150_000))
    decoder = Vp8Decoder()
    decoded = []
    for frame in moving_frames(1.0):
        payloads, timestamp = encoder.encode(frame)
        data = b"".join(vp8_depayload(p) for p in payloads)
        if data:  # libvpx may skip a frame rather than overshoot 150 kbit/s
            decoded += decoder.decode(JitterFrame(data=data, timestamp=timestamp))
    assert len(decoded) >= 10
    assert isinstance(decoded[-1], VideoFrame)
    assert (decoded[-1].width, decoded[-1].height) == fit_within(640, 480, 320, 180) == (240, 180)


def test_remb_is_recorded_not_applied() -> None:
    encoder = AdaptiveVp8Encoder(400_000)
    encoder.target_bitrate = 2_000_000  # what aiortc does with a REMB
    assert encoder.remb_bps == 2_000_000
    assert encoder.target_bitrate == 400_000


def test_install_routes_vp8_senders_to_our_encoder() -> None:
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
    try:
        assert install_encoder_control()
        assert isinstance(aiortc.rtcrtpsender.get_encoder(vp8), AdaptiveVp8Encoder)  # type: ignore[attr-defined]
    finally:
        uninstall_encoders()
    assert type(aiortc.rtcrtpsender.get_encoder(vp8)) is Vp8Encoder  # type: ignore[attr-defined]
