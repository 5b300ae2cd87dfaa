"""When the cart offers again on a fresh peer connection, and what a session keeps meanwhile.

aiortc has no ICE restart, so the cart renegotiates: a new `RTCPeerConnection` and a new
offer on the same session, which the specialist follows. A connection that merely went
quiet is kept: an outage shorter than the consent timeout (30 s, ice_consent.py) heals by
itself the moment the link returns, faster than any renegotiation. When the signalling
comes back after a drop, the agent checks whether media flows again and offers at once
if not (`CartAgent._rejoin`); when the connection failed, it offers at once too. This
watcher covers the rest: an offer unanswered for `answer_timeout_s`, the specialist
reporting loss, or media silent for `renegotiate_after_s` while the signalling stayed up
(a path that lost UDP only), with growing delays while the link stays down. The
session's unacknowledged vitals and stills (`SessionOutbox`) outlive every peer
connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from telecart.cart_agent.lifecycle import cancel_and_wait
from telecart.cart_agent.outage_buffer import BufferLimits, OutageBuffer
from telecart.cart_agent.stills_outbox import StillsOutbox, StillUploader
from telecart.cart_agent.stills_spool import StillsSpool
from telecart.cart_agent.vitals_channel import VitalsFeed, VitalsLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconnectPolicy:
    renegotiate_after_s: float = 20.0
    answer_timeout_s: float = 15.0
    retry_base_s: float = 3.0
    retry_cap_s: float = 20.0
    poll_s: float = 0.25


class MediaLink(Protocol):
    """What the reconnector reads from the consultation in progress."""

    session_id: str

    @property
    def link_state(self) -> str: ...

    def lost_for(self) -> float: ...

    def unanswered_for(self) -> float: ...

    @property
    def peer_reported_loss(self) -> bool: ...


class SessionOutbox:
    """One session's vitals and stills not yet acknowledged by the specialist."""

    def __init__(
        self,
        session_id: str,
        data_dir: Path,
        feed: VitalsFeed,
        upload: StillUploader,
        limits: BufferLimits | None = None,
    ) -> None:
        self.session_id = session_id
        folder = data_dir / "sessions" / session_id
        self.vitals = VitalsLog(feed, OutageBuffer(folder / "vitals", limits))
        self.stills = StillsOutbox(upload, StillsSpool(folder / "stills"))

    async def start(self) -> None:
        await self.vitals.start()
        await self.stills.restore()

    async def close(self) -> None:
        await self.vitals.close()
        await self.stills.close()


def offer_again_reason(
    link: MediaLink, since_last_offer_s: float, attempt: int, policy: ReconnectPolicy
) -> str | None:
    """Why the cart should offer again now, or None."""
    wait = min(policy.retry_cap_s, policy.retry_base_s * 2 ** max(attempt - 1, 0))
    if attempt and since_last_offer_s < wait:
        return None
    unanswered = link.unanswered_for()
    if unanswered >= policy.answer_timeout_s:
        return f"the specialist's screen did not answer the call within {unanswered:.0f} s"
    if link.link_state == "disconnected" and link.peer_reported_loss:
        return "the specialist lost the media while it still reached the cart"
    if link.link_state == "disconnected" and link.lost_for() >= policy.renegotiate_after_s:
        return f"no media from the specialist for {link.lost_for():.0f} s"
    return None


class MediaReconnector:
    """Watches the consultation in progress and offers again when `offer_again_reason` says."""

    def __init__(
        self,
        current: Callable[[], MediaLink | None],
        can_signal: Callable[[], bool],
        offer_again: Callable[[str], Awaitable[None]],
        policy: ReconnectPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._current = current
        self._can_signal = can_signal
        self._offer_again = offer_again
        self.policy = policy or ReconnectPolicy()
        self._clock = clock
        self._last_offer = clock()
        self._attempt = 0
        self.renegotiations = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="media-reconnector")

    def offered(self) -> None:
        """A new offer went out (for any reason)."""
        self._last_offer = self._clock()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.policy.poll_s)
            link = self._current()
            if link is None or not self._can_signal():
                continue
            if link.link_state == "connected":
                self._attempt = 0
                continue
            since = self._clock() - self._last_offer
            reason = offer_again_reason(link, since, self._attempt, self.policy)
            if reason is None:
                continue
            self._attempt += 1
            self.renegotiations += 1
            log.warning("session %s: %s; offering again (attempt %d)",
                        link.session_id, reason, self._attempt)  # fmt: skip
            self.offered()
            try:
                await self._offer_again(link.session_id)
            except Exception as exc:
                log.warning("session %s: new offer failed: %s", link.session_id, exc)

    async def close(self) -> None:
        await cancel_and_wait([self._task])
