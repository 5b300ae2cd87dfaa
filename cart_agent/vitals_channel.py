"""Vitals to the specialist: every reading on a reliable, ordered data channel.

Each message is one JSON object ``{seq, kind, value, unit, device, captured_at}``; `seq`
counts from 1 per consultation, so the receiver can tell a gap from a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence

from aiortc import RTCDataChannel

from telecart.cart_agent.lifecycle import cancel_and_wait
from telecart.devices.serial_vitals import SerialVitalsReader
from telecart.devices.vitals import VitalsReading

log = logging.getLogger(__name__)

VITALS_LABEL = "vitals"
SUBSCRIBER_QUEUE = 500


class VitalsFeed:
    """Reads every serial device for the agent's lifetime and fans readings out.

    A new subscriber first gets the latest reading of each kind, so the specialist sees
    the last blood pressure at once instead of at the next cuff measurement.
    """

    def __init__(self, readers: Sequence[SerialVitalsReader]) -> None:
        self._readers = list(readers)
        self._latest: dict[tuple[str, str], VitalsReading] = {}
        self._subscribers: list[asyncio.Queue[VitalsReading]] = []
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for reader in self._readers:
            self._tasks.append(asyncio.create_task(self._pump(reader), name=reader.device_name))

    async def _pump(self, reader: SerialVitalsReader) -> None:
        async for reading in reader.readings():
            self._latest[reading.device, reading.kind] = reading
            for queue in self._subscribers:
                if queue.full():  # a stalled consumer loses the oldest, never blocks the rest
                    queue.get_nowait()
                queue.put_nowait(reading)

    def subscribe(self) -> asyncio.Queue[VitalsReading]:
        queue: asyncio.Queue[VitalsReading] = asyncio.Queue(SUBSCRIBER_QUEUE)
        for reading in sorted(self._latest.values(), key=lambda r: r.captured_at):
            queue.put_nowait(reading)
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[VitalsReading]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(queue)

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()


def vitals_message(seq: int, reading: VitalsReading) -> str:
    return json.dumps(
        {
            "seq": seq,
            "kind": reading.kind,
            "value": reading.value,
            "unit": reading.unit,
            "device": reading.device,
            "captured_at": reading.captured_at,
        },
        separators=(",", ":"),
    )


class VitalsSender:
    """Sends the feed's readings on one consultation's `vitals` channel once it is open."""

    def __init__(self, channel: RTCDataChannel, feed: VitalsFeed) -> None:
        self._channel = channel
        self._feed = feed
        self.sent = 0
        self._task = asyncio.create_task(self._run(), name="vitals-sender")

    async def _run(self) -> None:
        opened = asyncio.Event()
        self._channel.on("open", opened.set)
        if self._channel.readyState != "open":
            await opened.wait()
        queue = self._feed.subscribe()
        try:
            while self._channel.readyState == "open":
                reading = await queue.get()
                if self._channel.readyState != "open":
                    break
                self._channel.send(vitals_message(self.sent + 1, reading))
                self.sent += 1
        finally:
            self._feed.unsubscribe(queue)

    async def close(self) -> None:
        await cancel_and_wait([self._task])
