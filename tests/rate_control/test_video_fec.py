"""ULPFEC in RED for the exam camera: the bytes, checked against an RFC 5109 receiver."""

from __future__ import annotations

import struct

import pytest
from aiortc.rtp import RtpPacket

from telecart.cart_agent.video_fec import (
    PLACEHOLDER,
    FecPayloadTypes,
    UlpfecTap,
    VideoFec,
    fec_group,
    header_length,
    ulpfec_body,
    wrap_red,
)

TYPES = FecPayloadTypes(media=97, red=121, ulpfec=122)
SSRC, RTX_SSRC = 0x1234, 0x5678


def media(sequence: int, size: int, marker: bool = False, timestamp: int = 9000) -> bytes:
    """An RTP packet as the cart sends it: one-byte header extensions (mid, transport-wide
    number), a VP8 payload of `size` bytes."""
    packet = RtpPacket(
        payload_type=TYPES.media,
        marker=int(marker),
        sequence_number=sequence,
        timestamp=timestamp,
        ssrc=SSRC,
        payload=bytes((sequence * 7 + i) % 256 for i in range(size)),
    )
    extension = bytes([0x10 | 0, 0x31, 0x52, 0x01, sequence & 0xFF, 0, 0, 0])  # 2 words
    raw = bytearray(packet.serialize())
    raw[0] |= 0x10
    return bytes(raw[:12]) + b"\xbe\xde\x00\x02" + extension + bytes(raw[12:])


def recover(fec: bytes, received: dict[int, bytes]) -> tuple[int, bytes]:
    """RFC 5109 section 8: the one protected packet missing from `received`, rebuilt."""
    first, second, base, timestamp, length = struct.unpack_from("!BBHIH", fec, 0)
    protection, mask = struct.unpack_from("!HH", fec, 10)
    protected = [(base + i) & 0xFFFF for i in range(16) if mask & (0x8000 >> i)]
    missing = [s for s in protected if s not in received]
    assert len(missing) == 1
    payload = bytearray(fec[14 : 14 + protection])
    for sequence in protected:
        if sequence == missing[0]:
            continue
        packet = received[sequence]
        first ^= packet[0]
        second ^= packet[1]
        timestamp ^= struct.unpack_from("!I", packet, 4)[0]
        length ^= len(packet) - 12
        for i, byte in enumerate(packet[12:]):
            payload[i] ^= byte
    header = struct.pack("!BBHII", 0x80 | (first & 0x3F), second, missing[0], timestamp, SSRC)
    return missing[0], header + bytes(payload[:length])


def test_any_one_lost_packet_of_a_group_comes_back_byte_for_byte() -> None:
    packets = [
        media(65533, 1100, timestamp=9000),
        media(65534, 1180, marker=True, timestamp=9000),
        media(65535, 300, marker=True, timestamp=12000),
        media(0, 1200, timestamp=15000),
        media(1, 17, marker=True, timestamp=15000),
    ]
    fec = ulpfec_body(packets)
    assert struct.unpack_from("!H", fec, 2)[0] == 65533  # SN base, then five mask bits
    assert struct.unpack_from("!H", fec, 12)[0] == 0b1111_1000_0000_0000
    by_sequence = {struct.unpack_from("!H", p, 2)[0]: p for p in packets}
    for lost, original in by_sequence.items():
        received = {s: p for s, p in by_sequence.items() if s != lost}
        assert recover(fec, received) == (lost, original)


def test_red_wraps_after_the_whole_header_and_a_receiver_unwraps_it() -> None:
    packet = media(7, 50, marker=True)
    red = wrap_red(packet, TYPES.red)
    start = header_length(packet)
    assert start == 12 + 12 and red[1] == 0x80 | TYPES.red  # marker kept
    assert red[start] == TYPES.media and red[start + 1 :] == packet[start:]
    # What Chrome's ULPFEC receiver stores: the header with the block's type, no RED byte.
    unwrapped = red[:1] + bytes([(red[1] & 0x80) | red[start]]) + red[2:start] + red[start + 1 :]
    assert unwrapped == packet


@pytest.mark.parametrize(
    ("loss", "rtt_s", "group"),
    [
        (0.0, 0.6, None),
        (0.004, 0.6, None),
        (0.005, 0.6, 12),
        (0.01, 0.6, 10),  # satellite
        (0.02, 0.6, 5),
        (0.1, 0.6, 4),
        (0.02, 0.15, 5),  # rural-3g: a retransmission takes 0.15-0.45 s there
        (0.02, 0.06, None),  # a NACK's repair comes within the jitter buffer
        (0.02, None, None),
    ],
)
def test_fec_comes_on_long_lossy_links_and_its_group_shrinks_as_loss_grows(
    loss: float, rtt_s: float | None, group: int | None
) -> None:
    assert fec_group(loss, rtt_s) == group


def test_fec_stays_on_and_keeps_its_group_through_small_changes_in_loss() -> None:
    assert fec_group(0.0035, 0.6, current=12) == 12  # on until under 0.3 %
    assert fec_group(0.0029, 0.6, current=12) is None
    assert fec_group(0.012, 0.6, current=10) == 10  # 8 is within 2 of 10
    assert fec_group(0.015, 0.6, current=10) == 7
    assert fec_group(0.02, 0.08, current=5) is None  # the round trip fell


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)


def placeholder_packet(sequence: int, fec: VideoFec) -> bytes:
    slot = fec.slot()
    assert slot is not None and slot.startswith(PLACEHOLDER)
    packet = media(sequence, 0, timestamp=21000)
    return packet + slot


def rtx(original: int, sequence: int) -> bytes:
    header = struct.pack("!BBHII", 0x80, 98, sequence, 9000, RTX_SSRC)
    return header + struct.pack("!H", original) + b"repair"


async def test_the_tap_sends_media_in_red_and_fills_each_slot_with_the_groups_fec() -> None:
    transport = FakeTransport()
    fec = VideoFec(SSRC, RTX_SSRC, TYPES)
    tap = UlpfecTap(transport, [fec])
    packets = [media(100 + i, 400 + 100 * i, marker=i % 2 == 1) for i in range(4)]
    assert fec.slot() is None  # FEC off until the loss asks for it
    fec.group = 4
    for packet in packets[:3]:
        await transport._send_rtp(packet)
    assert fec.slot() is None  # three of four
    await transport._send_rtp(packets[3])
    slotted = placeholder_packet(104, fec)
    await transport._send_rtp(slotted)
    await transport._send_rtp(rtx(104, 900))  # Chrome asks for a lost FEC packet: dropped
    await transport._send_rtp(rtx(102, 901))  # and for a media one: sent
    tap.detach()
    assert [p[1] & 0x7F for p in transport.sent] == [TYPES.red] * 5 + [98]
    assert transport.sent[-1] == rtx(102, 901) and tap.dropped_repairs == 1
    sent_fec = transport.sent[4]
    assert len(sent_fec) == len(slotted)  # the size transport-wide numbering recorded
    start = header_length(sent_fec)
    assert sent_fec[start] == TYPES.ulpfec and sent_fec[2:4] == slotted[2:4]
    received = {100 + i: p for i, p in enumerate(packets) if i != 2}
    assert recover(sent_fec[start + 1 :], received) == (102, packets[2])
    assert fec.fec_packets == 1 and fec.media_packets == 4
