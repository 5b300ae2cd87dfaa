"""A session's undelivered stills on disk, so neither a long outage nor an agent restart
loses one.

Each still is two files in the session's `stills/` folder: `<still_id>.img` (its bytes)
and `<still_id>.json` (its header and the order it was taken in), each written to a
temporary name and renamed, the image first, so a crash leaves either a whole still or
none. A still is deleted once the specialist has acknowledged it and the server has
stored it. All file I/O runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from telecart.cart_agent.atomic_file import write_atomically
from telecart.cart_agent.stills import EncodedStill

log = logging.getLogger(__name__)


class StillsSpool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def save(self, still: EncodedStill) -> None:
        await asyncio.to_thread(self._save, still)

    async def load(self, still_id: str) -> EncodedStill:
        return await asyncio.to_thread(self._load, still_id)

    async def restore(self) -> list[EncodedStill]:
        """Every whole still left by an earlier run, oldest first."""
        return await asyncio.to_thread(self._restore)

    async def remove(self, still_id: str) -> None:
        await asyncio.to_thread(self._remove, still_id)

    def _save(self, still: EncodedStill) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "still_id": still.still_id,
            "sha256": still.sha256,
            "media_type": still.media_type,
            "width": still.width,
            "height": still.height,
            "camera": still.camera,
            "order": time.time_ns(),
        }
        write_atomically(self.folder / f"{still.still_id}.img", still.data)
        write_atomically(self.folder / f"{still.still_id}.json", json.dumps(meta).encode())

    def _load(self, still_id: str) -> EncodedStill:
        meta = json.loads((self.folder / f"{still_id}.json").read_text(encoding="utf-8"))
        return _still(meta, (self.folder / f"{still_id}.img").read_bytes())

    def _restore(self) -> list[EncodedStill]:
        if not self.folder.is_dir():
            return []
        found: list[tuple[int, EncodedStill]] = []
        for meta_path in self.folder.glob("*.json"):
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                data = meta_path.with_suffix(".img").read_bytes()
                if hashlib.sha256(data).hexdigest() != meta["sha256"]:
                    raise ValueError("its bytes do not match its sha256")
                found.append((int(meta["order"]), _still(meta, data)))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("a spooled still in %s is unreadable, skipped: %s", meta_path, exc)
        return [still for _, still in sorted(found, key=lambda pair: pair[0])]

    def _remove(self, still_id: str) -> None:
        for suffix in (".json", ".img"):
            with contextlib.suppress(FileNotFoundError):
                (self.folder / f"{still_id}{suffix}").unlink()


def _still(meta: dict[str, Any], data: bytes) -> EncodedStill:
    return EncodedStill(
        str(meta["still_id"]),
        data,
        str(meta["sha256"]),
        str(meta["media_type"]),
        int(meta["width"]),
        int(meta["height"]),
        str(meta["camera"]),
    )
