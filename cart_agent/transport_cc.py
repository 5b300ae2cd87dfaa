"""Transport-wide congestion control feedback for aiortc senders (the seam and the wire).

A receiver report says, once a second, how many packets were lost and one round-trip
time. Chrome and Firefox can say much more: with the transport-wide sequence number
header extension negotiated (draft-holmer-rmcat-transport-wide-cc-extensions-01), they
send an RTCP transport feedback (RTPFB, FMT 15) every 50–100 ms with the arrival time of
every packet. That is what libwebrtc's send-side estimator reads, and what
`delay_based_estimator.py` reads here.

aiortc parses such feedback as a NACK-shaped packet and ignores it, and never numbers
packets. `install_transport_cc()` offers the extension and the `transport-cc` feedback
type (module-level tables aiortc reads when it builds an offer), and `TransportCcTap`
wraps one `RTCDtlsTransport`'s `_send_rtp` (numbering every RTP packet, audio, video and
retransmissions alike, and noting its send time and size) and `_handle_rtcp_data`
(picking the feedback out of each compound packet before aiortc routes it).
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import codecs as aiortc_codecs
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpHeaderExtensionParameters
from aiortc.rtp import RtpPacket, is_rtcp

log = logging.getLogger(__name__)

TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
TRANSPORT_CC_EXTENSION_ID = 5  # aiortc uses 1-3; Chrome renumbers nothing in its answer
RTCP_RTPFB = 205
TRANSPORT_FEEDBACK_FMT = 15
WIRE_OVERHEAD_BYTES = 48  # SRTP tag 10 + UDP 8 + IPv4 20 + margin for TURN/IPv6
HISTORY = 4096  # sent packets remembered for matching feedback (~20 s at our rates)
DELTA_UNIT_S = 250e-6
REFERENCE_UNIT_S = 0.064


def install_transport_cc() -> bool:
    """Offer transport-wide sequence numbers and `transport-cc` feedback (idempotent)."""
    try:
        tables = aiortc_codecs.HEADER_EXTENSIONS
        codec_lists = aiortc_codecs.CODECS
    except AttributeError as exc:
        log.error("transport-wide feedback unavailable, aiortc changed shape: %s", exc)
        return False
    for kind in ("audio", "video"):
        extensions = tables[kind]
        if any(e.uri == TRANSPORT_CC_URI for e in extensions):
            continue
        if any(e.id == TRANSPORT_CC_EXTENSION_ID for e in extensions):
            log.error("header extension id %d is taken; no transport-wide feedback", 5)
            return False
        extensions.append(
            RTCRtpHeaderExtensionParameters(id=TRANSPORT_CC_EXTENSION_ID, uri=TRANSPORT_CC_URI)
        )
        for codec in codec_lists[kind]:
            if codec.mimeType.lower().endswith("/rtx"):
                continue
            if not any(f.type == "transport-cc" for f in codec.rtcpFeedback):
                codec.rtcpFeedback.append(RTCRtcpFeedback(type="transport-cc"))
    return True


@dataclass(frozen=True)
class PacketResult:
    """One sent packet as the receiver reported it (`arrival_s` None: not received)."""

    sequence: int  # unwrapped transport-wide sequence number
    send_s: float  # our monotonic clock
    size_bytes: int  # on the wire, overhead included
    arrival_s: float | None  # the receiver's clock: only differences mean anything


def parse_transport_feedback(fci: bytes) -> list[tuple[int, float | None]]:
    """The feedback control information of one FMT 15 packet → (sequence, arrival s).

    Sequence numbers are 16-bit as on the wire; arrival times are in the receiver's
    clock (reference time + deltas). Raises ValueError on a malformed packet.
    """
    if len(fci) < 8:
        raise ValueError("transport feedback shorter than its fixed header")
    base, count = struct.unpack_from("!HH", fci, 0)
    reference = int.from_bytes(fci[4:7], "big", signed=True) * REFERENCE_UNIT_S
    symbols: list[int] = []
    pos = 8
    while len(symbols) < count:
        if pos + 2 > len(fci):
            raise ValueError("transport feedback ends inside its status chunks")
        (chunk,) = struct.unpack_from("!H", fci, pos)
        pos += 2
        if chunk & 0x8000 == 0:  # run length chunk
            symbols.extend([(chunk >> 13) & 0x3] * (chunk & 0x1FFF))
        elif chunk & 0x4000 == 0:  # 14 one-bit symbols
            symbols.extend((chunk >> (13 - i)) & 0x1 for i in range(14))
        else:  # 7 two-bit symbols
            symbols.extend((chunk >> (12 - 2 * i)) & 0x3 for i in range(7))
    del symbols[count:]
    results: list[tuple[int, float | None]] = []
    arrival = reference
    for index, symbol in enumerate(symbols):
        sequence = (base + index) & 0xFFFF
        if symbol == 0:
            results.append((sequence, None))
            continue
        if symbol == 1:
            if pos + 1 > len(fci):
                raise ValueError("transport feedback ends inside its deltas")
            delta = fci[pos]
            pos += 1
        elif symbol == 2:
            if pos + 2 > len(fci):
                raise ValueError("transport feedback ends inside its deltas")
            (delta,) = struct.unpack_from("!h", fci, pos)
            pos += 2
        else:
            raise ValueError("transport feedback has a reserved status symbol")
        arrival += delta * DELTA_UNIT_S
        results.append((sequence, arrival))
    return results


def transport_feedback_fcis(compound: bytes) -> list[bytes]:
    """The FCI of every transport feedback packet in a compound RTCP packet."""
    found: list[bytes] = []
    pos = 0
    while pos + 4 <= len(compound):
        first, packet_type, words = struct.unpack_from("!BBH", compound, pos)
        end = pos + 4 + words * 4
        if end > len(compound):
            break
        if packet_type == RTCP_RTPFB and first & 0x1F == TRANSPORT_FEEDBACK_FMT:
            body = compound[pos + 4 : end]
            if first & 0x20 and body:  # padding: its last byte counts it
                body = body[: len(body) - body[-1]]
            if len(body) > 8:
                found.append(body[8:])  # after sender and media SSRC
        pos = end
    return found


@dataclass
class _Sent:
    sequence: int
    send_s: float
    size_bytes: int


FeedbackHandler = Callable[[list[PacketResult]], None]


class TransportCcTap:
    """Numbers one DTLS transport's RTP packets and hands their feedback to `on_feedback`."""

    def __init__(
        self,
        transport: Any,
        on_feedback: FeedbackHandler,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._on_feedback = on_feedback
        self._clock = clock
        self._next = 0  # unwrapped
        self._sent: list[_Sent | None] = [None] * HISTORY
        self._original_send: Callable[[bytes], Awaitable[None]] = transport._send_rtp
        self._original_rtcp: Callable[[bytes], Awaitable[None]] = transport._handle_rtcp_data
        self.feedback_packets = 0
        self.malformed = 0
        self._newest_rtp: dict[int, int] = {}  # SSRC -> its newest RTP sequence number
        self.bytes_numbered = 0  # on the wire, overhead included
        transport._send_rtp = self._send_rtp
        transport._handle_rtcp_data = self._handle_rtcp_data

    def detach(self) -> None:
        """Give the transport its own methods back."""
        self._transport._send_rtp = self._original_send
        self._transport._handle_rtcp_data = self._original_rtcp

    @property
    def next_sequence(self) -> int:
        """The transport-wide number the next RTP packet will get (unwrapped)."""
        return self._next

    def newest_rtp_sequence(self, ssrc: int) -> int | None:
        """The RTP sequence number of the newest packet sent on `ssrc`."""
        return self._newest_rtp.get(ssrc)

    @property
    def negotiated(self) -> bool:
        """True once the answer accepted the extension (aiortc keeps the id privately)."""
        ids = getattr(self._transport._rtp_header_extensions_map, "_HeaderExtensionsMap__ids", None)
        return getattr(ids, "transport_sequence_number", None) is not None

    async def _send_rtp(self, data: bytes) -> None:
        if not is_rtcp(data) and self.negotiated:
            extensions = self._transport._rtp_header_extensions_map
            try:
                packet = RtpPacket.parse(data, extensions)
            except ValueError:
                pass
            else:
                sequence = self._next
                self._next += 1
                self._newest_rtp[packet.ssrc] = packet.sequence_number
                packet.extensions.transport_sequence_number = sequence & 0xFFFF
                data = packet.serialize(extensions)
                size = len(data) + WIRE_OVERHEAD_BYTES
                self._sent[sequence % HISTORY] = _Sent(sequence, self._clock(), size)
                self.bytes_numbered += size
        await self._original_send(data)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        try:
            fcis = transport_feedback_fcis(data)
        except struct.error:
            fcis = []
        for fci in fcis:
            try:
                reported = parse_transport_feedback(fci)
            except ValueError as exc:
                self.malformed += 1
                log.debug("ignoring malformed transport feedback: %s", exc)
                continue
            self.feedback_packets += 1
            results = self._match(reported)
            if results:
                self._on_feedback(results)
        await self._original_rtcp(data)

    def _match(self, reported: list[tuple[int, float | None]]) -> list[PacketResult]:
        results = []
        for wrapped, arrival in reported:
            sequence = self._unwrap(wrapped)
            sent = self._sent[sequence % HISTORY] if sequence >= 0 else None
            if sent is None or sent.sequence != sequence:
                continue
            results.append(PacketResult(sequence, sent.send_s, sent.size_bytes, arrival))
        return results

    def _unwrap(self, wrapped: int) -> int:
        """The sent packet's full number: the one with these low 16 bits nearest the newest."""
        newest = self._next - 1
        candidate = (newest & ~0xFFFF) | wrapped
        if candidate > newest:
            candidate -= 0x10000
        return candidate
