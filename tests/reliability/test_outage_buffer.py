from __future__ import annotations

import json
from pathlib import Path

from telecart.cart_agent.outage_buffer import SEQ_BLOCK, BufferLimits, OutageBuffer


async def _filled(folder: Path, count: int, limits: BufferLimits) -> OutageBuffer:
    buffer = OutageBuffer(folder, limits)
    await buffer.open()
    for n in range(count):
        await buffer.append({"n": n})
    return buffer


async def test_items_beyond_memory_spill_to_disk_and_come_back_in_order(tmp_path: Path) -> None:
    buffer = await _filled(tmp_path, 25, BufferLimits(memory_items=4))
    assert buffer.spilled_count > 0 and (tmp_path / "spill.jsonl").exists()
    items = await buffer.after(0)
    assert [i.seq for i in items] == list(range(1, 26))
    assert json.loads(items[0].line) == {"seq": 1, "n": 0}


async def test_ack_drops_everything_up_to_it(tmp_path: Path) -> None:
    buffer = await _filled(tmp_path, 25, BufferLimits(memory_items=4))
    buffer.ack(20)
    assert [i.seq for i in await buffer.after(0)] == [21, 22, 23, 24, 25]
    buffer.ack(25)
    await buffer.append({"n": 25})
    assert not (tmp_path / "spill.jsonl").exists()


async def test_a_restarted_agent_keeps_counting_and_resends_spilled_items(tmp_path: Path) -> None:
    buffer = await _filled(tmp_path, 25, BufferLimits(memory_items=4))
    spilled = [i.seq for i in await buffer.after(0)][: buffer.spilled_count]
    again = OutageBuffer(tmp_path, BufferLimits(memory_items=4))
    await again.open()
    assert [i.seq for i in await again.after(0)] == spilled
    item = await again.append({"n": "after restart"})
    assert item.seq == SEQ_BLOCK + 1


async def test_a_full_buffer_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    buffer = await _filled(tmp_path, 50, BufferLimits(memory_items=10, max_bytes=600))
    items = await buffer.after(0)
    assert buffer.dropped > 0
    assert items[-1].seq == 50 and items[0].seq == buffer.dropped + 1
    assert buffer.acked == buffer.dropped
