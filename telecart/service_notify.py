"""systemd's notify protocol (sd_notify): READY, STOPPING and a watchdog pinged from the loop.

Used by `telecart server` and `telecart agent` under `Type=notify` units. Outside systemd
(no NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class ServiceNotifier:
    """Sends datagrams to `$NOTIFY_SOCKET`; pings `WATCHDOG=1` at half of `$WATCHDOG_USEC`."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        environ = os.environ if env is None else env
        self._address = environ.get("NOTIFY_SOCKET") or None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval_s = int(usec) / 2e6 if usec.isdigit() and mine else None
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send `KEY=value` lines; False when not under systemd or the socket is gone."""
        if self._address is None:
            return False
        address = self._address
        if address.startswith("@"):
            address = "\0" + address[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(address)
                sock.sendall("\n".join(fields).encode())
        except OSError as exc:
            log.warning("could not notify systemd: %s", exc)
            return False
        return True

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")
        if self.watchdog_interval_s is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watchdog())

    async def stopping(self) -> None:
        self.notify("STOPPING=1")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watchdog(self) -> None:
        # Pinged from the event loop itself: a loop that is stuck stops the pings and systemd
        # restarts the service.
        assert self.watchdog_interval_s is not None
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval_s)
