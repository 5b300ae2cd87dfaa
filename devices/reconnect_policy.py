"""One reconnect policy for every device: backoff schedule, status events, technician logs.

A lost camera, audio device or serial port reports "disconnected" once with the message
and what to check, then retries after 0.5, 1, 2, 4, 5, 5 ... s. Failed attempts are
logged at debug, with a warning every `REMIND_EVERY_S` saying how long it has been
missing and what to do; success reports "ok" and logs how long the device was gone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from .errors import DeviceError
from .status import DeviceState

logger = logging.getLogger(__name__)

T = TypeVar("T")
REMIND_EVERY_S = 60.0
StatusReporter = Callable[[DeviceState, str], None]


@dataclass(frozen=True)
class Backoff:
    """Delays before successive attempts: `first_s`, doubling, capped at `max_s`."""

    first_s: float = 0.5
    max_s: float = 5.0

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * 2, self.max_s)


BACKOFF = Backoff()


class ReconnectPolicy:
    """Status and logging for one device while it is missing; `delays()` paces retries."""

    def __init__(
        self, device: str, report: StatusReporter, hint: str, backoff: Backoff = BACKOFF
    ) -> None:
        self.device = device
        self.hint = hint
        self.backoff = backoff
        self.attempts = 0
        self._report = report
        self._lost_at: float | None = None
        self._reminded_at = 0.0

    @property
    def missing(self) -> bool:
        return self._lost_at is not None

    def lost(self, message: str) -> None:
        """The device is gone: report "disconnected" and tell the technician what to do
        (once per loss; later calls while it is still missing change nothing)."""
        if self._lost_at is not None:
            return
        self._lost_at = self._reminded_at = time.monotonic()
        self.attempts = 0
        logger.warning("%s lost (%s): %s; retrying by itself", self.device, message, self.hint)
        self._report("disconnected", message)

    def delays(self) -> Iterator[float]:
        return self.backoff.delays()

    def failed(self, exc: BaseException) -> None:
        """One attempt failed; unexpected errors are logged with their type."""
        self.attempts += 1
        now = time.monotonic()
        if not isinstance(exc, DeviceError):
            logger.warning("%s: reopening raised %r; retrying", self.device, exc)
        else:
            logger.debug("%s still unavailable: %s", self.device, exc.message)
        if now - self._reminded_at >= REMIND_EVERY_S:
            self._reminded_at = now
            gone = now - (self._lost_at or now)
            logger.warning(
                "%s still missing after %d attempts (%.0f s). %s",
                self.device,
                self.attempts,
                gone,
                self.hint,
            )

    def restored(self, message: str) -> None:
        """The device is back: report "ok" and log how long it was gone."""
        if self._lost_at is not None:
            gone = time.monotonic() - self._lost_at
            logger.info("%s back after %.1f s (%d attempts)", self.device, gone, self.attempts)
        self._lost_at = None
        self._report("ok", message)


async def reconnect(
    policy: ReconnectPolicy,
    attempt: Callable[[], Awaitable[T]],
    closed: Callable[[], bool],
    message: str,
) -> T | None:
    """Await `attempt` on the policy's schedule until it succeeds (reporting `message`)
    or `closed()`; for sources whose blocking I/O `attempt` already puts on a thread."""
    for delay in policy.delays():
        await asyncio.sleep(delay)
        if closed():
            break
        try:
            result = await attempt()
        except Exception as exc:
            policy.failed(exc)
            continue
        policy.restored(message)
        return result
    return None


def reconnect_blocking(
    policy: ReconnectPolicy, attempt: Callable[[], T], stop: threading.Event, message: str
) -> T | None:
    """The same schedule on a device's own thread; None once `stop` is set."""
    for delay in policy.delays():
        if stop.wait(delay):
            break
        try:
            result = attempt()
        except Exception as exc:
            policy.failed(exc)
            continue
        policy.restored(message)
        return result
    return None
