"""Notices within seconds that media stopped arriving, and when it comes back.

aiortc reports a peer connection `failed` only when ICE gives up, and with the long-RTT
consent check (ice_consent.py) that takes 30 s of silence: far too late to tell the
specialist. The watchdog polls the connection's statistics and calls the link `lost`
when neither RTP from the other side nor its RTCP reports have moved for `silence_s`
(`first_silence_s` before anything has come), `back` when they move again, and `failed`
when the connection itself is gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aiortc import RTCPeerConnection
from aiortc.stats import RTCInboundRtpStreamStats, RTCRemoteInboundRtpStreamStats

from telecart.cart_agent.lifecycle import cancel_and_wait

log = logging.getLogger(__name__)

LinkState = Literal["connected", "disconnected", "failed"]


@dataclass(frozen=True)
class WatchdogPolicy:
    poll_s: float = 0.25
    # A 1.5 s round trip still delivers something every 20-100 ms: the cart's stethoscope
    # RTP at the specialist; at the cart, the specialist's transport feedback (and its
    # voice and video when it has a camera and microphone).
    silence_s: float = 1.0
    # Until anything has come at all: a call's first answer waits behind the queue its
    # start fills. On `edge` the first feedback came 1.2-1.6 s after the media, the link
    # was called lost and back, and the rate controller, reading that as an outage,
    # restored its 300 kbit/s start and forgot the loss it had begun to count: the start
    # overran the 128 kbit/s link 1 s longer and no exam picture came in the first 10 s.
    first_silence_s: float = 5.0


def activity(stats: dict[str, object]) -> tuple[object, ...]:
    """What changes whenever anything arrives from the other side."""
    inbound = sum(
        s.packetsReceived for s in stats.values() if isinstance(s, RTCInboundRtpStreamStats)
    )
    reports = tuple(
        (s.id, s.packetsLost, s.roundTripTime)
        for s in stats.values()
        if isinstance(s, RTCRemoteInboundRtpStreamStats)
    )
    return (inbound, reports)


class MediaWatchdog:
    """Watches one peer connection; `on_change` gets each new `LinkState`."""

    def __init__(
        self,
        pc: RTCPeerConnection,
        on_change: Callable[[LinkState], None],
        policy: WatchdogPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        extra_activity: Callable[[], object] = lambda: None,
    ) -> None:
        self._pc = pc
        self._extra_activity = extra_activity
        self._on_change = on_change
        self._policy = policy or WatchdogPolicy()
        self._clock = clock
        self.state: LinkState = "connected"
        self.lost_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="media-watchdog")

    def _set(self, state: LinkState) -> None:
        if state != self.state:
            self.state = state
            self.lost_at = self._clock() if state != "connected" else None
            log.info("media %s", state)
            self._on_change(state)

    async def _run(self) -> None:
        policy = self._policy
        last = (activity(await self._pc.getStats()), self._extra_activity())
        moved_at = self._clock()
        silence_s = policy.first_silence_s
        while True:
            await asyncio.sleep(policy.poll_s)
            if self._pc.connectionState in ("failed", "closed"):
                self._set("failed")
                return
            now = (activity(await self._pc.getStats()), self._extra_activity())
            if now != last:
                last, moved_at = now, self._clock()
                silence_s = policy.silence_s
                self._set("connected")
            elif self._clock() - moved_at >= silence_s:
                self._set("disconnected")

    async def close(self) -> None:
        await cancel_and_wait([self._task])
