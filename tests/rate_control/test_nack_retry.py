"""A lost retransmission no longer freezes the picture: two aiortc peers in-process, the
sender's transport drops one video packet and the first retransmission of it (or every
retransmission of it), and the receiver's frames are timed."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
)
from aiortc.rtp import RTCP_RTPFB_NACK, RtcpRtpfbPacket, RtpPacket, is_rtcp
from av import VideoFrame

from telecart.cart_agent.nack_retry import (
    ReceiverRecovery,
    RetryPolicy,
    install_nack_retry,
    recovery_of,
    seam_present,
    uninstall_nack_retry,
)

from .keyframe_storm import FPS, moving_frames

FAST = RetryPolicy(first_rtt_s=0.2, give_up_s=1.0)


class MovingVideo(MediaStreamTrack):
    kind = "video"

    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self._frames = moving_frames(120.0, width, height)
        self._start = time.monotonic()
        self._count = 0

    async def recv(self) -> VideoFrame:
        self._count += 1
        await asyncio.sleep(max(0.0, self._start + self._count / FPS - time.monotonic()))
        return next(self._frames)


@dataclass
class Dropper:
    """Drops the next video packet once armed, and its first `rtx_drops` retransmissions."""

    sender: RTCRtpSender
    rtx_drops: float
    armed_at: float | None = None
    target: int | None = None
    retransmissions: list[bool] = field(default_factory=list)  # True: dropped
    sent: list[int] = field(default_factory=list)  # video sequence numbers, first sending
    resent: list[int] = field(default_factory=list)  # original sequence numbers of RTX

    def install(self) -> None:
        transport = self.sender.transport
        send: Callable[[bytes], Awaitable[None]] = transport._send_rtp

        async def filtered(data: bytes) -> None:
            if not is_rtcp(data) and self._drop(RtpPacket.parse(data)):
                return
            await send(data)

        transport._send_rtp = filtered

    def _drop(self, packet: RtpPacket) -> bool:
        if packet.ssrc == self.sender._ssrc:
            self.sent.append(packet.sequence_number)
        elif packet.ssrc == self.sender._rtx_ssrc and len(packet.payload) >= 2:
            self.resent.append(int.from_bytes(packet.payload[:2], "big"))
        if self.armed_at is None:
            return False
        if packet.ssrc == self.sender._ssrc and self.target is None:
            self.target = packet.sequence_number
            return True
        if packet.ssrc == self.sender._rtx_ssrc and self.target is not None:
            if int.from_bytes(packet.payload[:2], "big") == self.target:
                drop = len([d for d in self.retransmissions if d]) < self.rtx_drops
                self.retransmissions.append(drop)
                return drop
        return False


@dataclass
class Call:
    receiver_pc: RTCPeerConnection
    dropper: Dropper
    arrivals: list[float]

    def longest_gap_since(self, t0: float) -> float:
        times = [t0, *(t for t in self.arrivals if t > t0), time.monotonic()]
        return max(b - a for a, b in itertools.pairwise(times))

    def recovery(self) -> ReceiverRecovery:
        found = recovery_of(self.receiver_pc.getReceivers()[-1])
        assert found is not None
        return found


@pytest.fixture
async def make_call() -> AsyncIterator[Callable[..., Awaitable[Call]]]:
    pcs: list[RTCPeerConnection] = []
    readers: list[asyncio.Task[None]] = []
    assert install_nack_retry(FAST)

    async def start(rtx_drops: float, size: tuple[int, int] = (160, 120), tracks: int = 1) -> Call:
        config = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        cart, specialist = RTCPeerConnection(config), RTCPeerConnection(config)
        pcs.extend([cart, specialist])
        senders = [cart.addTrack(MovingVideo(*size)) for _ in range(tracks)]
        sender = senders[-1]  # with two, the second track's packet is lost
        arrivals: list[float] = []

        async def read(track: MediaStreamTrack) -> None:
            while True:
                await track.recv()
                arrivals.append(time.monotonic())

        specialist.on("track", lambda track: readers.append(asyncio.create_task(read(track))))
        await cart.setLocalDescription(await cart.createOffer())
        await specialist.setRemoteDescription(cart.localDescription)
        await specialist.setLocalDescription(await specialist.createAnswer())
        await cart.setRemoteDescription(specialist.localDescription)
        dropper = Dropper(sender, rtx_drops)
        dropper.install()
        for _ in range(100):
            if len(arrivals) >= 10 * tracks:
                break
            await asyncio.sleep(0.1)
        assert len(arrivals) >= 10 * tracks, "the call never started"
        return Call(specialist, dropper, arrivals)

    try:
        yield start
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for pc in pcs:
            await pc.close()
        uninstall_nack_retry()


async def test_a_lost_retransmission_is_asked_for_again(
    make_call: Callable[..., Awaitable[Call]],
) -> None:
    call = await make_call(1)
    t0 = call.dropper.armed_at = time.monotonic()
    await asyncio.sleep(4.0)
    assert call.dropper.retransmissions[:2] == [True, False]  # asked twice, got it 2nd time
    recovery = call.recovery()
    assert recovery.retried >= 1 and recovery.given_up == 0, recovery
    assert recovery.recovered >= 1 and recovery.rtt_s > 0, recovery
    # Stock aiortc waits for 512 newer packets (many seconds here); one retry takes
    # two loopback round trips after the retry interval.
    assert call.longest_gap_since(t0) < 1.0


async def test_retransmissions_reach_the_second_of_two_bundled_video_tracks(
    make_call: Callable[..., Awaitable[Call]],
) -> None:
    call = await make_call(0, tracks=2)
    t0 = call.dropper.armed_at = time.monotonic()
    await asyncio.sleep(3.0)
    assert call.dropper.retransmissions[:1] == [False]
    recovery = call.recovery()
    # aiortc alone discards it: RTX shares one payload type between the two receivers.
    assert recovery.recovered == 1 and recovery.given_up == 0, recovery
    assert call.longest_gap_since(t0) < 1.0


async def test_a_packet_that_never_comes_is_given_up_for_a_keyframe(
    make_call: Callable[..., Awaitable[Call]],
) -> None:
    call = await make_call(float("inf"))
    t0 = call.dropper.armed_at = time.monotonic()
    await asyncio.sleep(5.0)
    assert len(call.dropper.retransmissions) >= 2 and all(call.dropper.retransmissions)
    assert call.recovery().given_up == 1
    assert call.longest_gap_since(t0) < FAST.give_up_s + 1.0


async def test_the_sender_still_answers_a_nack_for_a_packet_500_packets_old(
    make_call: Callable[..., Awaitable[Call]],
) -> None:
    call = await make_call(0, (640, 480))
    for _ in range(100):
        if len(call.dropper.sent) > 520:
            break
        await asyncio.sleep(0.1)
    old = call.dropper.sent[-501]
    sender = call.dropper.sender
    assert sender._rtx_ssrc is not None
    nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=sender._ssrc, lost=[old])
    await sender._handle_rtcp_packet(nack)  # as a NACK from the receiver arrives
    assert old in call.dropper.resent  # aiortc alone keeps 128 packets


def test_retries_follow_the_measured_retransmission_time() -> None:
    recovery = ReceiverRecovery(RetryPolicy(first_rtt_s=1.0, retry_rtts=1.25, give_up_s=1.0))
    assert recovery.after_packet({10}, 11, now=0.0) == ([], [])
    assert recovery.after_packet({10}, 12, now=1.0) == ([], [])  # 1.0 s < 1.25 s
    assert recovery.after_packet({10}, 13, now=1.3) == ([10], [])
    # Answered after two requests: timed from the first, which over-reads, never under.
    assert recovery.after_packet(set(), 10, now=1.5) == ([], [])
    assert recovery.rtt_s == pytest.approx(1.5) and recovery.recovered == 1
    recovery.after_packet({20}, 21, now=2.0)
    recovery.after_packet(set(), 20, now=2.4)
    assert recovery.rtt_s == pytest.approx(0.875 * 1.5 + 0.125 * 0.4)
    rtt = recovery.rtt_s
    recovery.after_packet({30}, 31, now=3.0)
    assert recovery.after_packet({30}, 32, now=3.0 + 1.2 * rtt) == ([], [])
    assert recovery.after_packet({30}, 33, now=3.0 + 1.3 * rtt) == ([30], [])


def test_a_packet_is_given_up_after_three_retransmission_times() -> None:
    recovery = ReceiverRecovery(RetryPolicy(first_rtt_s=1.0, give_up_rtts=3.0, give_up_s=1.0))
    recovery.after_packet({5, 6}, 7, now=0.0)
    # aiortc forgot 6 (128 packets behind): still ours to ask for, and then to give up.
    assert recovery.after_packet({5}, 8, now=1.3) == ([5, 6], [])
    assert recovery.after_packet(set(), 9, now=2.5) == ([], [])
    _, given_up = recovery.after_packet(set(), 10, now=3.0)
    assert sorted(given_up) == [5, 6] and recovery.given_up == 2 and not recovery.requests


def test_aiortc_still_has_the_receiver_seam() -> None:
    assert seam_present()
