"""High-resolution stills: capture at the camera's full size, encode, send whole.

A still goes to the specialist on the reliable `stills` data channel as a JSON header
``{type: "still", still_id, size, sha256, media_type, width, height, camera}``, then
binary chunks of at most `CHUNK_BYTES`, then ``{type: "still_end", still_id}``. Chunks
are queued only while the channel's buffer is below `HIGH_WATER_BYTES`, so a large
still never floods the SCTP queue in front of later messages. The cart also uploads it
to the server, which keeps it as an attachment of the session; when stored, the cart
sends ``{type: "still_stored", still_id, url, server_still_id}``.

The receiver answers each complete still with ``{type: "still_ack", still_id}``; until then
the still waits in the session's `StillsOutbox` and is sent again on the next channel
(after an outage), so the receiver drops a `still_id` it already holds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import cv2
import numpy as np
import numpy.typing as npt
from aiortc import RTCDataChannel

from telecart.cart_agent.lifecycle import cancel_and_wait
from telecart.signalling.backoff import backoff_delays

log = logging.getLogger(__name__)

STILLS_LABEL = "stills"
MAX_PENDING_STILLS = 100
CHUNK_BYTES = 16 * 1024
HIGH_WATER_BYTES = 1024 * 1024
LOW_WATER_BYTES = 256 * 1024


class StillError(Exception):
    """A still could not be taken or delivered; the message says what to check."""


@dataclass(frozen=True)
class EncodedStill:
    still_id: str
    data: bytes
    sha256: str
    media_type: str
    width: int
    height: int
    camera: str

    def header(self) -> dict[str, Any]:
        return {
            "type": "still",
            "still_id": self.still_id,
            "size": len(self.data),
            "sha256": self.sha256,
            "media_type": self.media_type,
            "width": self.width,
            "height": self.height,
            "camera": self.camera,
        }


def encode_still(
    image: npt.NDArray[np.uint8], camera: str, still_format: str, jpeg_quality: int
) -> EncodedStill:
    """Encode a BGR image as JPEG (`jpeg_quality`) or PNG. CPU-heavy: run in a thread."""
    if still_format == "png":
        ok, buffer = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        media_type = "image/png"
    else:
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        media_type = "image/jpeg"
    if not ok:
        raise StillError(f"the {camera} camera image could not be encoded as {still_format}")
    data = buffer.tobytes()
    height, width = image.shape[:2]
    return EncodedStill(
        uuid.uuid4().hex,
        data,
        hashlib.sha256(data).hexdigest(),
        media_type,
        int(width),
        int(height),
        camera,
    )


_SENDING: weakref.WeakKeyDictionary[RTCDataChannel, asyncio.Lock] = weakref.WeakKeyDictionary()


def sending_lock(channel: RTCDataChannel) -> asyncio.Lock:
    """Held while one still's header, chunks and end go out: the receiver puts the chunks
    together in order, so a second still (a periodic one, stills_mode.py) must wait."""
    return _SENDING.setdefault(channel, asyncio.Lock())


async def send_still(channel: RTCDataChannel, still: EncodedStill) -> None:
    """Header, chunks with back-pressure, end marker, on an open reliable channel."""
    if channel.readyState != "open":
        raise StillError("the stills channel is not open: wait for the video to connect")
    async with sending_lock(channel):
        await _send_chunks(channel, still)


async def _send_chunks(channel: RTCDataChannel, still: EncodedStill) -> None:
    drained = asyncio.Event()
    channel.bufferedAmountLowThreshold = LOW_WATER_BYTES
    channel.on("bufferedamountlow", drained.set)
    try:
        channel.send(json.dumps(still.header()))
        for offset in range(0, len(still.data), CHUNK_BYTES):
            while channel.bufferedAmount > HIGH_WATER_BYTES:
                drained.clear()
                await drained.wait()
            if channel.readyState != "open":
                raise StillError("the connection closed while the still was being sent")
            channel.send(still.data[offset : offset + CHUNK_BYTES])
        channel.send(json.dumps({"type": "still_end", "still_id": still.still_id}))
    finally:
        channel.remove_listener("bufferedamountlow", drained.set)


async def upload_still(
    http: aiohttp.ClientSession, base_url: str, token: str, session_id: str, still: EncodedStill
) -> dict[str, Any]:
    """Store the still on the server as an attachment of the session; returns its record."""
    async with http.post(
        f"{base_url}/api/sessions/{session_id}/stills",
        data=still.data,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": still.media_type,
            "X-Content-SHA256": still.sha256,
        },
    ) as response:
        if response.status not in (200, 201):  # 200: stored by an earlier try
            detail = (await response.text())[:200]
            raise StillError(f"the server refused the still (HTTP {response.status}): {detail}")
        record: dict[str, Any] = await response.json()
        return record


def parse_still_ack(raw: str | bytes) -> str | None:
    """`{"type": "still_ack", "still_id"}` from the receiver: it holds that still whole."""
    if not isinstance(raw, str):
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("type") != "still_ack":
        return None
    still_id = body.get("still_id")
    return still_id if isinstance(still_id, str) else None


StillUploader = Callable[[EncodedStill], Awaitable[dict[str, Any]]]


class StillsOutbox:
    """One session's stills until the specialist has acknowledged each and the server
    has stored it; survives peer connections, so a still taken during an outage goes
    out when the link returns.

    The upload is retried with the same bytes (the server keeps one copy per content
    hash, so a retry after a lost answer is not stored twice). At most `max_pending`
    stills wait for the specialist; past that the oldest is dropped and counted.
    """

    def __init__(self, upload: StillUploader, max_pending: int = MAX_PENDING_STILLS) -> None:
        self._upload = upload
        self._max_pending = max_pending
        self.pending: dict[str, EncodedStill] = {}
        self.stored: dict[str, dict[str, Any]] = {}
        self.acked: set[str] = set()
        self.dropped = 0
        self._added = asyncio.Condition()
        self._stored_listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self._uploads: set[asyncio.Task[None]] = set()

    async def add(self, still: EncodedStill) -> None:
        """Queue for the specialist and store on the server (in the background)."""
        self.pending[still.still_id] = still
        while len(self.pending) > self._max_pending:
            oldest = next(iter(self.pending))
            del self.pending[oldest]
            self.dropped += 1
            log.warning("too many stills waiting for the link: dropped %s", oldest)
        task = asyncio.create_task(self._store(still), name=f"still-upload-{still.still_id}")
        self._uploads.add(task)
        task.add_done_callback(self._uploads.discard)
        async with self._added:
            self._added.notify_all()

    def ack(self, still_id: str) -> None:
        if self.pending.pop(still_id, None) is not None:
            self.acked.add(still_id)

    async def wait_new(self, seen: set[str]) -> None:
        """Until a still not in `seen` is pending."""
        async with self._added:
            await self._added.wait_for(lambda: any(s not in seen for s in self.pending))

    def on_stored(self, listener: Callable[[str, dict[str, Any]], None]) -> Callable[[], None]:
        self._stored_listeners.append(listener)
        return lambda: self._stored_listeners.remove(listener)

    async def _store(self, still: EncodedStill) -> None:
        for delay in backoff_delays(base_s=1.0, cap_s=30.0):
            try:
                record = await self._upload(still)
            except (StillError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.info("still %s not stored yet (%s); retrying in %.0f s",
                         still.still_id, exc, delay)  # fmt: skip
                await asyncio.sleep(delay)
                continue
            self.stored[still.still_id] = record
            for listener in list(self._stored_listeners):
                listener(still.still_id, record)
            return

    async def close(self) -> None:
        await cancel_and_wait(list(self._uploads))


def stored_message(still_id: str, record: dict[str, Any]) -> str:
    return json.dumps(
        {
            "type": "still_stored",
            "still_id": still_id,
            "server_still_id": record["still_id"],
            "url": record["url"],
        }
    )


class StillsSender:
    """Sends a session's unacknowledged stills on one `stills` channel once it is open,
    oldest first, then each new one; announces stored stills on it."""

    def __init__(self, channel: RTCDataChannel, outbox: StillsOutbox) -> None:
        self._channel = channel
        self._outbox = outbox
        self.sent: list[EncodedStill] = []
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
            waiting = [s for s in self._outbox.pending.values() if s.still_id not in done]
            if not waiting:
                await self._outbox.wait_new(done)
                continue
            for still in waiting:
                try:
                    await send_still(self._channel, still)
                except StillError as exc:
                    log.info("still %s will be sent again: %s", still.still_id, exc)
                    return
                done.add(still.still_id)
                self.sent.append(still)
                if still.still_id in self._outbox.stored:
                    self._announce(still.still_id, self._outbox.stored[still.still_id])

    async def close(self) -> None:
        self._forget()
        self._channel.remove_listener("message", self._on_message)
        await cancel_and_wait([self._task])
