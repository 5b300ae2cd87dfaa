"""Retransmissions that work on a long round trip, on both ends of a video stream.

aiortc 1.x's sender keeps its last 128 RTP packets for retransmission: 1.3 s of video at
1 Mbit/s, less than a NACK takes to come back on `satellite` (1.5 s round trip plus the
queue), so NACKs there went unanswered. `install_nack_retry()` makes it keep
`HISTORY_PACKETS` (libwebrtc keeps up to 9600, by time).

aiortc 1.x's video receiver NACKs a missing packet once, when the gap is first seen, and
its jitter buffer then waits at the hole until 512 newer packets have arrived. When that
one NACK or the retransmission it asks for is lost, the picture freezes: on `satellite`
(1.5 s round trip, 1 % loss each way) for 13 s on the exam camera and 40 s on the room
camera (bench/faults.py long-rtt). The cart receives the specialist's camera the same way.
libwebrtc's NackRequester instead asks again every round trip and, when a packet stays
lost, drops it and asks for a keyframe.

aiortc 1.x routes a bundled RTP packet by SSRC, else by payload type when only one
receiver has it; it never learns a receiver's RTX SSRC, so with two video tracks in one
bundle (the cart sends room and exam cameras) every retransmission was discarded at the
receiver. `install_nack_retry()` registers each receiver's RTX SSRC as well.

On the receiving side `install_nack_retry()` wraps `RTCRtpReceiver._handle_rtp_packet`
(aiortc is not forked: the method and the history size are swapped behind a shape check).
After each video packet the receiver asks again for the packets still missing whose last
request is older than `RetryPolicy.retry_rtts` times the measured retransmission time; a
packet still missing after `give_up_s` (or `give_up_rtts` retransmission times) is given
up: the jitter buffer drops the frame it belonged to and a PLI asks for a keyframe.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import NackGenerator, RTCRtpReceiver
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

log = logging.getLogger(__name__)

Handler = Callable[[RTCRtpReceiver, RtpPacket, int], Coroutine[Any, Any, None]]
Register = Callable[[RTCDtlsTransport, Any, RTCRtpReceiveParameters], None]
_NACKS: Final = "_RTCRtpReceiver__nack_generator"
_JITTER: Final = "_RTCRtpReceiver__jitter_buffer"
_RTX_SSRC: Final = "_RTCRtpReceiver__rtx_ssrc"
# Packets a sender keeps to answer NACKs (and a receiver keeps asking for): 7 s of video at
# 1.5 Mbit/s, 10 s at 1 Mbit/s; at most about 1.3 MB per sender.
HISTORY_PACKETS: Final = 1024
_HISTORY_MODULES: Final = (aiortc.rtcrtpsender, aiortc.rtcrtpreceiver)
_STOCK_HISTORY: Final = 128


@dataclass(frozen=True)
class RetryPolicy:
    first_rtt_s: float = 1.0  # retransmission time assumed until one is measured
    retry_rtts: float = 1.25  # ask again after this many retransmission times
    min_retry_s: float = 0.05
    give_up_rtts: float = 3.0  # a packet missing this long is given up ...
    give_up_s: float = 1.0  # ... but never sooner than this


@dataclass
class _Request:
    first_at: float
    last_at: float
    count: int = 1


@dataclass
class ReceiverRecovery:
    """One video receiver's outstanding NACKs, retries and give-ups."""

    policy: RetryPolicy
    rtt_s: float = 0.0  # smoothed time from a NACK to its retransmission (0: none yet)
    requests: dict[int, _Request] = field(default_factory=dict)
    retried: int = 0  # NACK requests sent again
    recovered: int = 0  # missing packets that arrived
    given_up: int = 0

    @property
    def retransmission_s(self) -> float:
        return self.rtt_s or self.policy.first_rtt_s

    def after_packet(
        self, missing: set[int], arrived: int, now: float
    ) -> tuple[list[int], list[int]]:
        """Account for one packet (sequence `arrived`) given aiortc's missing set after
        it; returns (sequences to ask for again, sequences given up)."""
        for seq in missing - self.requests.keys():
            self.requests[seq] = _Request(now, now)  # aiortc has just asked for it
        retry, give_up = [], []
        for seq, request in list(self.requests.items()):
            if seq not in missing:
                if seq == arrived:
                    del self.requests[seq]
                    self.recovered += 1
                    # From the first request, even when asked again meanwhile: an answer
                    # to a retry reads long (later retries, never sooner), but with Karn's
                    # rule a round trip over the first guess would never be measured.
                    self._sample(now - request.first_at)
                    continue
                # Else aiortc stopped tracking it (128 packets behind), but its
                # retransmission may still be on the way: it stays ours to ask for.
            limit = max(self.policy.give_up_s, self.policy.give_up_rtts * self.retransmission_s)
            if now - request.first_at >= limit:
                del self.requests[seq]
                give_up.append(seq)
            elif now - request.last_at >= max(
                self.policy.min_retry_s, self.policy.retry_rtts * self.retransmission_s
            ):
                request.last_at = now
                request.count += 1
                retry.append(seq)
        self.retried += len(retry)
        self.given_up += len(give_up)
        return sorted(retry), give_up

    def _sample(self, seconds: float) -> None:
        self.rtt_s = seconds if not self.rtt_s else 0.875 * self.rtt_s + 0.125 * seconds


_recoveries: weakref.WeakKeyDictionary[RTCRtpReceiver, ReceiverRecovery] = (
    weakref.WeakKeyDictionary()
)


def recovery_of(receiver: RTCRtpReceiver) -> ReceiverRecovery | None:
    """The receiver's recovery state (None: not a video receiver, or not installed)."""
    return _recoveries.get(receiver)


def seam_present() -> bool:
    """aiortc still has the private pieces this module works with."""
    names = RTCRtpReceiver.__init__.__code__.co_names
    return (
        all(name in names for name in (_NACKS, _JITTER, _RTX_SSRC))
        and hasattr(RTCRtpReceiver, "_send_rtcp_nack")
        and hasattr(RTCRtpReceiver, "_send_rtcp_pli")
        and isinstance(getattr(NackGenerator(), "missing", None), set)
        and all(isinstance(getattr(m, "RTP_HISTORY_SIZE", None), int) for m in _HISTORY_MODULES)
        and hasattr(RTCDtlsTransport, "_register_rtp_receiver")
        and isinstance(getattr(RtpRouter(), "ssrc_table", None), dict)
    )


def _original_sequence(receiver: RTCRtpReceiver, packet: RtpPacket) -> tuple[int, int]:
    """(media SSRC, sequence number) of a packet, looking inside an RTX wrapper."""
    rtx: dict[int, int] = getattr(receiver, _RTX_SSRC)
    original = rtx.get(packet.ssrc)
    if original is not None and len(packet.payload) >= 2:
        return original, int.from_bytes(packet.payload[:2], "big")
    return packet.ssrc, packet.sequence_number


def _unblock(receiver: RTCRtpReceiver, seqs: list[int]) -> bool:
    """Drop the frames of given-up packets the jitter buffer is waiting at."""
    jitter = getattr(receiver, _JITTER)
    origin = jitter._origin
    if origin is None:
        return False
    ahead = [uint16_add(seq, -origin) for seq in seqs]
    ahead = [n for n in ahead if n < jitter.capacity]
    if not ahead:
        return False
    jitter.smart_remove(max(ahead) + 1)
    return True


def _recovering_handler(
    original: Handler, policy: RetryPolicy, clock: Callable[[], float]
) -> Handler:
    async def handle(self: RTCRtpReceiver, packet: RtpPacket, arrival_time_ms: int) -> None:
        await original(self, packet, arrival_time_ms)
        nacks: NackGenerator | None = getattr(self, _NACKS, None)
        if nacks is None or not self._enabled:
            return
        recovery = _recoveries.get(self)
        if recovery is None:
            recovery = _recoveries[self] = ReceiverRecovery(policy)
        ssrc, seq = _original_sequence(self, packet)
        retry, give_up = recovery.after_packet(nacks.missing, seq, clock())
        if retry:
            await self._send_rtcp_nack(ssrc, retry)
        if give_up:
            nacks.missing.difference_update(give_up)
            if _unblock(self, give_up):
                log.info(
                    "video packets %s lost after retries (retransmission time %.2f s): "
                    "keyframe requested", give_up, recovery.retransmission_s,
                )  # fmt: skip
                await self._send_rtcp_pli(ssrc)

    handle._telecart_stock = original  # type: ignore[attr-defined]
    return handle


def _routing_rtx(original: Register) -> Register:
    def register(
        self: RTCDtlsTransport, receiver: Any, parameters: RTCRtpReceiveParameters
    ) -> None:
        original(self, receiver, parameters)
        for encoding in parameters.encodings:
            if encoding.rtx is not None:
                self._rtp_router.ssrc_table[encoding.rtx.ssrc] = receiver

    register._telecart_stock = original  # type: ignore[attr-defined]
    return register


def install_nack_retry(
    policy: RetryPolicy | None = None, clock: Callable[[], float] = time.monotonic
) -> bool:
    """Make aiortc's video receivers ask again for lost packets (idempotent).

    Returns False, leaving aiortc as it is, if aiortc has changed shape.
    """
    if not seam_present():
        log.error("aiortc's receiver changed shape: lost video packets are asked for once")
        return False
    for module in _HISTORY_MODULES:
        module.RTP_HISTORY_SIZE = max(module.RTP_HISTORY_SIZE, HISTORY_PACKETS)  # type: ignore[attr-defined]
    current = RTCRtpReceiver._handle_rtp_packet
    stock = getattr(current, "_telecart_stock", current)
    RTCRtpReceiver._handle_rtp_packet = _recovering_handler(  # type: ignore[method-assign,assignment]
        stock, policy or RetryPolicy(), clock
    )
    registering = RTCDtlsTransport._register_rtp_receiver
    stock_register = getattr(registering, "_telecart_stock", registering)
    RTCDtlsTransport._register_rtp_receiver = _routing_rtx(stock_register)  # type: ignore[method-assign,assignment]
    return True


def uninstall_nack_retry() -> None:
    """Put aiortc's own receiver and history back (tests)."""
    for module in _HISTORY_MODULES:
        module.RTP_HISTORY_SIZE = _STOCK_HISTORY  # type: ignore[attr-defined]
    stock = getattr(RTCRtpReceiver._handle_rtp_packet, "_telecart_stock", None)
    if stock is not None:
        RTCRtpReceiver._handle_rtp_packet = stock  # type: ignore[method-assign]
    register = getattr(RTCDtlsTransport._register_rtp_receiver, "_telecart_stock", None)
    if register is not None:
        RTCDtlsTransport._register_rtp_receiver = register  # type: ignore[method-assign]
