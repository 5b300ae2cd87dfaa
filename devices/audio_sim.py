"""Simulated audio devices: stethoscope and voice sources, and a measuring null speaker."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from .audio_chunk import CHUNK_MS, AudioChunk, dbfs, to_int16
from .config import AudioInputConfig, AudioOutputConfig
from .pacing import Pacer
from .status import DeviceKind, DeviceStatusMixin, StatusBoard
from .stethoscope_sim import StethoscopeMode, StethoscopeSynth
from .voice_sim import VoiceSynth


class SimulatedAudioInput(DeviceStatusMixin):
    """Audio source interface over a synthesiser, paced to real time by the loop clock.
    `connected = False` simulates an unplug: silence and status "disconnected"."""

    kind: DeviceKind = "audio_in"

    def __init__(
        self, config: AudioInputConfig, board: StatusBoard | None = None, seed: int = 0
    ) -> None:
        self.config = config
        self.device_name = config.name
        self.board = board or StatusBoard()
        self.connected = True
        self._stethoscope: StethoscopeSynth | None = None
        generate: Callable[[], npt.NDArray[np.float64]]
        if config.role == "stethoscope":
            self._stethoscope = StethoscopeSynth(seed)
            generate = self._stethoscope.next_chunk
        else:
            generate = VoiceSynth(seed).next_chunk
        self._generate = generate
        self._pacer = Pacer(CHUNK_MS / 1000)

    @property
    def mode(self) -> StethoscopeMode:
        """Stethoscope mode heart / lung / wide (a voice source has none)."""
        if self._stethoscope is None:
            raise AttributeError("only a simulated stethoscope has a mode")
        return self._stethoscope.mode

    @mode.setter
    def mode(self, value: StethoscopeMode) -> None:
        if self._stethoscope is None:
            raise AttributeError("only a simulated stethoscope has a mode")
        self._stethoscope.mode = value

    async def open(self, *, require: bool = False) -> None:
        self._report("ok", "simulated")

    async def read(self) -> AudioChunk:
        await self._pacer.wait()
        signal = self._generate()
        if not self.connected:
            self._report("disconnected", "simulated unplug")
            signal = signal * 0
        else:
            self._report("ok", "simulated")
        return AudioChunk(to_int16(signal, self.config.gain_db), time.time())

    async def close(self) -> None:
        pass


class SimulatedAudioOutput(DeviceStatusMixin):
    """Audio sink interface that discards audio, paced like a real speaker, and measures it."""

    kind: DeviceKind = "audio_out"

    def __init__(self, config: AudioOutputConfig, board: StatusBoard | None = None) -> None:
        self.config = config
        self.device_name = config.name
        self.board = board or StatusBoard()
        self.chunks_written = 0
        self.last_dbfs = -120.0
        self.peak = 0
        self._pacer = Pacer(CHUNK_MS / 1000)

    async def open(self, *, require: bool = False) -> None:
        self._report("ok", "simulated")

    async def write(self, chunk: AudioChunk) -> None:
        await self._pacer.wait()
        self.chunks_written += 1
        self.last_dbfs = dbfs(chunk.samples)
        self.peak = max(self.peak, int(np.abs(chunk.samples.astype(np.int32)).max()))

    async def close(self) -> None:
        pass
