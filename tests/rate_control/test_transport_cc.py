"""Transport-wide feedback: the wire format, and the tap on a DTLS transport's RTP path."""

from __future__ import annotations

import struct

import pytest
from aiortc import codecs as aiortc_codecs
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from telecart.cart_agent.rate_controller import OtherTraffic, SenderSample
from telecart.cart_agent.retransmission_budget import RetransmissionBudget
from telecart.cart_agent.transport_cc import (
    TRANSPORT_CC_EXTENSION_ID,
    TRANSPORT_CC_URI,
    PacketResult,
    TransportCcTap,
    install_transport_cc,
    parse_transport_feedback,
    transport_feedback_fcis,
)


def fci(base: int, count: int, reference: int, chunks: list[int], deltas: bytes) -> bytes:
    body = struct.pack("!HH", base, count) + reference.to_bytes(3, "big", signed=True) + b"\x00"
    return body + b"".join(struct.pack("!H", c) for c in chunks) + deltas


def test_two_bit_status_vector_with_loss_a_negative_delta_and_a_sequence_wrap() -> None:
    # Symbols small, lost, large, small, small (and two unused): 11 01 00 10 01 01 00 00.
    data = fci(65534, 5, 1, [0xD250], b"\x04" + struct.pack("!h", -8) + b"\x28\x00")
    results = parse_transport_feedback(data)
    assert [s for s, _ in results] == [65534, 65535, 0, 1, 2]
    arrivals = [a for _, a in results]
    assert arrivals[1] is None
    assert arrivals[0] == pytest.approx(0.065)
    assert arrivals[2] == pytest.approx(0.063)
    assert arrivals[3] == pytest.approx(0.073)
    assert arrivals[4] == pytest.approx(0.073)


def test_run_length_and_one_bit_vector_chunks() -> None:
    run = parse_transport_feedback(fci(10, 20, -2, [0x2014], b"\x04" * 20))
    assert [s for s, _ in run] == list(range(10, 30))
    assert run[-1][1] == pytest.approx(-0.128 + 20 * 0.001)
    vector = parse_transport_feedback(fci(0, 14, 0, [0xAAAA], b"\x08" * 7))
    assert [a is not None for _, a in vector] == [True, False] * 7
    assert vector[-2][1] == pytest.approx(0.014)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01",  # shorter than the fixed header
        fci(0, 20, 0, [], b""),  # promises statuses it does not carry
        fci(0, 2, 0, [0x2002], b"\x04"),  # the second delta is missing
        fci(0, 1, 0, [0x6001], b"\x00\x00"),  # status symbol 3 is reserved
    ],
)
def test_malformed_feedback_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_transport_feedback(data)


def rtcp(packet_type: int, fmt: int, body: bytes, padding: int = 0) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    if padding:
        body += b"\x00" * (padding - 1) + bytes([padding])
    first = 0x80 | (0x20 if padding else 0) | fmt
    return struct.pack("!BBH", first, packet_type, len(body) // 4) + body


def test_feedback_is_found_in_a_compound_packet_with_padding() -> None:
    feedback = fci(7, 1, 0, [0x2001], b"\x04")
    compound = rtcp(201, 0, b"\x00\x00\x00\x01") + rtcp(
        205, 15, b"\x00\x00\x00\x01\x00\x00\x00\x02" + feedback, padding=4
    )
    compound += rtcp(205, 1, b"\x00\x00\x00\x01\x00\x00\x00\x02\x00\x05\x00\x00")  # a NACK
    (found,) = transport_feedback_fcis(compound)
    assert parse_transport_feedback(found) == [(7, pytest.approx(0.001))]


class FakeDtlsTransport:
    """Just the three attributes the tap touches, over aiortc's real header map."""

    def __init__(self, negotiated: bool) -> None:
        self._rtp_header_extensions_map = HeaderExtensionsMap()
        extensions = [
            RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid")
        ]
        if negotiated:
            extensions.append(
                RTCRtpHeaderExtensionParameters(id=TRANSPORT_CC_EXTENSION_ID, uri=TRANSPORT_CC_URI)
            )
        self._rtp_header_extensions_map.configure(RTCRtpParameters(headerExtensions=extensions))
        self.sent: list[bytes] = []
        self.rtcp: list[bytes] = []

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        self.rtcp.append(data)


def rtp(sequence: int, payload: bytes = b"x" * 100) -> bytes:
    return RtpPacket(
        payload_type=96, sequence_number=sequence, ssrc=1234, payload=payload
    ).serialize()


async def test_the_tap_numbers_packets_and_matches_feedback_to_them() -> None:
    transport = FakeDtlsTransport(negotiated=True)
    received: list[list[PacketResult]] = []
    clock = iter([1.0, 1.01, 1.02])
    tap = TransportCcTap(transport, received.append, clock=lambda: next(clock))
    for sequence in (500, 501, 502):
        await transport._send_rtp(rtp(sequence))
    numbers = [
        RtpPacket.parse(
            data, transport._rtp_header_extensions_map
        ).extensions.transport_sequence_number
        for data in transport.sent
    ]
    assert numbers == [0, 1, 2]
    assert [RtpPacket.parse(d).sequence_number for d in transport.sent] == [500, 501, 502]
    # 0 received, 1 lost, 2 received 5 ms after 0 (one-bit vector: 1 0 1).
    feedback = fci(0, 3, 10, [0xA800], b"\x04\x14")
    compound = rtcp(205, 15, b"\x00\x00\x00\x09\x00\x00\x04\xd2" + feedback)
    await transport._handle_rtcp_data(compound)
    (results,) = received
    assert [(r.sequence, r.send_s) for r in results] == [(0, 1.0), (1, 1.01), (2, 1.02)]
    assert results[1].arrival_s is None
    assert results[2].arrival_s - results[0].arrival_s == pytest.approx(0.005)  # type: ignore[operator]
    assert results[0].size_bytes > len(transport.sent[0])  # the wire overhead is counted
    assert transport.rtcp == [compound]  # aiortc still gets the packet
    tap.detach()
    await transport._send_rtp(rtp(503))
    assert len(transport.sent) == 4 and transport._send_rtp.__self__ is transport  # type: ignore[attr-defined]


async def test_without_the_extension_in_the_answer_packets_pass_untouched() -> None:
    transport = FakeDtlsTransport(negotiated=False)
    TransportCcTap(transport, lambda results: None)
    data = rtp(9)
    await transport._send_rtp(data)
    assert transport.sent == [data]


async def test_malformed_feedback_is_counted_and_the_packet_still_reaches_aiortc() -> None:
    transport = FakeDtlsTransport(negotiated=True)
    tap = TransportCcTap(transport, lambda results: pytest.fail("no results expected"))
    compound = rtcp(205, 15, b"\x00\x00\x00\x09\x00\x00\x04\xd2" + fci(0, 9, 0, [], b""))
    await transport._handle_rtcp_data(compound)
    assert tap.malformed == 1 and transport.rtcp == [compound]


def test_install_offers_the_extension_and_feedback_once() -> None:
    assert install_transport_cc() and install_transport_cc()
    for kind in ("audio", "video"):
        uris = [e.uri for e in aiortc_codecs.HEADER_EXTENSIONS[kind]]
        assert uris.count(TRANSPORT_CC_URI) == 1
    vp8 = next(c for c in aiortc_codecs.CODECS["video"] if c.mimeType == "video/VP8")
    assert [f.type for f in vp8.rtcpFeedback].count("transport-cc") == 1


async def test_retransmissions_beyond_their_share_of_the_target_are_dropped() -> None:
    transport = FakeDtlsTransport(negotiated=True)
    now = [0.0]
    budget = RetransmissionBudget(
        transport, rtx_ssrcs={777: 1234}, target_bps=lambda: 400_000, clock=lambda: now[0]
    )
    media = rtp(1)
    retransmission = RtpPacket(
        payload_type=97, sequence_number=1, ssrc=777, payload=b"r" * 1000
    ).serialize()
    for _ in range(20):  # a NACK storm: 20 retransmissions at once
        await transport._send_rtp(retransmission)
        await transport._send_rtp(media)
    # 20 % of 400 kbit/s for 0.1 s is 1000 bytes, but the bucket holds three full
    # packets' worth (3900 bytes): three of these 1012-byte retransmissions fit.
    assert budget.passed == 3 and budget.dropped == 17
    assert transport.sent.count(media) == 20  # media is never held back
    now[0] = 0.1  # the share refills 1000 bytes in 0.1 s: one more
    for _ in range(2):
        await transport._send_rtp(retransmission)
    assert budget.passed == 4 and budget.dropped == 18
    now[0] = 1.0  # the bucket refills to its three packets, no more
    for _ in range(4):
        await transport._send_rtp(retransmission)
    assert budget.passed == 7 and budget.dropped == 19
    budget.detach()
    assert transport._send_rtp.__self__ is transport  # type: ignore[attr-defined]


def test_other_traffic_is_the_transport_total_less_the_senders_media() -> None:
    other = OtherTraffic(smoothing=0.0)
    media = [SenderSample("audio", bytes_sent=0, packets_sent=0)]
    other.add(0.0, (0, 0), media)
    # In 1 s: 100 media packets of 100 bytes (+38 framing each on the transport) and
    # 10 data-channel packets of 500 bytes.
    media = [SenderSample("audio", bytes_sent=10_000, packets_sent=100)]
    other.add(1.0, (10_000 + 100 * 38 + 5_000, 110), media)
    assert other.bps == (5_000 + 10 * 28) * 8


def vp8(sequence: int, keyframe: bool, start: bool = True, timestamp: int = 0) -> bytes:
    """A VP8 RTP packet as aiortc sends it: descriptor with a 15-bit picture id."""
    picture_id = [0x80 | (sequence >> 8 & 0x7F), sequence & 0xFF]
    descriptor = bytes([0x90 if start else 0x80, 0x80, *picture_id])
    header = bytes([0x00 if keyframe else 0x01]) + b"\x00" * 9
    packet = RtpPacket(payload_type=96, sequence_number=sequence, ssrc=1234, timestamp=timestamp)
    packet.extensions.transport_sequence_number = 1  # a header extension to skip
    packet.payload = descriptor + header + b"v" * 800
    return packet.serialize(FakeDtlsTransport(negotiated=True)._rtp_header_extensions_map)


def rtx_of(original: int, rtx_sequence: int) -> bytes:
    return RtpPacket(
        payload_type=97,
        sequence_number=rtx_sequence,
        ssrc=777,
        payload=original.to_bytes(2, "big") + b"r" * 800,
    ).serialize()


async def test_retransmissions_of_frames_before_the_newest_keyframe_are_dropped_free() -> None:
    transport = FakeDtlsTransport(negotiated=True)
    budget = RetransmissionBudget(
        transport, {777: 1234}, lambda: 400_000, video_ssrcs=[1234], clock=lambda: 0.0
    )
    for sequence in range(65530, 65536):  # the old, big picture's delta frames
        await transport._send_rtp(vp8(sequence, keyframe=False))
    await transport._send_rtp(vp8(0, keyframe=True))  # the new size's keyframe (wrapped)
    await transport._send_rtp(vp8(1, keyframe=True, start=False))
    # The receiver NACKs the old frames first, then a packet of the keyframe.
    for original, rtx_sequence in ((65531, 10), (65535, 11), (1, 12)):
        await transport._send_rtp(rtx_of(original, rtx_sequence))
    assert budget.stale == 2 and budget.passed == 1 and budget.dropped == 0
    assert RtpPacket.parse(transport.sent[-1]).sequence_number == 12  # the keyframe's repair


async def test_the_newest_keyframes_repairs_go_ahead_of_the_cap_twice_each() -> None:
    transport = FakeDtlsTransport(negotiated=True)
    now = [0.0]
    budget = RetransmissionBudget(
        transport, {777: 1234}, lambda: 400_000, video_ssrcs=[1234], clock=lambda: now[0]
    )
    # A keyframe of three packets (one timestamp), then two delta frames.
    await transport._send_rtp(vp8(100, keyframe=True, timestamp=9000))
    for sequence in (101, 102):
        await transport._send_rtp(vp8(sequence, keyframe=True, start=False, timestamp=9000))
    await transport._send_rtp(vp8(103, keyframe=False, timestamp=12000))
    await transport._send_rtp(vp8(104, keyframe=False, timestamp=15000))
    # Delta frames' repairs (814 bytes) spend the 3900-byte bucket: the fifth finds it empty.
    for rtx_sequence in range(1, 6):
        await transport._send_rtp(rtx_of(103 + rtx_sequence % 2, rtx_sequence))
    assert budget.passed == 4 and budget.dropped == 1
    # The keyframe's three packets pass all the same, each twice, not a third time.
    for rtx_sequence, original in enumerate((100, 101, 102, 100, 101, 102, 101), start=6):
        await transport._send_rtp(rtx_of(original, rtx_sequence))
    assert budget.keyframe_repairs == 6 and budget.dropped == 2 and budget.passed == 10
    # They left the bucket 4240 bytes in debt: 0.5 s refills 5000, short of one repair.
    now[0] = 0.5
    await transport._send_rtp(rtx_of(104, 13))
    assert budget.dropped == 3
    now[0] = 0.7
    await transport._send_rtp(rtx_of(104, 14))
    assert budget.passed == 11
