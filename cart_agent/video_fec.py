"""Forward error correction for the exam camera: ULPFEC (RFC 5109) in RED (RFC 2198).

On a 600 ms satellite round trip every lost video packet stalled the exam picture for the
0.6-1.2 s a retransmission takes (9 stalls of 0.5-1.2 s in a 60 s run at 1 % loss);
Chrome protects its video with ULPFEC and stalled 1.7 s in all. A FEC packet is the XOR
of a group of media packets: any one of them lost is rebuilt from the others and the FEC
packet when they arrive, without a round trip. Chrome receives it when `red/90000` and
`ulpfec/90000` are negotiated: media packets then go wrapped in RED (a one-byte header
naming VP8), FEC packets as RED blocks of the ulpfec type, in the media stream's own
sequence numbers.

aiortc numbers the stream, so FEC packets take numbers it hands out: the exam encoder puts
a placeholder payload (`VideoFec.slot`) before a frame's packets when a group is due, sized
like the FEC packet it becomes; `UlpfecTap`, the innermost wrapper of the DTLS
transport's `_send_rtp` (below transport-wide numbering, so the XOR covers the bytes that
go out), records media packets, wraps them in RED and turns each placeholder into the FEC
packet of the group before it. Retransmissions stay plain VP8 on RTX (Chrome takes both);
a retransmission of a FEC packet is dropped. `install_video_fec()` adds the codecs to
aiortc's table and teaches aiortc receivers (tests, tools) to unwrap RED and skip FEC.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import aiortc.rtcrtpsender
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc import codecs as aiortc_codecs
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket, is_rtcp

from .stale_retransmissions import rtx_original_sequence

log = logging.getLogger(__name__)

Handler = Callable[[RTCRtpReceiver, RtpPacket, int], Coroutine[Any, Any, None]]

RED_VIDEO_MIME = "video/red"
ULPFEC_MIME = "video/ulpfec"
RED_VIDEO_PAYLOAD_TYPE = 121  # free in aiortc's table (video 97-102, audio 0, 8, 63, 96)
ULPFEC_PAYLOAD_TYPE = 122
RTP_HEADER = 12
FEC_HEADER = 10
LEVEL0_HEADER = 4  # protection length and a 16-bit mask (L = 0)
MAX_GROUP = 16  # what a 16-bit mask covers
# A placeholder starts with a zero VP8 descriptor byte (no partition start), so a
# receiver that somehow got one would drop it as an orphan fragment.
PLACEHOLDER = b"\x00telecart-fec"
# Below this loss NACKs repair what little is lost; below this round trip a NACK's repair
# comes within the receiver's jitter buffer (Chrome protects from about there too). From
# 250 ms only, `rural-3g` (150 ms, 450 with its queue full) still stalled 0.5-0.8 s for a
# lost packet now and then; from 100 ms, no stall in two runs.
MIN_LOSS = 0.004
MIN_RTT_S = 0.1


def fec_group(loss: float, rtt_s: float | None, current: int | None = None) -> int | None:
    """Media packets per FEC packet for a link (None: no FEC), given the `current` one.
    Two losses in one group cannot be repaired: about C(n + 1, 2) p² of groups, 0.6 % at
    1 % loss and 10. Hysteresis: on from 1.25 times `MIN_LOSS`, off under 0.75 times
    it, and the group moves only by more than 2 (the usual loss of `satellite` wandered
    0.3-0.5 % at the start and 0.8-1.2 % later, switching FEC 23-28 times a minute)."""
    threshold = MIN_LOSS * (0.75 if current is not None else 1.25)
    if loss < threshold or rtt_s is None or rtt_s < MIN_RTT_S:
        return None
    group = max(4, min(12, round(0.1 / loss)))
    if current is not None and abs(group - current) <= 2:
        return current
    return group


def header_length(packet: bytes) -> int:
    """The RTP header's length, CSRCs and header extension included."""
    if len(packet) < RTP_HEADER:
        raise ValueError("shorter than an RTP header")
    length = RTP_HEADER + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        if len(packet) < length + 4:
            raise ValueError("RTP header extension cut short")
        (words,) = struct.unpack_from("!H", packet, length + 2)
        length += 4 + 4 * words
    if length > len(packet):
        raise ValueError("RTP header longer than the packet")
    return length


def ulpfec_body(packets: Sequence[bytes]) -> bytes:
    """The FEC header, level-0 header and XOR payload protecting `packets`: consecutive
    RTP packets of one stream, in sequence order, exactly as sent (before RED)."""
    if not 0 < len(packets) <= MAX_GROUP:
        raise ValueError(f"a FEC group holds 1-{MAX_GROUP} packets, not {len(packets)}")
    protection = max(len(p) - RTP_HEADER for p in packets)
    first, second, timestamp, length = 0, 0, 0, 0
    xor = bytearray(protection)
    for packet in packets:
        first ^= packet[0]
        second ^= packet[1]
        timestamp ^= struct.unpack_from("!I", packet, 4)[0]
        length ^= len(packet) - RTP_HEADER
        body = packet[RTP_HEADER:]
        xor[: len(body)] = (
            int.from_bytes(xor[: len(body)], "big") ^ int.from_bytes(body, "big")
        ).to_bytes(len(body), "big")
    (base,) = struct.unpack_from("!H", packets[0], 2)
    mask = ((1 << len(packets)) - 1) << (16 - len(packets))
    return (
        struct.pack("!BBHIH", first & 0x3F, second, base, timestamp, length)
        + struct.pack("!HH", protection, mask)
        + bytes(xor)
    )


def fec_payload_size(packets: Sequence[bytes]) -> int:
    """The length of the RED payload `ulpfec_body(packets)` goes out in."""
    return 1 + FEC_HEADER + LEVEL0_HEADER + max(len(p) - RTP_HEADER for p in packets)


def wrap_red(packet: bytes, red_pt: int) -> bytes:
    """The packet as a RED packet of one primary block of its own payload type."""
    start = header_length(packet)
    return (
        packet[:1]
        + bytes([(packet[1] & 0x80) | red_pt])
        + packet[2:start]
        + bytes([packet[1] & 0x7F])
        + packet[start:]
    )


@dataclass(frozen=True)
class FecPayloadTypes:
    """What the answer negotiated on one video m-line."""

    media: int
    red: int
    ulpfec: int


class VideoFec:
    """FEC for one video stream: the encoder asks for slots, `UlpfecTap` fills them.

    `group` is set from the link the receiver reports (`fec_group`); None sends none.
    """

    def __init__(
        self,
        ssrc: int,
        rtx_ssrc: int | None,
        types: FecPayloadTypes,
        forget: Callable[[int], None] = lambda sequence: None,
    ) -> None:
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc
        self.types = types
        self._forget = forget  # takes a FEC packet out of the sender's retransmission history
        self.group: int | None = None
        self._lock = threading.Lock()  # the encoder runs in a worker thread
        self._pending: list[bytes] = []
        self._fec_sequences: deque[int] = deque(maxlen=512)
        self.fec_packets = 0
        self.media_packets = 0

    @classmethod
    def for_sender(cls, sender: RTCRtpSender, types: FecPayloadTypes) -> VideoFec:
        """FEC for an aiortc sender, which then never retransmits a FEC packet (a NACK
        for one would otherwise go out as RTX, numbered, and be dropped by the tap)."""
        history: dict[int, Any] = getattr(sender, "_RTCRtpSender__rtp_history", {})

        def forget(sequence: int) -> None:
            size: int = aiortc.rtcrtpsender.RTP_HISTORY_SIZE  # type: ignore[attr-defined]
            history.pop(sequence % size, None)

        return cls(sender._ssrc, sender._rtx_ssrc, types, forget)

    @property
    def media_share(self) -> float:
        """The part of the stream's rate left to media (the rate controller's concern)."""
        return 1.0 if self.group is None else self.group / (self.group + 1)

    def slot(self) -> bytes | None:
        """A placeholder to send first in the next frame, if a group is due."""
        with self._lock:
            group = self.group
            if group is None or len(self._pending) < group:
                return None
            size = fec_payload_size(self._pending[-MAX_GROUP:])
        return PLACEHOLDER + bytes(max(0, size - len(PLACEHOLDER)))

    def on_media(self, packet: bytes) -> bytes:
        """Record a media packet as sent; the RED packet to send instead."""
        with self._lock:
            if self.group is None:
                self._pending.clear()
            else:
                self._pending = [*self._pending[-(MAX_GROUP - 1) :], packet]
        self.media_packets += 1
        return wrap_red(packet, self.types.red)

    def fill(self, placeholder: bytes) -> bytes | None:
        """The FEC packet a placeholder packet becomes (None: nothing left to protect)."""
        start = header_length(placeholder)
        (sequence,) = struct.unpack_from("!H", placeholder, 2)
        self._fec_sequences.append(sequence)  # never retransmitted, even if not sent
        self._forget(sequence)
        with self._lock:
            group, self._pending = self._pending, []
        if not group:
            return None
        body = bytes([self.types.ulpfec]) + ulpfec_body(group)
        header = placeholder[:1] + bytes([self.types.red]) + placeholder[2:start]
        self.fec_packets += 1
        return header + body

    def is_fec_sequence(self, sequence: int) -> bool:
        return sequence in self._fec_sequences


class UlpfecTap:
    """Wraps one DTLS transport's `_send_rtp` (install it before any other tap)."""

    def __init__(self, transport: Any, streams: Sequence[VideoFec]) -> None:
        self._transport = transport
        self._streams = {s.ssrc: s for s in streams}
        self._repairs = {s.rtx_ssrc: s for s in streams if s.rtx_ssrc is not None}
        self.dropped_repairs = 0
        self._original: Callable[[bytes], Awaitable[None]] = transport._send_rtp
        transport._send_rtp = self._send_rtp

    def detach(self) -> None:
        self._transport._send_rtp = self._original

    async def _send_rtp(self, data: bytes) -> None:
        if len(data) >= RTP_HEADER and not is_rtcp(data):
            ssrc = int.from_bytes(data[8:12], "big")
            stream = self._streams.get(ssrc)
            try:
                if stream is not None and data[1] & 0x7F == stream.types.media:
                    out = self._media(stream, data)
                    if out is None:
                        return
                    data = out
                elif (repairs := self._repairs.get(ssrc)) is not None:
                    if repairs.is_fec_sequence(rtx_original_sequence(data)):
                        self.dropped_repairs += 1
                        return
            except (ValueError, struct.error) as exc:
                log.debug("sending a packet FEC could not read as it is: %s", exc)
        await self._original(data)

    @staticmethod
    def _media(stream: VideoFec, data: bytes) -> bytes | None:
        start = header_length(data)
        if data[start : start + len(PLACEHOLDER)] == PLACEHOLDER:
            return stream.fill(data)
        return stream.on_media(data)


def _unwrapping(original: Handler) -> Handler:
    """aiortc's receiver, taking video RED apart first: the VP8 packet inside, and a FEC
    packet as an empty VP8 one (its sequence number is received, nothing to decode).
    aiortc itself would look for a "red" decoder, and switch decoders (losing the
    reference frames) between RED packets and plain retransmissions."""

    async def handle(self: RTCRtpReceiver, packet: RtpPacket, arrival_time_ms: int) -> None:
        codecs: dict[int, RTCRtpCodecParameters] = getattr(self, "_RTCRtpReceiver__codecs", {})
        codec = codecs.get(packet.payload_type)
        if codec is not None and codec.mimeType.lower() == RED_VIDEO_MIME and packet.payload:
            inner = packet.payload[0] & 0x7F
            kind = codecs.get(inner)
            if packet.payload[0] & 0x80 or kind is None:
                return  # more than one block, or a type never negotiated: not from us
            if kind.mimeType.lower() == ULPFEC_MIME:
                media = next((pt for pt, c in codecs.items() if c.name == "VP8"), None)
                if media is None:
                    return
                packet.payload_type, packet.payload = media, b""
            else:
                packet.payload_type, packet.payload = inner, packet.payload[1:]
        await original(self, packet, arrival_time_ms)

    return handle


def video_fec_codecs() -> list[RTCRtpCodecParameters]:
    return [
        RTCRtpCodecParameters(
            mimeType=RED_VIDEO_MIME, clockRate=90_000, payloadType=RED_VIDEO_PAYLOAD_TYPE
        ),
        RTCRtpCodecParameters(
            mimeType=ULPFEC_MIME, clockRate=90_000, payloadType=ULPFEC_PAYLOAD_TYPE
        ),
    ]


def install_video_fec() -> bool:
    """Offerable RED and ULPFEC for video, and RED-aware aiortc receivers (idempotent)."""
    try:
        video = aiortc_codecs.CODECS["video"]
        current = RTCRtpReceiver._handle_rtp_packet
    except (AttributeError, KeyError) as exc:
        log.error("video FEC unavailable, aiortc changed shape: %s", exc)
        return False
    for codec in video_fec_codecs():
        if not any(c.mimeType.lower() == codec.mimeType.lower() for c in video):
            video.append(codec)
    if not getattr(current, "_telecart_red", False):
        handler = _unwrapping(current)
        handler._telecart_red = True  # type: ignore[attr-defined]
        # nack_retry re-wraps aiortc's own handler on each install; the peer installs
        # this after it, so RED is always taken apart first, and never twice.
        handler._telecart_stock = getattr(current, "_telecart_stock", current)  # type: ignore[attr-defined]
        RTCRtpReceiver._handle_rtp_packet = handler  # type: ignore[method-assign,assignment]
    return True


def negotiated_fec(codecs: Sequence[RTCRtpCodecParameters]) -> FecPayloadTypes | None:
    """The payload types to send FEC with, if the answer kept VP8 first, RED and ULPFEC."""
    if not codecs or codecs[0].mimeType.lower() != "video/vp8":
        return None
    by_mime = {c.mimeType.lower(): c.payloadType for c in codecs}
    media, red, ulpfec = (
        codecs[0].payloadType,
        by_mime.get(RED_VIDEO_MIME),
        by_mime.get(ULPFEC_MIME),
    )
    if media is None or red is None or ulpfec is None:
        return None
    return FecPayloadTypes(media, red, ulpfec)
