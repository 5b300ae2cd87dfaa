"""Stills mode: when the link is too thin for exam video, a sharp exam picture every few s.

The quality ladder's STILLS level (the rate controller pauses the exam encoder then)
turns this on with a byte-rate budget; each picture is the exam camera's latest frame,
scaled and JPEG-compressed to fit `budget × interval`, and sent whole on the `stills`
data channel with the same header/chunks/end framing as a requested still, plus
`"periodic": true`. Periodic stills are not uploaded to the server: that would send
every picture a second time over the same thin uplink.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from aiortc import RTCDataChannel

from telecart.cart_agent.lifecycle import cancel_and_wait
from telecart.cart_agent.stills import EncodedStill, StillError, encode_still, sending_lock

log = logging.getLogger(__name__)

INTERVAL_S = 3.0
# Until the channel is open and the camera has a picture, look again this soon, not a
# whole interval later: stills mode starts 2-4 s into an `edge` call, and its data
# channels may open later than that over a 1 s round trip.
NOT_READY_RETRY_S = 0.25
PACED_CHUNK_BYTES = 1_100  # one packet with SCTP/DTLS headers
# Send a picture at this times its budget. Faster (every picture gone within 1.2 s of a
# 3 s interval: 24-38 kbit/s on `edge`) its bursts read as a rising delay, the cut that
# followed took the exam camera off in 7 of 19 runs (4 of 24 before, 2 of 9 without it).
PACE = 1.5
# Boxes the picture is fitted into (aspect kept), sharpest first; quality steps per box.
BOXES: tuple[tuple[int, int], ...] = ((960, 540), (640, 360), (480, 270), (320, 180))
QUALITIES: tuple[int, ...] = (85, 75, 65, 55, 45, 35)


@dataclass(frozen=True)
class StillStep:
    """A (box, quality) pair; higher indices are smaller pictures."""

    box: int
    quality: int

    def smaller(self) -> StillStep:
        if self.quality < len(QUALITIES) - 1:
            return dataclasses.replace(self, quality=self.quality + 1)
        if self.box < len(BOXES) - 1:
            return StillStep(self.box + 1, 2)
        return self

    def larger(self) -> StillStep:
        if self.quality > 0 and (self.quality > 2 or self.box == 0):
            return dataclasses.replace(self, quality=self.quality - 1)
        if self.box > 0:
            return StillStep(self.box - 1, len(QUALITIES) - 1)
        return self


def scaled(image: npt.NDArray[np.uint8], box: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """`image` fitted inside `box` (never enlarged), even width and height."""
    height, width = image.shape[:2]
    ratio = min(1.0, box[0] / width, box[1] / height)
    size = (max(2, int(width * ratio) // 2 * 2), max(2, int(height * ratio) // 2 * 2))
    if size == (width, height):
        return image
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)


def encode_within(image: npt.NDArray[np.uint8], step: StillStep, camera: str) -> EncodedStill:
    """JPEG of `image` at `step`. CPU work: run in a thread."""
    return encode_still(scaled(image, BOXES[step.box]), camera, "jpeg", QUALITIES[step.quality])


def encode_fitting(
    image: npt.NDArray[np.uint8], step: StillStep, camera: str, target_bytes: float
) -> tuple[EncodedStill, StillStep]:
    """JPEG of `image` at `step`, or at the first smaller step that fits `target_bytes`
    (the smallest if none does). CPU work: run in a thread."""
    still = encode_within(image, step, camera)
    while len(still.data) > target_bytes and step.smaller() != step:
        step = step.smaller()
        still = encode_within(image, step, camera)
    return still, step


class StillsMode:
    """Sends the exam camera's picture every `interval_s` while a budget is set."""

    def __init__(
        self,
        channel: RTCDataChannel,
        latest_image: Callable[[], npt.NDArray[np.uint8] | None],
        camera: str = "exam",
        interval_s: float = INTERVAL_S,
    ) -> None:
        self._channel = channel
        self._latest_image = latest_image
        self._camera = camera
        self.interval_s = interval_s
        self.budget_bps = 0
        self.step = StillStep(1, 1)
        self.sent: list[EncodedStill] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()
        self._sending: asyncio.Task[None] | None = None  # the task a picture is leaving from

    @property
    def active(self) -> bool:
        return self._task is not None

    def set_budget(self, budget_bps: int) -> None:
        """Start (budget > 0), retune, or stop (0) the periodic pictures."""
        self.budget_bps = budget_bps
        if budget_bps > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="stills-mode")
            log.info("stills mode on (%d kbit/s)", budget_bps // 1000)
        elif budget_bps <= 0 and self._task is not None:
            task, self._task = self._task, None
            if task is not self._sending:
                task.cancel()
            # else the picture on its way is finished, and the loop ends there: cut off,
            # the specialist would never see it and the link would have carried it for
            # nothing (`edge`: stills mode off for 4.5 s meant a 8.5 s picture gap).
            self._stopping.add(task)  # awaited by close(); forgotten once finished
            task.add_done_callback(self._stopping.discard)
            log.info("stills mode off")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait([task, *self._stopping])

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            ready = True
            try:
                ready = await self._send_one()
            except StillError as exc:
                log.info("stills mode: %s", exc)
            if self._task is not asyncio.current_task():
                return  # turned off while a picture was on its way
            wait = self.interval_s - (loop.time() - started) if ready else NOT_READY_RETRY_S
            await asyncio.sleep(max(0.2, wait))

    async def _send_one(self) -> bool:
        """One picture, unless over budget or the last still queued; False: no channel
        open or no picture yet."""
        image = self._latest_image()
        if image is None or self._channel.readyState != "open":
            return False
        target = self.budget_bps * self.interval_s / 8
        # Down at once to a step that fits (one step a picture skipped a picture per step
        # after each cut on `edge`, where the budget moves between 24 and 8 kbit/s), and
        # up one step a picture: the scene changes slowly.
        still, self.step = await asyncio.to_thread(
            encode_fitting, image, self.step, self._camera, target
        )
        if len(still.data) < 0.6 * target:
            self.step = self.step.larger()
        if len(still.data) > 2 * target and self.sent:
            # Far over budget even at the smallest step: skip rather than flood the link.
            return True
        if self._channel.bufferedAmount > len(still.data):
            return True  # the previous picture has not left yet
        self.sent.append(still)
        del self.sent[:-5]
        log.debug(
            "still %s: %d bytes, %dx%d, for %d kbit/s",
            still.still_id,
            len(still.data),
            still.width,
            still.height,
            self.budget_bps // 1000,
        )
        await self._send_paced(still)
        return True

    async def _send_paced(self, still: EncodedStill) -> None:
        """Chunks of one packet, spread at `PACE` × the budget: a whole picture at once
        overflowed a 128 kbit/s link's queue and cost the stethoscope packets (`edge`)."""
        pace = max(PACE * self.budget_bps, 1_000)
        async with sending_lock(self._channel):
            self._sending = asyncio.current_task()
            try:
                self._channel.send(json.dumps({**still.header(), "periodic": True}))
                for offset in range(0, len(still.data), PACED_CHUNK_BYTES):
                    chunk = still.data[offset : offset + PACED_CHUNK_BYTES]
                    self._channel.send(chunk)
                    await asyncio.sleep(len(chunk) * 8 / pace)
                end = {"type": "still_end", "still_id": still.still_id}
                self._channel.send(json.dumps(end))
            finally:
                self._sending = None
