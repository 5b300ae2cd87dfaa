"""Readings the specialist has not acknowledged yet: bounded, in memory, on disk when large.

Every item gets the next sequence number of its session and stays until a receiver
acknowledges it (`ack(seq)` drops everything up to `seq`). The newest `memory_items` stay
in memory; older ones move to an append-only file `spill.jsonl` in the session's folder,
so an outage of hours costs disk, not memory. The whole buffer is bounded by
`BufferLimits.max_bytes` and `max_age_s`: past either, the oldest items are dropped and
counted in `dropped` (a receiver sees the jump in `seq`).

Sequence numbers are reserved on disk in blocks, so an agent restarted mid-session goes on
above every number it may have sent; the spilled items survive the restart and are sent
again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SEQ_BLOCK = 1000


@dataclass(frozen=True)
class BufferLimits:
    memory_items: int = 2000
    max_bytes: int = 64 * 1024 * 1024
    max_age_s: float = 24 * 3600.0


@dataclass(frozen=True)
class BufferedItem:
    seq: int
    line: str  # the JSON text sent on the channel, with its "seq"
    at: float  # when it was buffered (wall clock), for the age limit


class OutageBuffer:
    """Unacknowledged items of one session, oldest first. Not thread-safe: one event loop."""

    def __init__(
        self,
        folder: Path,
        limits: BufferLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._folder = folder
        self._limits = limits or BufferLimits()
        self._clock = clock
        self._memory: deque[BufferedItem] = deque()
        self._spilled: deque[tuple[int, int, float]] = deque()  # seq, bytes, at
        self._memory_bytes = 0
        self._spill_bytes = 0
        self._reserved = 0
        self._next_seq = 1
        self._io = asyncio.Lock()
        self._spill_file = False
        self.acked = 0
        self.dropped = 0
        self.appended = 0

    @property
    def _spill_path(self) -> Path:
        return self._folder / "spill.jsonl"

    @property
    def _seq_path(self) -> Path:
        return self._folder / "seq"

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    @property
    def pending_count(self) -> int:
        return len(self._memory) + len(self._spilled)

    @property
    def spilled_count(self) -> int:
        return len(self._spilled)

    async def open(self) -> None:
        """Load the reserved sequence numbers and any items spilled before a restart."""
        reserved, spilled = await asyncio.to_thread(self._load)
        self._reserved = reserved
        self._next_seq = reserved + 1
        for item in spilled:
            self._spilled.append((item.seq, len(item.line) + 1, item.at))
            self._spill_bytes += len(item.line) + 1
        self._spill_file = bool(spilled)
        if spilled:
            log.info("%d unacknowledged readings from before the restart", len(spilled))

    def _load(self) -> tuple[int, list[BufferedItem]]:
        self._folder.mkdir(parents=True, exist_ok=True)
        try:
            reserved = int(self._seq_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            reserved = 0
        return reserved, self._read_spill(0)

    def _read_spill(self, after: int) -> list[BufferedItem]:
        items = []
        try:
            with self._spill_path.open(encoding="utf-8") as spill:
                for line in spill:
                    line = line.rstrip("\n")
                    try:
                        body = json.loads(line)
                        seq, at = int(body["seq"]), float(body.get("_at", 0.0))
                    except (ValueError, KeyError, TypeError):
                        continue  # a line torn by a power cut
                    if seq > after:
                        items.append(BufferedItem(seq, line, at))
        except FileNotFoundError:
            pass
        return items

    async def append(self, body: dict[str, Any]) -> BufferedItem:
        """Number `body` (adds "seq") and keep it until acknowledged."""
        async with self._io:
            if self._next_seq > self._reserved:
                self._reserved = self._next_seq + SEQ_BLOCK - 1
                await asyncio.to_thread(self._write_reserved, self._reserved)
            item = BufferedItem(
                self._next_seq,
                json.dumps({"seq": self._next_seq, **body}, separators=(",", ":")),
                self._clock(),
            )
            self._next_seq += 1
            self.appended += 1
            if self._spill_file and not self._spilled:  # all of it acknowledged
                await asyncio.to_thread(self._spill_path.unlink, missing_ok=True)
                self._spill_file = False
            self._memory.append(item)
            self._memory_bytes += len(item.line) + 1
            if len(self._memory) > self._limits.memory_items:
                await self._spill()
            self._enforce_limits()
            return item

    def _write_reserved(self, reserved: int) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        tmp = self._seq_path.with_suffix(".tmp")
        tmp.write_text(str(reserved))
        tmp.replace(self._seq_path)

    async def _spill(self) -> None:
        """Move the older half of memory to the end of the spill file."""
        count = len(self._memory) // 2
        moving = [self._memory.popleft() for _ in range(count)]
        lines = [_with_time(item) for item in moving]
        await asyncio.to_thread(self._append_lines, lines)
        self._spill_file = True
        for item, line in zip(moving, lines, strict=True):
            self._memory_bytes -= len(item.line) + 1
            self._spilled.append((item.seq, len(line) + 1, item.at))
            self._spill_bytes += len(line) + 1

    def _append_lines(self, lines: list[str]) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        with self._spill_path.open("a", encoding="utf-8") as spill:
            spill.write("".join(f"{line}\n" for line in lines))

    def _enforce_limits(self) -> None:
        limits = self._limits
        oldest_allowed = self._clock() - limits.max_age_s
        while self.pending_count > 1 and (
            self._memory_bytes + self._spill_bytes > limits.max_bytes
            or self._oldest_at() < oldest_allowed
        ):
            self._drop_oldest()
            self.dropped += 1
        if self.dropped and self.dropped % 1000 == 1:
            log.warning("outage buffer full: %d oldest readings dropped", self.dropped)

    def _oldest_at(self) -> float:
        if self._spilled:
            return self._spilled[0][2]
        return self._memory[0].at if self._memory else self._clock()

    def _drop_oldest(self) -> int:
        if self._spilled:
            seq, size, _ = self._spilled.popleft()
            self._spill_bytes -= size
            self.acked = max(self.acked, seq)  # nobody will get it: as good as acknowledged
            return seq
        item = self._memory.popleft()
        self._memory_bytes -= len(item.line) + 1
        self.acked = max(self.acked, item.seq)
        return item.seq

    def ack(self, seq: int) -> None:
        """The receiver has everything up to `seq`."""
        if seq <= self.acked:
            return
        self.acked = min(seq, self.last_seq)
        while self._spilled and self._spilled[0][0] <= self.acked:
            self._drop_oldest()
        while self._memory and self._memory[0].seq <= self.acked:
            self._drop_oldest()

    async def after(self, seq: int) -> list[BufferedItem]:
        """Every buffered item with a sequence number above `seq`, in order."""
        items: list[BufferedItem] = []
        if self._spilled and self._spilled[-1][0] > seq:
            async with self._io:
                floor = max(seq, self._spilled[0][0] - 1)
                items = await asyncio.to_thread(self._read_spill, floor)
                items = [
                    BufferedItem(i.seq, _without_time(i.line), i.at)
                    for i in items
                    if i.seq > self.acked
                ]
        items.extend(item for item in self._memory if item.seq > seq)
        return items


def _with_time(item: BufferedItem) -> str:
    """The spill line keeps its buffering time for the age limit after a restart."""
    return f'{item.line[:-1]},"_at":{item.at!r}}}'


def _without_time(line: str) -> str:
    body = json.loads(line)
    body.pop("_at", None)
    return json.dumps(body, separators=(",", ":"))
