"""RED packing (RFC 2198) for the stethoscope, and aiortc's decoder for it."""

from __future__ import annotations

import numpy as np
import pytest
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from telecart.cart_agent.opus_red import (
    RED_MIME,
    RedDecoder,
    RedPacker,
    pack_red,
    red_codec,
    red_packer,
    red_primary_payload_type,
    unpack_red,
)
from telecart.cart_agent.opus_settings import STETHOSCOPE, LibopusEncoder


def test_each_packet_repeats_the_previous_frame_with_its_timestamp_offset() -> None:
    packer = RedPacker(opus_payload_type=96)
    first = packer.pack(b"A" * 10, 1000)
    assert unpack_red(first) == [(96, 0, b"A" * 10)]  # nothing to repeat yet
    second = packer.pack(b"B" * 300, 2920)
    assert unpack_red(second) == [(96, 1920, b"A" * 10), (96, 0, b"B" * 300)]
    third = packer.pack(b"C", 4840)
    assert unpack_red(third) == [(96, 1920, b"B" * 300), (96, 0, b"C")]
    # RFC 2198 header: F=1|PT, 14-bit offset, 10-bit length; then F=0|PT.
    assert third[:5] == bytes(
        [0x80 | 96, (1920 >> 6) & 0xFF, ((1920 << 2) & 0xFC) | 1, 300 & 0xFF, 96]
    )


def test_blocks_too_old_or_too_big_for_the_header_are_left_out() -> None:
    payload = pack_red(96, b"now", 20_000, [(1000, b"old"), (19_000, b"x" * 1100)])
    assert unpack_red(payload) == [(96, 0, b"now")]


@pytest.mark.parametrize("payload", [b"", b"\xe0\x00", b"\xe0\x00\x78\x0a\x60abc"])
def test_malformed_red_is_a_value_error(payload: bytes) -> None:
    with pytest.raises(ValueError):
        unpack_red(payload)


def test_the_sender_uses_red_only_when_the_answer_put_it_first() -> None:
    red = red_codec()
    opus = next(
        c for c in __import__("aiortc").codecs.CODECS["audio"] if c.mimeType == "audio/opus"
    )
    assert red.mimeType == RED_MIME and red.parameters == {
        f"{opus.payloadType}/{opus.payloadType}": None
    }
    packer = red_packer([red, opus])
    assert packer is not None and packer.opus_payload_type == opus.payloadType
    assert red_packer([opus, red]) is None and red_packer([opus]) is None


def test_aiortc_side_decodes_the_primary_block() -> None:
    encoder = LibopusEncoder(STETHOSCOPE)
    t = np.arange(1920) / 48_000
    tone = (8000 * np.sin(2 * np.pi * 60 * t)).astype(np.int16)
    packer = RedPacker(96)
    decoder = RedDecoder()
    peaks = []
    for index in range(5):
        payload = packer.pack(encoder.encode(tone), index * 1920)
        frames = decoder.decode(JitterFrame(payload, index * 1920))
        peaks.append(max(int(abs(f.to_ndarray()).max()) for f in frames))
    assert peaks[-1] > 4000  # the 60 Hz tone, not silence or noise
    assert decoder.decode(JitterFrame(b"\xe0", 0)) == []  # malformed: dropped, no raise


def test_a_red_codec_names_its_opus_payload_type_or_is_refused() -> None:
    offered = red_codec()
    assert red_primary_payload_type(offered) == int(next(iter(offered.parameters)).split("/")[0])
    answered = RTCRtpCodecParameters(
        mimeType=RED_MIME, clockRate=48_000, channels=2, payloadType=63
    )
    answered.parameters["111/111"] = None
    assert red_primary_payload_type(answered) == 111
    bare = RTCRtpCodecParameters(mimeType=RED_MIME, clockRate=48_000, channels=2, payloadType=63)
    with pytest.raises(ValueError, match="Opus payload type"):
        red_primary_payload_type(bare)


def test_the_repeat_can_be_dropped_and_resumed_between_packets() -> None:
    packer = RedPacker(96)
    packer.pack(b"frame-1", 0)
    assert [b for *_, b in unpack_red(packer.pack(b"frame-2", 2880))] == [b"frame-1", b"frame-2"]
    packer.distance = 0  # the thinnest rung: each frame once, still in RED
    assert unpack_red(packer.pack(b"frame-3", 5760)) == [(96, 0, b"frame-3")]
    packer.distance = 1
    blocks = unpack_red(packer.pack(b"frame-4", 8640))
    assert blocks == [(96, 2880, b"frame-3"), (96, 0, b"frame-4")]
