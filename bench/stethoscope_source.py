"""How the Python senders of the media benchmark play the stethoscope benchmark's WAV.

`bench/media_agent.py` and `bench/media_aiortc.py` look for `SOURCE_ENV` (a WAV path);
when it is set, their stethoscope plays that file in a loop instead of the synthesiser.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Final

from bench.stethoscope_signal import WavLoop, read_wav
from telecart.devices.audio_chunk import CHUNK_MS, AudioChunk
from telecart.devices.pacing import Pacer
from telecart.devices.status import DeviceKind, DeviceStatusMixin, StatusBoard

SOURCE_ENV: Final = "TELECART_BENCH_STETHOSCOPE_WAV"


def loop_from_env() -> WavLoop | None:
    """The WAV named by `SOURCE_ENV` as a loop, or None when it is not set."""
    path = os.environ.get(SOURCE_ENV)
    return WavLoop(read_wav(Path(path))) if path else None


class WavStethoscopeInput(DeviceStatusMixin):
    """An audio source (`telecart.devices.sources.AudioSource`) paced to real time."""

    kind: DeviceKind = "audio_in"
    device_name = "stethoscope"

    def __init__(self, loop: WavLoop, board: StatusBoard) -> None:
        self.board = board
        self._loop = loop
        self._pacer = Pacer(CHUNK_MS / 1000)

    async def open(self, *, require: bool = False) -> None:
        self._report("ok", "benchmark WAV")

    async def read(self) -> AudioChunk:
        await self._pacer.wait()
        return AudioChunk(self._loop.next_chunk(), time.time())

    async def close(self) -> None:
        pass
