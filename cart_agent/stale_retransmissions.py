"""Which retransmissions are no use any more: those of video frames a newer keyframe has
replaced.

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
"""

from __future__ import annotations

from dataclasses import dataclass, field

RTP_HEADER_BYTES = 12


def rtp_payload(data: bytes) -> bytes:
    """The payload of a serialized RTP packet (CSRCs and header extension skipped)."""
    if len(data) < RTP_HEADER_BYTES:
        return b""
    offset = RTP_HEADER_BYTES + 4 * (data[0] & 0x0F)
    if data[0] & 0x10 and len(data) >= offset + 4:
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    end = len(data) - data[-1] if data[0] & 0x20 else len(data)
    return data[offset:end]


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
class KeyframeMarks:
    """The first sequence number of each video stream's newest keyframe."""

    video_ssrcs: frozenset[int]
    _starts: dict[int, int] = field(default_factory=dict)

    def see(self, data: bytes) -> None:
        """Note a media packet on its way out."""
        ssrc = int.from_bytes(data[8:12], "big")
        if ssrc in self.video_ssrcs and starts_vp8_keyframe(rtp_payload(data)):
            self._starts[ssrc] = int.from_bytes(data[2:4], "big")

    def is_stale(self, ssrc: int, sequence: int) -> bool:
        """A retransmission of packet `sequence` of stream `ssrc` is no use: a newer
        keyframe began after it."""
        start = self._starts.get(ssrc)
        return start is not None and _before(sequence, start)
