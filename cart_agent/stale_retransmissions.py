"""Which retransmissions are no use any more (those of video frames a newer keyframe has
replaced), and which matter most (those of the newest keyframe).

When `step` drops from 2 Mbit/s to 300 kbit/s the receiver NACKs hundreds of packets of
the old, big picture, and the cart answers from a 1024-packet history
(`nack_retry.py`). The retransmission cap (`retransmission_budget.py`) then spent its
share on those while the keyframe of the new, small picture, sent into the same full
queue, lost packets whose repairs the cap dropped: the receiver showed nothing until it
asked for another keyframe 3 s later (in about one run in three). A decoder starts again
at a keyframe and needs nothing sent before it, so `KeyframeMarks` notes where each
video stream's newest keyframe begins (from the VP8 payload descriptor, RFC 7741) and
`is_stale` tells the cap to drop a retransmission of anything older, before it costs a
token.

The newest keyframe's own packets are then the ones the picture waits for, yet their
repairs queued for the cap's tokens behind those of the delta frames after it: in one
`step` run of three the new picture was repaired only 1.5 s after the drop.
`repairs_keyframe` lets each of them jump the cap `KEYFRAME_REPAIRS` times (the cap
still counts their bytes, so later repairs wait).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

RTP_HEADER_BYTES: Final = 12
# Repairs of one packet of the newest keyframe that go ahead of the retransmission cap.
KEYFRAME_REPAIRS: Final = 2


def rtp_payload(data: bytes) -> bytes:
    """The payload of a serialized RTP packet (CSRCs and header extension skipped)."""
    if len(data) < RTP_HEADER_BYTES:
        return b""
    offset = RTP_HEADER_BYTES + 4 * (data[0] & 0x0F)
    if data[0] & 0x10 and len(data) >= offset + 4:
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    end = len(data) - data[-1] if data[0] & 0x20 else len(data)
    return data[offset:end]


def rtx_original_sequence(rtx: bytes) -> int:
    """The sequence number of the packet an RTX packet repairs (RFC 4588)."""
    return int.from_bytes(rtp_payload(rtx)[:2], "big")


def starts_vp8_keyframe(payload: bytes) -> bool:
    """The RTP payload is the first packet of a VP8 keyframe."""
    if not payload or not payload[0] & 0x10 or payload[0] & 0x07:  # S=1, partition 0
        return False
    index = 1
    if payload[0] & 0x80:  # X: the extension byte follows
        if len(payload) < 2:
            return False
        extension = payload[1]
        index = 2
        if extension & 0x80:  # I: a 7- or 15-bit picture id
            if len(payload) <= index:
                return False
            index += 2 if payload[index] & 0x80 else 1
        index += bool(extension & 0x40)  # L: TL0PICIDX
        index += bool(extension & 0x30)  # T or K: TID/KEYIDX
    return len(payload) > index and not payload[index] & 0x01  # P bit 0: a keyframe


def _before(sequence: int, reference: int) -> bool:
    """`sequence` precedes `reference` in 16-bit sequence-number order."""
    return 0 < (reference - sequence) & 0xFFFF < 0x8000


@dataclass
class _Keyframe:
    """Where one keyframe lies in its stream, and how often its packets were repaired."""

    start: int
    timestamp: int
    end: int
    repaired: Counter[int] = field(default_factory=Counter)

    def holds(self, sequence: int) -> bool:
        return not _before(sequence, self.start) and not _before(self.end, sequence)


@dataclass
class KeyframeMarks:
    """Where each video stream's newest keyframe lies."""

    video_ssrcs: frozenset[int]
    _newest: dict[int, _Keyframe] = field(default_factory=dict)

    def see(self, data: bytes) -> None:
        """Note a media packet on its way out."""
        ssrc = int.from_bytes(data[8:12], "big")
        if ssrc not in self.video_ssrcs:
            return
        sequence = int.from_bytes(data[2:4], "big")
        timestamp = int.from_bytes(data[4:8], "big")
        keyframe = self._newest.get(ssrc)
        if starts_vp8_keyframe(rtp_payload(data)):
            self._newest[ssrc] = _Keyframe(sequence, timestamp, sequence)
        elif keyframe is not None and timestamp == keyframe.timestamp:
            keyframe.end = sequence  # the keyframe's later packets share its timestamp

    def is_stale(self, ssrc: int, sequence: int) -> bool:
        """A retransmission of packet `sequence` of stream `ssrc` is no use: a newer
        keyframe began after it."""
        keyframe = self._newest.get(ssrc)
        return keyframe is not None and _before(sequence, keyframe.start)

    def repairs_keyframe(self, ssrc: int, sequence: int) -> bool:
        """Packet `sequence` belongs to the stream's newest keyframe and has been
        repaired fewer than `KEYFRAME_REPAIRS` times (this repair is counted)."""
        keyframe = self._newest.get(ssrc)
        if keyframe is None or not keyframe.holds(sequence):
            return False
        if keyframe.repaired[sequence] >= KEYFRAME_REPAIRS:
            return False
        keyframe.repaired[sequence] += 1
        return True
