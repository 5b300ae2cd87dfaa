"""The Python specialist as the page must behave for issue 10: acknowledges vitals and
stills, drops duplicates, reports media loss, reconnects its signalling, follows offers."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
from aiortc import RTCDataChannel

from telecart.cart_agent.media_watchdog import LinkState, MediaWatchdog
from telecart.signalling.client import ConnectionClosed, SignallingClient
from telecart.signalling.messages import MediaState
from tests.cart_agent.specialist_peer import PythonSpecialist

log = logging.getLogger(__name__)


class ReliableSpecialist(PythonSpecialist):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vitals_seen = 0  # highest seq held
        self.duplicates = 0
        self.gaps = 0
        self.still_ids: set[str] = set()
        self.link_events: list[tuple[float, LinkState]] = []
        self.offers = 0
        self._watchdog: MediaWatchdog | None = None
        self._vitals_channel: RTCDataChannel | None = None
        self._stills_channel: RTCDataChannel | None = None

    async def _pump(self) -> None:
        while True:
            assert self.client is not None
            try:
                message = await self.client.receive()
            except (ConnectionClosed, aiohttp.ClientError, ConnectionError):
                await self._reconnect()
                continue
            await self._handle(message)

    async def _reconnect(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            client = SignallingClient(self.server.ws_url, role="specialist", cookies=self.cookies)
            try:
                welcome = await client.connect()
            except (OSError, aiohttp.ClientError, ConnectionClosed, TimeoutError):
                await client.close()
                continue
            self.client = client
            if welcome.session is not None:
                self.session = welcome.session
                self.updates.put_nowait(welcome.session)
            return

    async def _answer(self, session_id: str, sdp: str, offer_id: int | None = None) -> None:
        self.offers += 1
        if self._watchdog is not None:
            await self._watchdog.close()
            self._watchdog = None
        await super()._answer(session_id, sdp, offer_id)
        pc = self.pc
        assert pc is not None

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "connected" and self._watchdog is None and pc is self.pc:
                self._watchdog = MediaWatchdog(pc, lambda s: self._link(session_id, s))
                self._watchdog.start()
                self._link(session_id, "connected")

    def _link(self, session_id: str, state: LinkState) -> None:
        self.link_events.append((time.monotonic(), state))
        if state != "failed" and self.client is not None:
            task = asyncio.create_task(self._report(MediaState(session_id=session_id, state=state)))
            self._tasks.append(task)

    async def _report(self, message: MediaState) -> None:
        assert self.client is not None
        try:
            await self.client.send(message)
        except (ConnectionClosed, ConnectionError):
            log.info("media state not sent: signalling is reconnecting")

    def _on_channel(self, channel: RTCDataChannel) -> None:
        if channel.label == "vitals":
            self._vitals_channel = channel
        elif channel.label == "stills":
            self._stills_channel = channel
        super()._on_channel(channel)

    def _on_data(self, label: str, raw: str | bytes) -> None:
        if label == "vitals":
            assert isinstance(raw, str)
            reading = json.loads(raw)
            seq = reading["seq"]
            if seq <= self.vitals_seen:
                self.duplicates += 1
            else:
                self.gaps += seq > self.vitals_seen + 1 and self.vitals_seen > 0
                self.vitals_seen = seq
                self.received.vitals.append(reading)
            channel = self._vitals_channel
            if channel is not None and channel.readyState == "open":
                channel.send(json.dumps({"ack": self.vitals_seen}))
            return
        if label == "stills" and isinstance(raw, str):
            body = json.loads(raw)
            if body["type"] == "still_end" and self._partial is not None:
                still = self._partial
                super()._on_data(label, raw)
                if still.sha256 == still.header["sha256"]:
                    self._ack_still(still.header["still_id"])
                    if still.header["still_id"] in self.still_ids:
                        self.received.stills.remove(still)  # a duplicate after an outage
                    self.still_ids.add(still.header["still_id"])
                return
        super()._on_data(label, raw)

    def _ack_still(self, still_id: str) -> None:
        channel = self._stills_channel
        if channel is not None and channel.readyState == "open":
            channel.send(json.dumps({"type": "still_ack", "still_id": still_id}))

    async def close(self) -> None:
        if self._watchdog is not None:
            await self._watchdog.close()
        await super().close()
