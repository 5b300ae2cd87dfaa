"""The media benchmark's uplink census, between two real aiortc peers over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport

from bench.uplink_census import IP_UDP_BYTES, SRTP_TAG_BYTES, UplinkCensus, read_census
from tests.cart_agent.conftest import eventually

MESSAGES = 20


@pytest.fixture
async def census() -> AsyncIterator[UplinkCensus]:
    roles: dict[int, str] = {}
    counted = UplinkCensus(lambda: roles)
    counted.install()
    cart, specialist = RTCPeerConnection(), RTCPeerConnection()
    track = AudioStreamTrack()
    sender = cart.addTrack(track)
    roles[sender._ssrc] = "stethoscope"
    channel = cart.createDataChannel("vitals")
    received: list[str] = []
    specialist.on("datachannel", lambda ch: ch.on("message", received.append))
    try:
        await cart.setLocalDescription(await cart.createOffer())
        await specialist.setRemoteDescription(cart.localDescription)
        await specialist.setLocalDescription(await specialist.createAnswer())
        await cart.setRemoteDescription(specialist.localDescription)
        await eventually(lambda: channel.readyState == "open", 10.0, "the channel")
        for number in range(MESSAGES):
            channel.send(f'{{"seq": {number}}}')
        await eventually(lambda: len(received) == MESSAGES, 5.0, "the messages")
        await asyncio.sleep(2.0)  # sender reports come every 0.5-1.5 s
        yield counted
    finally:
        counted.uninstall()
        await cart.close()
        await specialist.close()
        track.stop()


async def test_each_kind_of_uplink_traffic_is_counted_with_its_framing(
    census: UplinkCensus, tmp_path: Path
) -> None:
    figures = census.figures()
    packets = figures["packets_per_s"]
    seconds = figures["seconds"]
    # 20 ms Opus frames: 50 a second, each with IPv4/UDP and its SRTP tag at least.
    assert 40 <= packets["rtp stethoscope"] <= 55, packets
    smallest = (IP_UDP_BYTES + SRTP_TAG_BYTES + 12) * 8 / 1000
    assert figures["kbps"]["rtp stethoscope"] > packets["rtp stethoscope"] * smallest
    assert packets["sctp vitals"] * seconds >= MESSAGES  # and the channel's OPEN
    assert packets["rtcp SR"] * seconds >= 1
    assert "rtp other" not in packets  # every RTP packet was the stethoscope's
    census.save(tmp_path / "census.json")
    assert read_census(tmp_path / "census.json") == figures["kbps"]
    assert read_census(tmp_path / "missing.json") == {}


async def test_uninstall_gives_aiortc_its_own_send_paths_back() -> None:
    original = RTCDtlsTransport._send_rtp
    census = UplinkCensus(dict)
    census.install()
    assert RTCDtlsTransport._send_rtp is not original
    census.uninstall()
    assert RTCDtlsTransport._send_rtp is original
