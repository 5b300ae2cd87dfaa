"""A cap on retransmissions, so NACKs cannot flood a link that is already full.

aiortc answers every NACK at once with an RTX packet. When a link steps down from 2 Mbit/s
to 300 kbit/s the receiver NACKs hundreds of packets, their retransmissions are lost in the
same full queue and NACKed again: on the `step` profile 91 % of what the cart sent after
cutting its rate was lost for seconds. libwebrtc's pacer keeps retransmissions inside
the target rate; here a token bucket lets them take at most `share` of the current
target (with a short burst) and drops the rest before they reach the wire. A dropped
retransmission costs nothing a keyframe request will not repair.

`RetransmissionBudget` wraps one `RTCDtlsTransport._send_rtp`, like `TransportCcTap`,
and must be installed after it, so a dropped packet is never numbered.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from aiortc.rtp import is_rtcp


class RetransmissionBudget:
    """Drops RTX packets beyond `share` of the target rate (bit/s from `target_bps()`)."""

    def __init__(
        self,
        transport: Any,
        rtx_ssrcs: Collection[int],
        target_bps: Callable[[], float],
        *,
        share: float = 0.2,
        burst_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._rtx_ssrcs = frozenset(rtx_ssrcs)
        self._target_bps = target_bps
        self._share = share
        self._burst_s = burst_s
        self._clock = clock
        self._tokens = 0.0  # bytes
        self._at: float | None = None
        self.dropped = 0
        self.passed = 0
        self.passed_bytes = 0  # as handed to SRTP (the transport adds its 10-byte tag)
        self._original: Callable[[bytes], Awaitable[None]] = transport._send_rtp
        transport._send_rtp = self._send_rtp

    def detach(self) -> None:
        self._transport._send_rtp = self._original

    async def _send_rtp(self, data: bytes) -> None:
        if len(data) >= 12 and not is_rtcp(data):
            ssrc = int.from_bytes(data[8:12], "big")
            if ssrc in self._rtx_ssrcs and not self._take(len(data)):
                self.dropped += 1
                return
            if ssrc in self._rtx_ssrcs:
                self.passed += 1
                self.passed_bytes += len(data)
        await self._original(data)

    def _take(self, size: int) -> bool:
        now = self._clock()
        rate = self._share * self._target_bps() / 8  # bytes per second
        burst = max(rate * self._burst_s, 1500.0)
        elapsed = burst / rate if self._at is None or rate <= 0 else now - self._at
        self._at = now
        self._tokens = min(self._tokens + rate * elapsed, burst)
        if self._tokens < size:
            return False
        self._tokens -= size
        return True
