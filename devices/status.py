"""Device status events: every source reports ok / disconnected / error as it changes.

Subscribe with `StatusBoard.subscribe(callback)` (called on the event loop thread) or
`StatusBoard.queue()` (an asyncio queue of every later event). Sources share one board
so the cart agent can tell the specialist "exam camera disconnected".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

DeviceKind = Literal["camera", "audio_in", "audio_out", "serial"]
DeviceState = Literal["ok", "disconnected", "error"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceStatus:
    """One device's state at `at` (time.time())."""

    device: str
    kind: DeviceKind
    state: DeviceState
    message: str
    at: float


StatusCallback = Callable[[DeviceStatus], None]


class StatusBoard:
    """Latest status per device plus fan-out of changes to subscribers."""

    def __init__(self) -> None:
        self._latest: dict[str, DeviceStatus] = {}
        self._callbacks: list[StatusCallback] = []
        self._queues: list[asyncio.Queue[DeviceStatus]] = []

    def subscribe(self, callback: StatusCallback) -> Callable[[], None]:
        """Call `callback` on each change; returns a function that unsubscribes."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def queue(self, maxsize: int = 100) -> asyncio.Queue[DeviceStatus]:
        """A queue receiving every later change (oldest dropped when full)."""
        q: asyncio.Queue[DeviceStatus] = asyncio.Queue(maxsize)
        self._queues.append(q)
        return q

    def latest(self) -> dict[str, DeviceStatus]:
        return dict(self._latest)

    def report(
        self, device: str, kind: DeviceKind, state: DeviceState, message: str
    ) -> DeviceStatus:
        """Record a state; subscribers hear only real changes of state or message."""
        previous = self._latest.get(device)
        status = DeviceStatus(device, kind, state, message, time.time())
        self._latest[device] = status
        if previous is not None and (previous.state, previous.message) == (state, message):
            return status
        log = logger.info if state == "ok" else logger.warning
        log("device %s (%s): %s: %s", device, kind, state, message)
        for callback in list(self._callbacks):
            callback(status)
        for q in self._queues:
            if q.full():
                q.get_nowait()
            q.put_nowait(status)
        return status


class DeviceStatusMixin:
    """Gives a source a `status` property fed to a (possibly shared) `StatusBoard`."""

    kind: DeviceKind
    device_name: str
    board: StatusBoard

    @property
    def status(self) -> DeviceStatus:
        latest = self.board.latest().get(self.device_name)
        if latest is None:
            return DeviceStatus(
                self.device_name, self.kind, "disconnected", "not opened", time.time()
            )
        return latest

    def _report(self, state: DeviceState, message: str) -> None:
        self.board.report(self.device_name, self.kind, state, message)
