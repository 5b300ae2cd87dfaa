"""The uplink rate the last consultation settled at, kept in the agent's data directory.

A clinic's uplink changes little from one call to the next, and rate control otherwise
starts every call at `initial_uplink_kbps` (300 kbit/s unless a technician set it): on a
128 kbit/s EDGE link that start cost 2 s of overload and about 1 % of stethoscope
concealment per call (docs/adaptation.md). The next call starts at the lower of the two.
A memory older than `max_age_s` is ignored (links differ by time of day); an unreadable
file is treated as no memory, never as an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from telecart.cart_agent.atomic_file import write_atomically

log = logging.getLogger(__name__)

FILE_NAME = "uplink.json"


@dataclass(frozen=True)
class LinkMemory:
    path: Path
    max_age_s: float = 6 * 3600.0

    @classmethod
    def in_dir(cls, data_dir: Path) -> LinkMemory:
        return cls(data_dir / FILE_NAME)

    async def recall(self, now: float | None = None) -> float | None:
        """The remembered rate in bit/s, or None when there is none fresh enough."""
        stored = await asyncio.to_thread(self._read)
        if stored is None:
            return None
        bps, at = stored
        age = (time.time() if now is None else now) - at
        return bps if 0 <= age <= self.max_age_s else None

    async def remember(self, bps: float, now: float | None = None) -> None:
        """Keep `bps` for the next call; a directory that cannot be written only logs (the
        consultation closing must not fail for it)."""
        at = time.time() if now is None else now
        try:
            await asyncio.to_thread(self._write, bps, at)
        except OSError as exc:
            log.warning("could not keep the uplink rate in %s: %s", self.path, exc)

    def _read(self) -> tuple[float, float] | None:
        try:
            body = json.loads(self.path.read_text(encoding="utf-8"))
            bps, at = float(body["settled_bps"]), float(body["at"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the remembered uplink rate in %s: %s", self.path, exc)
            return None
        if not (math.isfinite(bps) and bps > 0 and math.isfinite(at)):
            log.warning("ignoring the remembered uplink rate in %s: out of range", self.path)
            return None
        return bps, at

    def _write(self, bps: float, at: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps({"settled_bps": round(bps), "at": at}).encode())
