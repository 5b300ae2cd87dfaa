"""Vitals to the specialist: every reading on a reliable, ordered data channel.

Each message is one JSON object ``{seq, kind, value, unit, device, captured_at}``. `seq`
counts from 1 per session and goes on across peer connections; the receiver answers
``{"ack": N}`` (the highest `seq` it holds) and drops any `seq` it already has. Readings
stay in the session's `OutageBuffer` until acknowledged and are sent again, in order, on
the next channel (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from aiortc import RTCDataChannel

from telecart.cart_agent.lifecycle import cancel_and_wait
from telecart.cart_agent.outage_buffer import OutageBuffer
from telecart.cart_agent.vitals_throttle import VitalsThrottle
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


def reading_body(reading: VitalsReading) -> dict[str, Any]:
    return {
        "kind": reading.kind,
        "value": reading.value,
        "unit": reading.unit,
        "device": reading.device,
        "captured_at": reading.captured_at,
    }


def parse_ack(raw: str | bytes) -> int | None:
    """`{"ack": N}` from the receiver: it holds every reading up to `seq` N."""
    if not isinstance(raw, str):
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    ack = body.get("ack") if isinstance(body, dict) else None
    return ack if isinstance(ack, int) and not isinstance(ack, bool) else None


class VitalsLog:
    """Every reading of one session, numbered, kept until the specialist acknowledges it.

    Lives as long as the session, across peer connections: a reading taken while the link
    is down waits in the outage buffer and goes out on the next `vitals` channel.
    """

    def __init__(self, feed: VitalsFeed, buffer: OutageBuffer) -> None:
        self._feed = feed
        self.buffer = buffer
        self.throttle = VitalsThrottle()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.buffer.open()
        queue = self._feed.subscribe()
        self._task = asyncio.create_task(self._run(queue), name="vitals-log")

    async def _run(self, queue: asyncio.Queue[VitalsReading]) -> None:
        try:
            while True:
                reading = await queue.get()
                if not self.throttle.admit(reading):
                    continue
                await self.buffer.append(reading_body(reading))
                async with self._changed:
                    self._changed.notify_all()
        finally:
            self._feed.unsubscribe(queue)

    @property
    def captured(self) -> int:
        """Readings taken in this session by this process."""
        return self.buffer.appended

    async def wait_after(self, seq: int) -> None:
        """Until a reading numbered above `seq` is buffered."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.buffer.last_seq > seq)

    async def close(self) -> None:
        await cancel_and_wait([self._task])


class VitalsSender:
    """Sends a session's unacknowledged readings on one `vitals` channel once it is open:
    first everything after the last acknowledgement, then each new reading."""

    def __init__(self, channel: RTCDataChannel, log_: VitalsLog) -> None:
        self._channel = channel
        self._log = log_
        self.sent = 0
        self.resent = 0
        channel.on("message", self._on_message)
        self._task = asyncio.create_task(self._run(), name="vitals-sender")

    def _on_message(self, raw: str | bytes) -> None:
        ack = parse_ack(raw)
        if ack is not None:
            self._log.buffer.ack(ack)

    async def _run(self) -> None:
        opened = asyncio.Event()
        self._channel.on("open", opened.set)
        if self._channel.readyState != "open":
            await opened.wait()
        buffer = self._log.buffer
        last = buffer.acked
        first = True
        while self._channel.readyState == "open":
            items = await buffer.after(max(last, buffer.acked))
            for item in items:
                if self._channel.readyState != "open":
                    return
                self._channel.send(item.line)
                last = item.seq
                self.sent += 1
                self.resent += first
            first = False
            await self._log.wait_after(last)

    async def close(self) -> None:
        self._channel.remove_listener("message", self._on_message)
        await cancel_and_wait([self._task])
