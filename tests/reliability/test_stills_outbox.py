"""The stills outbox with its disk spool: bounded memory, nothing lost across a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from telecart.cart_agent.stills import EncodedStill, encode_still
from telecart.cart_agent.stills_outbox import StillsOutbox
from telecart.cart_agent.stills_spool import StillsSpool
from tests.cart_agent.conftest import eventually


def _still(seed: int) -> EncodedStill:
    noise = np.random.default_rng(seed).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    return encode_still(noise, "exam", "jpeg", 90)


def _spooled(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.img"))


class Server:
    """Stands in for the server's stills endpoint: refuses while `down`."""

    def __init__(self) -> None:
        self.down = True
        self.stored: dict[str, str] = {}

    async def upload(self, still: EncodedStill) -> dict[str, Any]:
        if self.down:
            raise OSError("network is unreachable")
        self.stored[still.still_id] = still.sha256
        return {"still_id": f"s-{still.still_id}", "url": f"/stills/{still.still_id}"}


async def test_memory_is_bounded_and_every_still_comes_back_from_disk(tmp_path: Path) -> None:
    stills = [_still(i) for i in range(6)]
    size = max(len(s.data) for s in stills)
    server = Server()
    outbox = StillsOutbox(server.upload, StillsSpool(tmp_path), memory_bytes=2 * size)
    try:
        for still in stills:
            await outbox.add(still)
        assert list(outbox.pending) == [s.still_id for s in stills]
        assert outbox.in_memory_bytes <= 2 * size
        assert len(_spooled(tmp_path)) == 6
        for still in stills:
            assert (await outbox.get(still.still_id)).sha256 == still.sha256
    finally:
        await outbox.close()


async def test_a_still_is_deleted_once_acknowledged_and_stored(tmp_path: Path) -> None:
    server = Server()
    outbox = StillsOutbox(server.upload, StillsSpool(tmp_path))
    still = _still(1)
    try:
        await outbox.add(still)
        outbox.ack(still.still_id)
        assert _spooled(tmp_path) == [f"{still.still_id}.img"]  # the server has not got it
        server.down = False
        await eventually(lambda: still.still_id in outbox.stored, timeout_s=10, what="stored")
        await eventually(lambda: not _spooled(tmp_path), what="the spool emptied")
    finally:
        await outbox.close()


async def test_a_restarted_agent_takes_back_its_undelivered_stills_in_order(
    tmp_path: Path,
) -> None:
    stills = [_still(i) for i in range(3)]
    first = StillsOutbox(Server().upload, StillsSpool(tmp_path))
    for still in stills:
        await first.add(still)
    await first.close()  # the agent dies with all three undelivered
    (tmp_path / "garbage.json").write_text("{not json")  # and a torn file is skipped
    server = Server()
    server.down = False
    second = StillsOutbox(server.upload, StillsSpool(tmp_path))
    try:
        assert await second.restore() == 3
        assert list(second.pending) == [s.still_id for s in stills]
        await eventually(lambda: len(server.stored) == 3, timeout_s=10, what="uploads")
        assert server.stored == {s.still_id: s.sha256 for s in stills}
    finally:
        await second.close()
