"""High-resolution stills: capture at the camera's full size, encode, send whole.

A still goes to the specialist on the reliable `stills` data channel as a JSON header
``{type: "still", still_id, size, sha256, media_type, width, height, camera}``, then
binary chunks of at most `CHUNK_BYTES`, then ``{type: "still_end", still_id}``. Chunks
are queued only while the channel's buffer is below `HIGH_WATER_BYTES`, so a large
still never floods the SCTP queue in front of later messages. The cart also uploads it
to the server, which keeps it as an attachment of the session; when stored, the cart
sends ``{type: "still_stored", still_id, url, server_still_id}``.

The receiver answers each complete still with ``{type: "still_ack", still_id}``; until then
the still waits in the session's `StillsOutbox` (stills_outbox.py) and is sent again on
the next channel (after an outage), so the receiver drops a `still_id` it already holds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

import aiohttp
import cv2
import numpy as np
import numpy.typing as npt
from aiortc import RTCDataChannel

log = logging.getLogger(__name__)

STILLS_LABEL = "stills"
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


def stored_message(still_id: str, record: dict[str, Any]) -> str:
    """Tells the receiver where the server keeps the still."""
    return json.dumps(
        {
            "type": "still_stored",
            "still_id": still_id,
            "server_still_id": record["still_id"],
            "url": record["url"],
        }
    )
