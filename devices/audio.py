"""Real audio devices over PortAudio: input with gain, output, hot-plug.

Streams run in an `AudioHost`'s worker process. Input chunks arrive on the event loop
into a bounded queue (oldest dropped on overrun); output chunks are paced by the
device's clock. While a device is missing, `read()` returns silence at the real rate,
`write()` drops audio at the real rate, the status is "disconnected", and the host
brings the stream back when the device returns (`audio_host`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import numpy as np

from .audio_chunk import CHUNK_MS, AudioChunk, apply_gain, dbfs, silence
from .audio_host import AudioHost
from .config import AudioInputConfig, AudioOutputConfig
from .errors import DeviceError
from .pacing import Pacer
from .portaudio_devices import Direction
from .reconnect_policy import ReconnectPolicy
from .status import DeviceKind, DeviceStatusMixin, StatusBoard

AUDIO_HINT = "check the USB cable, then run `telecart devtest --only audio`"
NO_AUDIO_TIMEOUT_S = 1.0
QUEUE_CHUNKS = 25  # 0.5 s


class PortAudioStream(DeviceStatusMixin):
    """What input and output share: registration with the host, status, hot-plug."""

    direction: Direction

    def __init__(
        self, device: str, name: str, board: StatusBoard | None, host: AudioHost | None
    ) -> None:
        self.device_name = name
        self.board = board or StatusBoard()
        self.host = host or AudioHost()
        self.policy = ReconnectPolicy(name, self._report, AUDIO_HINT)
        self._device = device
        self._pacer = Pacer(CHUNK_MS / 1000)

    @property
    def device(self) -> str:
        return self._device

    async def open(self, *, require: bool = False) -> None:
        """Start the stream. If the device is missing, `require=True` raises
        `DeviceError`; otherwise the stream is "disconnected" until it returns."""
        try:
            await self.host.open(self)
        except DeviceError as exc:
            if require:
                await self.host.close(self)
                self._report("disconnected", exc.message)
                raise
            self.on_lost(exc.message)
            return
        self._report("ok", f"open ({self.device})")

    def on_lost(self, message: str) -> None:
        self.policy.lost(message)
        self.host.recover(self)

    def on_chunk(self, samples: bytes) -> None:
        """Input streams override this; outputs deliver nothing."""

    def on_consumed(self) -> None:
        """Output streams override this; inputs consume nothing."""

    def on_interrupted(self, message: str) -> None:
        self._report("disconnected", message)

    def on_reopened(self) -> None:
        self.policy.restored(f"reconnected ({self.device})")

    async def close(self) -> None:
        await self.host.close(self)
        self._report("disconnected", "closed")


class SoundDeviceInput(PortAudioStream):
    """Audio source interface over a PortAudio input (mono, int16, 48 kHz)."""

    kind: DeviceKind = "audio_in"
    direction: Direction = "input"

    def __init__(
        self,
        config: AudioInputConfig,
        board: StatusBoard | None = None,
        host: AudioHost | None = None,
    ) -> None:
        super().__init__(config.device, config.name, board, host)
        self.config = config
        self.overruns = 0
        self._queue: asyncio.Queue[AudioChunk] = asyncio.Queue(QUEUE_CHUNKS)

    def on_chunk(self, samples: bytes) -> None:
        raw = np.frombuffer(samples, np.int16)
        chunk = AudioChunk(apply_gain(raw, self.config.gain_db), time.time())
        if self._queue.full():
            self._queue.get_nowait()
            self.overruns += 1
        self._queue.put_nowait(chunk)

    async def read(self) -> AudioChunk:
        """The next 20 ms chunk; silence at the real rate while the device is gone."""
        if self.policy.missing:
            await self._pacer.wait()
            return AudioChunk(silence(), time.time())
        try:
            return await asyncio.wait_for(self._queue.get(), NO_AUDIO_TIMEOUT_S)
        except TimeoutError:
            self.on_lost(f"{self.device_name}: no audio for {NO_AUDIO_TIMEOUT_S:.0f} s")
            return AudioChunk(silence(), time.time())


class SoundDeviceOutput(PortAudioStream):
    """Audio sink interface over a PortAudio output. `write()` waits while more than
    100 ms is queued, so a writer is paced by the speaker's clock."""

    kind: DeviceKind = "audio_out"
    direction: Direction = "output"
    MAX_BUFFERED = 5

    def __init__(
        self,
        config: AudioOutputConfig,
        board: StatusBoard | None = None,
        host: AudioHost | None = None,
    ) -> None:
        super().__init__(config.device, config.name, board, host)
        self.config = config
        self.chunks_written = 0
        self.last_dbfs = -120.0
        self._queued = 0
        self._space = asyncio.Event()

    async def open(self, *, require: bool = True) -> None:
        """Start the stream; by default raise `DeviceError` if the speaker is missing."""
        await super().open(require=require)

    def on_consumed(self) -> None:
        self._queued = max(0, self._queued - 1)
        self._space.set()

    def on_reopened(self) -> None:
        self._queued = 0
        super().on_reopened()

    async def _wait_for_space(self, limit: int) -> bool:
        while self._queued > limit:
            self._space.clear()
            try:
                await asyncio.wait_for(self._space.wait(), NO_AUDIO_TIMEOUT_S)
            except TimeoutError:
                return False
        return True

    async def write(self, chunk: AudioChunk) -> None:
        """Queue 20 ms for the speaker; while it is gone the chunk is dropped on time."""
        if self.policy.missing:
            await self._pacer.wait()
            return
        if not await self._wait_for_space(self.MAX_BUFFERED - 1):
            self.on_lost(f"{self.device_name} stopped taking audio")
            return
        self.host.play(self, chunk.samples.tobytes())
        self._queued += 1
        self.chunks_written += 1
        self.last_dbfs = dbfs(chunk.samples)

    async def drain(self, timeout_s: float = 2.0) -> None:
        """Wait until everything written has been handed to the device."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wait_for_space(0), timeout_s)
