from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from telecart.devices.camera_sim import render_test_scene
from telecart.devices.timestamp_code import decode_timestamp, encode_timestamp, timestamp_ms


def test_timestamp_round_trips_exactly() -> None:
    frame = np.full((480, 640, 3), 128, np.uint8)
    encode_timestamp(frame, 1_700_000_123.456)
    assert decode_timestamp(frame) == timestamp_ms(1_700_000_123.456)


def test_frame_without_strip_decodes_to_none() -> None:
    assert decode_timestamp(np.full((480, 640, 3), 128, np.uint8)) is None


def test_timestamp_survives_vp8_at_low_bitrate() -> None:
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = 320, 240, "yuv420p"
    codec.bit_rate = 100_000
    codec.time_base = Fraction(1, 25)
    decoder = av.CodecContext.create("libvpx", "r")
    times = [1_700_000_000.0 + i * 0.04 for i in range(25)]
    decoded = []
    for i, t in enumerate(times):
        image = render_test_scene(320, 240, "exam", t)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = i
        for packet in codec.encode(frame):
            decoded += [f.to_ndarray(format="bgr24") for f in decoder.decode(packet)]
    for packet in codec.encode(None):
        decoded += [f.to_ndarray(format="bgr24") for f in decoder.decode(packet)]
    assert len(decoded) == len(times)
    assert [decode_timestamp(f) for f in decoded] == [timestamp_ms(t) for t in times]
