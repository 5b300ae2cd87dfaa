"""A session's stills until the specialist has acknowledged each and the server has
stored it, and the sender that delivers them on each new `stills` channel.

The outbox outlives peer connections, so a still taken during an outage goes out when the
link returns. With a spool (stills_spool.py) every still is on disk until both have it,
and only the newest `memory_bytes` stay in memory: an outage of hours costs disk, not
memory, and an agent restarted mid-session sends and uploads what the last run left.
The upload is retried with the same bytes (the server keeps one copy per content hash, so
a retry after a lost answer is not stored twice). At most `max_pending` stills wait for
the specialist; past that the oldest is dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiortc import RTCDataChannel

from telecart.cart_agent.lifecycle import cancel_and_wait
from telecart.cart_agent.stills import (
    EncodedStill,
    StillError,
    parse_still_ack,
    send_still,
    stored_message,
)
from telecart.cart_agent.stills_spool import StillsSpool
from telecart.signalling.backoff import backoff_delays

log = logging.getLogger(__name__)

MAX_PENDING_STILLS = 100
MEMORY_BYTES = 32 * 1024 * 1024

StillUploader = Callable[[EncodedStill], Awaitable[dict[str, Any]]]


class StillsOutbox:
    def __init__(
        self,
        upload: StillUploader,
        spool: StillsSpool | None = None,
        max_pending: int = MAX_PENDING_STILLS,
        memory_bytes: int = MEMORY_BYTES,
    ) -> None:
        self._upload = upload
        self._spool = spool
        self._max_pending = max_pending
        self._memory_bytes = memory_bytes
        self.pending: dict[str, None] = {}  # still ids waiting for the specialist, oldest first
        self.stored: dict[str, dict[str, Any]] = {}
        self.acked: set[str] = set()
        self.dropped = 0
        self._memory: dict[str, EncodedStill] = {}
        self._spooled: set[str] = set()
        self._added = asyncio.Condition()
        self._stored_listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_memory_bytes(self) -> int:
        return sum(len(s.data) for s in self._memory.values())

    async def restore(self) -> int:
        """Take back the stills an earlier run of the agent left in the spool."""
        if self._spool is None:
            return 0
        stills = await self._spool.restore()
        for still in stills:
            self._spooled.add(still.still_id)
            await self._queue(still)
        if stills:
            log.info("%d stills from before the restart will be sent again", len(stills))
        return len(stills)

    async def add(self, still: EncodedStill) -> None:
        """Keep (on disk too), queue for the specialist, store on the server."""
        if self._spool is not None:
            try:
                await self._spool.save(still)
                self._spooled.add(still.still_id)
            except OSError as exc:
                log.warning("still %s kept in memory only: the cart's disk failed (%s)",
                            still.still_id, exc)  # fmt: skip
        await self._queue(still)

    async def get(self, still_id: str) -> EncodedStill:
        """The still, from memory or from the spool."""
        still = self._memory.get(still_id)
        if still is not None:
            return still
        if self._spool is None or still_id not in self._spooled:
            raise StillError(f"still {still_id} is no longer held")
        try:
            return await self._spool.load(still_id)
        except (OSError, ValueError) as exc:
            raise StillError(f"still {still_id} could not be read back from disk: {exc}") from exc

    async def _queue(self, still: EncodedStill) -> None:
        self.pending[still.still_id] = None
        self._keep(still)
        while len(self.pending) > self._max_pending:
            oldest = next(iter(self.pending))
            del self.pending[oldest]
            self.dropped += 1
            log.warning("too many stills waiting for the link: dropped %s", oldest)
        self._spawn(self._store(still.still_id), f"still-upload-{still.still_id}")
        async with self._added:
            self._added.notify_all()

    def _keep(self, still: EncodedStill) -> None:
        """In memory, then let the oldest spooled ones go past `memory_bytes`."""
        self._memory[still.still_id] = still
        total = self.in_memory_bytes
        for still_id in list(self._memory):
            if total <= self._memory_bytes:
                break
            if still_id in self._spooled and still_id != still.still_id:
                total -= len(self._memory.pop(still_id).data)

    def ack(self, still_id: str) -> None:
        if still_id in self.pending:
            del self.pending[still_id]
            self.acked.add(still_id)
            self._forget_if_done(still_id)

    async def wait_new(self, seen: set[str]) -> None:
        """Until a still not in `seen` is pending."""
        async with self._added:
            await self._added.wait_for(lambda: any(s not in seen for s in self.pending))

    def on_stored(self, listener: Callable[[str, dict[str, Any]], None]) -> Callable[[], None]:
        self._stored_listeners.append(listener)
        return lambda: self._stored_listeners.remove(listener)

    async def _store(self, still_id: str) -> None:
        for delay in backoff_delays(base_s=1.0, cap_s=30.0):
            try:
                record = await self._upload(await self.get(still_id))
            except (StillError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.info("still %s not stored yet (%s); retrying in %.0f s", still_id, exc, delay)
                await asyncio.sleep(delay)
                continue
            self.stored[still_id] = record
            for listener in list(self._stored_listeners):
                listener(still_id, record)
            self._forget_if_done(still_id)
            return

    def _forget_if_done(self, still_id: str) -> None:
        """Both the specialist and the server have it: free memory and disk."""
        if still_id in self.acked and still_id in self.stored:
            self._memory.pop(still_id, None)
            if still_id in self._spooled and self._spool is not None:
                self._spooled.discard(still_id)
                self._spawn(self._spool.remove(still_id), f"still-unspool-{still_id}")

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        await cancel_and_wait(list(self._tasks))


class StillsSender:
    """Sends a session's unacknowledged stills on one `stills` channel once it is open,
    oldest first, then each new one; announces stored stills on it."""

    def __init__(self, channel: RTCDataChannel, outbox: StillsOutbox) -> None:
        self._channel = channel
        self._outbox = outbox
        self.sent: list[EncodedStill] = []  # the last few, for tests and the log
        channel.on("message", self._on_message)
        self._forget = outbox.on_stored(self._announce)
        self._task = asyncio.create_task(self._run(), name="stills-sender")

    def _on_message(self, raw: str | bytes) -> None:
        still_id = parse_still_ack(raw)
        if still_id is not None:
            self._outbox.ack(still_id)

    def _announce(self, still_id: str, record: dict[str, Any]) -> None:
        if self._channel.readyState == "open":
            self._channel.send(stored_message(still_id, record))

    async def _run(self) -> None:
        opened = asyncio.Event()
        self._channel.on("open", opened.set)
        if self._channel.readyState != "open":
            await opened.wait()
        for still_id, record in list(self._outbox.stored.items()):
            self._announce(still_id, record)
        done: set[str] = set()
        while self._channel.readyState == "open":
            waiting = [s for s in self._outbox.pending if s not in done]
            if not waiting:
                await self._outbox.wait_new(done)
                continue
            for still_id in waiting:
                try:
                    still = await self._outbox.get(still_id)
                    await send_still(self._channel, still)
                except StillError as exc:
                    log.info("still %s will be sent again: %s", still_id, exc)
                    if self._channel.readyState != "open":
                        return
                    done.add(still_id)
                    continue
                done.add(still_id)
                self.sent.append(still)
                del self.sent[:-10]
                if still_id in self._outbox.stored:
                    self._announce(still_id, self._outbox.stored[still_id])

    async def close(self) -> None:
        self._forget()
        self._channel.remove_listener("message", self._on_message)
        await cancel_and_wait([self._task])
