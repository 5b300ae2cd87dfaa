"""Stop on SIGINT/SIGTERM: an event the main coroutine waits for, then cleans up."""

from __future__ import annotations

import asyncio
import signal


def stop_event() -> asyncio.Event:
    """An event set by the first SIGINT or SIGTERM (Ctrl-C, systemd stop)."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, event.set)
    return event
