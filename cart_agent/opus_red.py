"""Redundant audio (RFC 2198 RED carrying Opus), as Chrome sends and decodes it.

Opus in-band FEC is a SILK feature: in the "audio" mode the stethoscope needs for its
lowest bands, libopus codes this signal mostly as CELT, and only about one packet in four
carried FEC data (measured: 100 of 408 packets at 32 kbit/s with 5 % loss reported), so
a lost packet was concealed 2 times in 3; and it puts none into speech at the voice's 8-16
kbit/s. RED instead repeats the previous Opus frame in every packet: one loss is
repaired by the next packet, whatever the codec mode, for twice the audio bit rate (the
ladder counts it, `quality_ladder.Level.copies`). Chrome's NetEq splits RED natively
when `red/48000/2` is negotiated.

Both audio m-lines offer RED (`peer.py`, codec preferences `[red, opus]`); if the answer
drops it the sender stays on plain Opus. `install_opus_red()` adds the codec to aiortc's
table and a decoder for aiortc receivers (the specialist's voice when the browser sends
RED, tests, the bench), which plays the primary block.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

import aiortc.rtcrtpreceiver
from aiortc import codecs as aiortc_codecs
from aiortc.codecs.base import Decoder
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av.frame import Frame

log = logging.getLogger(__name__)

_receiver_module: Any = aiortc.rtcrtpreceiver  # `get_decoder` is looked up here per codec

RED_MIME = "audio/red"
RED_PAYLOAD_TYPE = 63  # what Chrome uses; free in aiortc's table (Opus 96, video 97+)
MAX_BLOCK = 1023  # a redundant block's length field is 10 bits
MAX_TIMESTAMP_OFFSET = 0x3FFF  # 14 bits


def pack_red(
    primary_pt: int, primary: bytes, timestamp: int, previous: list[tuple[int, bytes]]
) -> bytes:
    """One RED payload: `previous` (timestamp, Opus frame) blocks, oldest first, then the
    primary. Blocks too old or too large for RED's header fields are left out."""
    blocks = [
        (timestamp - ts, data)
        for ts, data in previous
        if 0 < timestamp - ts <= MAX_TIMESTAMP_OFFSET and 0 < len(data) <= MAX_BLOCK
    ]
    headers = b"".join(
        struct.pack("!BHB", 0x80 | primary_pt, (offset << 2) | (len(data) >> 8), len(data) & 0xFF)
        for offset, data in blocks
    )
    return headers + bytes([primary_pt & 0x7F]) + b"".join(d for _, d in blocks) + primary


def unpack_red(payload: bytes) -> list[tuple[int, int, bytes]]:
    """(payload type, timestamp offset, data) per block, redundant ones first."""
    headers: list[tuple[int, int, int]] = []
    pos = 0
    while True:
        if pos >= len(payload):
            raise ValueError("RED payload ends inside its headers")
        first = payload[pos]
        if not first & 0x80:
            headers.append((first & 0x7F, 0, -1))
            pos += 1
            break
        if pos + 4 > len(payload):
            raise ValueError("RED payload ends inside a block header")
        (word,) = struct.unpack_from("!I", payload, pos)
        headers.append((first & 0x7F, (word >> 10) & 0x3FFF, word & 0x3FF))
        pos += 4
    blocks = []
    for pt, offset, length in headers:
        end = len(payload) if length < 0 else pos + length
        if end > len(payload):
            raise ValueError("RED block longer than the payload")
        blocks.append((pt, offset, payload[pos:end]))
        pos = end
    return blocks


class RedPacker:
    """Wraps each new Opus frame in RED with the last `distance` frames (0: none, the
    frame alone in RED's one-byte header, for links too thin for the repeat)."""

    def __init__(self, opus_payload_type: int, distance: int = 1) -> None:
        self.opus_payload_type = opus_payload_type
        self.distance = distance  # may change between packets (another thread sets it)
        self._previous: list[tuple[int, bytes]] = []

    def pack(self, frame: bytes, timestamp: int) -> bytes:
        distance = self.distance
        previous = self._previous[-distance:] if distance > 0 else []
        payload = pack_red(self.opus_payload_type, frame, timestamp, previous)
        # One frame is kept even at distance 0, so the repeat resumes with the next packet.
        self._previous = [*self._previous, (timestamp, frame)][-max(distance, 1) :]
        return payload


class RedDecoder(Decoder):
    """aiortc's receiving side for RED: decodes the primary Opus block."""

    def __init__(self) -> None:
        self._opus = OpusDecoder()

    def decode(self, encoded_frame: JitterFrame) -> list[Frame]:
        try:
            primary = unpack_red(encoded_frame.data)[-1][2]
        except ValueError as exc:
            log.debug("dropping a malformed RED payload: %s", exc)
            return []
        return self._opus.decode(JitterFrame(primary, encoded_frame.timestamp))


def red_packer(negotiated: list[RTCRtpCodecParameters]) -> RedPacker | None:
    """A packer if the sender will send RED (aiortc sends with the first negotiated codec)."""
    if not negotiated or negotiated[0].mimeType.lower() != RED_MIME:
        return None
    opus = next((c for c in negotiated if c.mimeType.lower() == "audio/opus"), None)
    if opus is None or opus.payloadType is None:
        return None
    return RedPacker(opus.payloadType)


def red_primary_payload_type(codec: RTCRtpCodecParameters) -> int:
    """The Opus payload type a RED codec's fmtp names (`96/96`)."""
    for key in codec.parameters:
        first, _, _ = str(key).partition("/")
        if first.isdigit():
            return int(first)
    raise ValueError(f"RED codec without an Opus payload type: {codec.parameters}")


def red_codec() -> RTCRtpCodecParameters:
    opus = next(c for c in aiortc_codecs.CODECS["audio"] if c.mimeType.lower() == "audio/opus")
    return RTCRtpCodecParameters(
        mimeType=RED_MIME,
        clockRate=48_000,
        channels=2,
        payloadType=RED_PAYLOAD_TYPE,
        parameters={f"{opus.payloadType}/{opus.payloadType}": None},
    )


def install_opus_red() -> bool:
    """Offerable RED in aiortc's codec table and a RED decoder for aiortc receivers."""
    try:
        audio = aiortc_codecs.CODECS["audio"]
        stock: Callable[[Any], Decoder] = _receiver_module.get_decoder
    except (AttributeError, KeyError) as exc:
        log.error("redundant stethoscope audio unavailable, aiortc changed shape: %s", exc)
        return False
    if not any(c.mimeType.lower() == RED_MIME for c in audio):
        audio.append(red_codec())
    if not getattr(stock, "_telecart", False):

        def get_decoder(codec: RTCRtpCodecParameters) -> Decoder:
            return RedDecoder() if codec.mimeType.lower() == RED_MIME else stock(codec)

        get_decoder._telecart = True  # type: ignore[attr-defined]
        _receiver_module.get_decoder = get_decoder
    return True
