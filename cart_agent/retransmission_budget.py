"""A cap on retransmissions, so NACKs cannot flood a link that is already full.

aiortc answers every NACK at once with an RTX packet. When a link steps down from 2 Mbit/s
to 300 kbit/s the receiver NACKs hundreds of packets, their retransmissions are lost in the
same full queue and NACKed again: on the `step` profile 91 % of what the cart sent after
cutting its rate was lost for seconds. libwebrtc's pacer keeps retransmissions inside
the target rate; here a token bucket lets them take at most `share` of the current
target (with a short burst) and drops the rest before they reach the wire. A dropped
retransmission costs nothing a keyframe request will not repair.

Retransmissions of video sent before the stream's newest keyframe are dropped before
they cost a token, and those of the newest keyframe itself go first, borrowing tokens
(`stale_retransmissions.py`).

The bucket holds at least `MIN_BURST_BYTES`, three full video packets: a bad spell on a
bursty link loses two or three packets at once, and one NACK asks for them all. With a
bucket of one packet (0.1 s of the share below 600 kbit/s) the others were dropped, 14
in a `bursty` run, and asked for again a round trip later: the exam picture stalled in 5
of 7 runs, 0.6-2.1 s in all, where Chrome (whose pacer delays repairs) stalled none.
With three packets: 0-3 dropped per run and no exam stall in 6 of 9 runs; the others
stalled at probes into the full link, and once (238 dropped) when the link itself was
overrun (docs/adaptation.md, session 11).

`RetransmissionBudget` wraps one `RTCDtlsTransport._send_rtp`, like `TransportCcTap`,
and must be installed after it, so a dropped packet is never numbered.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from typing import Any

from aiortc.rtp import is_rtcp

from .stale_retransmissions import KeyframeMarks, rtx_original_sequence

MIN_BURST_BYTES = 3 * 1300  # a 1200-byte payload with its RTX header and SRTP tag


class RetransmissionBudget:
    """Drops RTX packets beyond `share` of the target rate (bit/s from `target_bps()`),
    and those of video a newer keyframe replaced. `rtx_ssrcs` maps each RTX stream to
    the stream it repairs; `video_ssrcs` are the VP8 streams among those. Repairs of
    a video stream's newest keyframe pass first and leave the bucket in debt."""

    def __init__(
        self,
        transport: Any,
        rtx_ssrcs: Mapping[int, int],
        target_bps: Callable[[], float],
        *,
        video_ssrcs: Collection[int] = (),
        share: float = 0.2,
        burst_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._rtx_ssrcs = dict(rtx_ssrcs)
        self._keyframes = KeyframeMarks(frozenset(video_ssrcs))
        self._target_bps = target_bps
        self._share = share
        self._burst_s = burst_s
        self._clock = clock
        self._tokens = 0.0  # bytes
        self._at: float | None = None
        self.dropped = 0
        self.stale = 0  # dropped as older than their stream's newest keyframe
        self.keyframe_repairs = 0  # passed first, as repairs of the newest keyframe
        self.passed = 0
        self.probes = 0  # passed outside the share (`unmetered`)
        self._unmetered = False
        self.passed_bytes = 0  # as handed to SRTP (the transport adds its 10-byte tag)
        self._original: Callable[[bytes], Awaitable[None]] = transport._send_rtp
        transport._send_rtp = self._send_rtp

    def detach(self) -> None:
        self._transport._send_rtp = self._original

    async def _send_rtp(self, data: bytes) -> None:
        if len(data) >= 12 and not is_rtcp(data):
            ssrc = int.from_bytes(data[8:12], "big")
            repairs = self._rtx_ssrcs.get(ssrc)
            if repairs is None:
                self._keyframes.see(data)
            elif self._unmetered:
                self._unmetered = False  # the first one only: a NACK's may follow
                self.probes += 1
            elif self._keyframes.is_stale(repairs, original := rtx_original_sequence(data)):
                self.stale += 1
                return
            elif self._keyframes.repairs_keyframe(repairs, original):
                self.keyframe_repairs += 1
                self._take(len(data), borrow=True)
            elif not self._take(len(data)):
                self.dropped += 1
                return
            if repairs is not None:
                self.passed += 1
                self.passed_bytes += len(data)
        await self._original(data)

    @contextlib.contextmanager
    def unmetered(self) -> Iterator[None]:
        """The first retransmission sent inside passes outside the share: a probe packet
        (`prober.py`), sent to measure the link, not to repair a loss. aiortc hands a
        retransmission to the transport before it first pauses, so it is that one."""
        self._unmetered = True
        try:
            yield
        finally:
            self._unmetered = False

    def _take(self, size: int, *, borrow: bool = False) -> bool:
        """Spend `size` bytes of tokens if the bucket holds them, or always if `borrow`."""
        now = self._clock()
        rate = self._share * self._target_bps() / 8  # bytes per second
        burst = max(rate * self._burst_s, MIN_BURST_BYTES)
        elapsed = burst / rate if self._at is None or rate <= 0 else now - self._at
        self._at = now
        self._tokens = min(self._tokens + rate * elapsed, burst)
        if self._tokens < size and not borrow:
            return False
        self._tokens -= size
        return True
