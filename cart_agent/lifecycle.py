"""Stopping the tasks an object owns without swallowing its caller's own cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel `tasks` and wait until they have finished.

    Unlike ``suppress(CancelledError): await task``, a cancellation of the *caller*
    while it waits still propagates, so a cancelled owner never keeps running.
    """
    owned = [t for t in tasks if t is not None]
    for task in owned:
        task.cancel()
    if owned:
        await asyncio.gather(*owned, return_exceptions=True)
