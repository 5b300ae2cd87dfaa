"""Keyframe starts found in the RTP payloads our VP8 encoder really produces."""

from __future__ import annotations

from aiortc.rtp import RtpPacket

from telecart.cart_agent.encoder_control import AdaptiveVp8Encoder, VideoLayer
from telecart.cart_agent.stale_retransmissions import (
    KeyframeMarks,
    rtp_payload,
    starts_vp8_keyframe,
)

from .keyframe_storm import moving_frames


def test_only_the_first_packet_of_a_real_keyframe_starts_one() -> None:
    encoder = AdaptiveVp8Encoder()
    encoder.set_layer(VideoLayer(320, 240, 30, 300_000, False))
    encoder.keyframe_min_interval_s = 0.0  # a keyframe whenever asked
    frames = moving_frames(1.0, 320, 240)
    first, _ = encoder.encode(next(frames))  # an encoder's first frame is a keyframe
    delta, _ = encoder.encode(next(frames))
    forced, _ = encoder.encode(next(frames), force_keyframe=True)
    assert len(first) > 1  # a keyframe spans several packets
    assert starts_vp8_keyframe(first[0]) and starts_vp8_keyframe(forced[0])
    assert not any(starts_vp8_keyframe(p) for p in first[1:] + delta + forced[1:])
    assert not starts_vp8_keyframe(b"") and not starts_vp8_keyframe(b"\x90")


def test_a_retransmission_is_stale_only_before_its_own_streams_newest_keyframe() -> None:
    encoder = AdaptiveVp8Encoder()
    encoder.set_layer(VideoLayer(320, 240, 30, 300_000, False))
    encoder.keyframe_min_interval_s = 0.0  # a keyframe whenever asked
    frames = moving_frames(1.0, 320, 240)
    marks = KeyframeMarks(frozenset({1234}))
    sequence = 65000
    for _ in range(3):
        for payload in encoder.encode(next(frames))[0]:
            packet = RtpPacket(payload_type=96, sequence_number=sequence, ssrc=1234)
            packet.payload = payload
            data = packet.serialize()
            assert rtp_payload(data) == payload
            marks.see(data)
            sequence += 1
    assert not marks.is_stale(1234, 65000)  # the first keyframe: nothing before it
    assert not marks.is_stale(4321, 1)  # another stream: no keyframe known
    keyframe_at = sequence & 0xFFFF
    for payload in encoder.encode(next(frames), force_keyframe=True)[0]:
        packet = RtpPacket(payload_type=96, sequence_number=sequence & 0xFFFF, ssrc=1234)
        packet.payload = payload
        marks.see(packet.serialize())
        sequence += 1
    assert marks.is_stale(1234, 65003) and marks.is_stale(1234, (keyframe_at - 1) & 0xFFFF)
    assert not marks.is_stale(1234, keyframe_at) and not marks.is_stale(1234, sequence & 0xFFFF)


def test_the_newest_keyframe_spans_the_packets_of_its_timestamp() -> None:
    encoder = AdaptiveVp8Encoder()
    encoder.set_layer(VideoLayer(320, 240, 30, 300_000, False))
    frames = moving_frames(1.0, 320, 240)
    marks = KeyframeMarks(frozenset({1234}))
    sequence = 65534  # the keyframe wraps the sequence numbers
    for timestamp in (0, 3000):  # a keyframe (the encoder's first frame), a delta frame
        for payload in encoder.encode(next(frames))[0]:
            packet = RtpPacket(
                payload_type=96, sequence_number=sequence & 0xFFFF, ssrc=1234, timestamp=timestamp
            )
            packet.payload = payload
            marks.see(packet.serialize())
            sequence += 1
            if timestamp == 0:
                keyframe_end = (sequence - 1) & 0xFFFF
    assert keyframe_end not in (65534, 65535)  # the keyframe spans the wrap
    assert marks.repairs_keyframe(1234, 65534) and marks.repairs_keyframe(1234, keyframe_end)
    assert marks.repairs_keyframe(1234, 65534)  # a second time
    assert not marks.repairs_keyframe(1234, 65534)  # not a third
    assert not marks.repairs_keyframe(1234, (keyframe_end + 1) & 0xFFFF)  # the delta frame
    assert not marks.repairs_keyframe(1234, 65533)  # before the keyframe
    assert not marks.repairs_keyframe(4321, 65534)  # another stream
