"""Real audio devices over sounddevice (PortAudio): input with gain, output, hot-plug.

The PortAudio callback thread hands each 20 ms chunk to the event loop with
`call_soon_threadsafe` into a bounded queue (oldest dropped on overrun). While a device
is missing, `read()` returns silence at the real rate, the status is "disconnected" and
a reconnect loop reopens the stream by name.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from .audio_chunk import (
    CHUNK_MS,
    CHUNK_SAMPLES,
    SAMPLE_RATE,
    AudioChunk,
    apply_gain,
    dbfs,
    silence,
)
from .config import AudioInputConfig, AudioOutputConfig
from .errors import DeviceError
from .pacing import Pacer
from .status import DeviceKind, DeviceStatusMixin, StatusBoard

logger = logging.getLogger(__name__)

RECONNECT_INTERVAL_S = 1.0
NO_AUDIO_TIMEOUT_S = 1.0
QUEUE_CHUNKS = 25  # 0.5 s


def portaudio() -> Any:
    """The sounddevice module, or DeviceError when PortAudio is not installed."""
    try:
        import sounddevice
    except OSError as exc:
        raise DeviceError(
            "portaudio_missing",
            f"audio library unavailable ({exc}): install the Debian package libportaudio2",
        ) from exc
    return sounddevice


def list_audio_devices() -> list[dict[str, Any]]:
    """PortAudio devices with name, host API, input/output channel counts. Blocking."""
    sd = portaudio()
    apis = sd.query_hostapis()
    return [
        {
            "index": i,
            "name": d["name"],
            "hostapi": apis[d["hostapi"]]["name"],
            "inputs": d["max_input_channels"],
            "outputs": d["max_output_channels"],
        }
        for i, d in enumerate(sd.query_devices())
    ]


def find_audio_device(name: str, direction: str, role: str) -> int | None:
    """Device index whose name contains `name` (case-insensitive) with channels for
    `direction` ("input"/"output"); "default" picks PortAudio's default. Blocking."""
    sd = portaudio()
    key = "inputs" if direction == "input" else "outputs"
    if name == "default":
        index = sd.default.device[0 if direction == "input" else 1]
        if index is not None and index >= 0:
            return int(index)
    for device in list_audio_devices():
        if device[key] > 0 and (name == "default" or name.lower() in device["name"].lower()):
            return int(device["index"])
    return None


def _missing(role: str, name: str, check: str) -> DeviceError:
    return DeviceError(
        f"{role}_missing".replace(" ", "_"),
        f"{role.capitalize()} not found ({name!r}): check the USB cable, "
        f"then run `telecart devtest --only {check}`",
    )


class SoundDeviceInput(DeviceStatusMixin):
    """Audio source interface over a PortAudio input stream (mono, int16, 48 kHz)."""

    kind: DeviceKind = "audio_in"

    def __init__(self, config: AudioInputConfig, board: StatusBoard | None = None) -> None:
        self.config = config
        self.device_name = config.name
        self.board = board or StatusBoard()
        self.overruns = 0
        self._queue: asyncio.Queue[AudioChunk] = asyncio.Queue(QUEUE_CHUNKS)
        self._stream: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._pacer = Pacer(CHUNK_MS / 1000)
        self._closed = False

    def _open_blocking(self) -> Any:
        sd = portaudio()
        index = find_audio_device(self.config.device, "input", self.device_name)
        if index is None:
            raise _missing(self.device_name, self.config.device, "audio")
        stream = sd.InputStream(
            device=index,
            samplerate=SAMPLE_RATE,
            blocksize=CHUNK_SAMPLES,
            channels=1,
            dtype="int16",
            callback=self._callback,
        )
        stream.start()
        return stream

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        if self._loop is None or frames != CHUNK_SAMPLES:
            return
        chunk = AudioChunk(apply_gain(indata[:, 0].copy(), self.config.gain_db), time.time())
        self._loop.call_soon_threadsafe(self._enqueue, chunk)

    def _enqueue(self, chunk: AudioChunk) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.overruns += 1
        self._queue.put_nowait(chunk)

    async def open(self, *, require: bool = False) -> None:
        """Start the stream. If the device is missing, `require=True` raises
        `DeviceError`; otherwise `read()` gives silence while reconnecting."""
        self._loop = asyncio.get_running_loop()
        self._closed = False
        try:
            self._stream = await asyncio.to_thread(self._open_blocking)
        except DeviceError as exc:
            if require:
                raise
            self._disconnected(exc.message)
            return
        except Exception as exc:  # PortAudioError and friends: treat as unplugged
            error = DeviceError("audio_open_failed", f"{self.device_name} did not open: {exc}")
            if require:
                raise error from exc
            self._disconnected(error.message)
            return
        self._report("ok", f"open ({self.config.device})")

    def _disconnected(self, message: str) -> None:
        self._report("disconnected", message)
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.create_task(self._reconnect_loop())

    async def _stop_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(stream.close)

    async def _reconnect_loop(self) -> None:
        await self._stop_stream()
        while not self._closed:
            await asyncio.sleep(RECONNECT_INTERVAL_S)
            try:
                self._stream = await asyncio.to_thread(self._open_blocking)
            except Exception as exc:
                logger.debug("%s still unavailable: %s", self.device_name, exc)
                continue
            self._report("ok", f"reconnected ({self.config.device})")
            return

    async def read(self) -> AudioChunk:
        """The next 20 ms chunk; silence at the real rate while the device is gone."""
        if self._reconnect_task is not None and not self._reconnect_task.done():
            await self._pacer.wait()
            return AudioChunk(silence(), time.time())
        try:
            return await asyncio.wait_for(self._queue.get(), NO_AUDIO_TIMEOUT_S)
        except TimeoutError:
            self._disconnected(f"{self.device_name}: no audio for {NO_AUDIO_TIMEOUT_S:.0f} s")
            return AudioChunk(silence(), time.time())

    async def close(self) -> None:
        self._closed = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
        await self._stop_stream()
        self._report("disconnected", "closed")


class SoundDeviceOutput(DeviceStatusMixin):
    """Audio sink interface over a PortAudio output stream. `write()` waits while more
    than 100 ms is buffered, so a writer is paced by the speaker's clock."""

    kind: DeviceKind = "audio_out"
    MAX_BUFFERED = 5

    def __init__(self, config: AudioOutputConfig, board: StatusBoard | None = None) -> None:
        self.config = config
        self.device_name = config.name
        self.board = board or StatusBoard()
        self.chunks_written = 0
        self.underruns = 0
        self.last_dbfs = -120.0
        self._pending: collections.deque[npt.NDArray[np.int16]] = collections.deque()
        self._stream: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._space = asyncio.Event()

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        if self._pending and frames == CHUNK_SAMPLES:
            outdata[:, 0] = self._pending.popleft()
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._space.set)
        else:
            outdata.fill(0)
            self.underruns += 1

    def _open_blocking(self) -> Any:
        sd = portaudio()
        index = find_audio_device(self.config.device, "output", "speaker")
        if index is None:
            raise _missing("speaker", self.config.device, "audio")
        stream = sd.OutputStream(
            device=index,
            samplerate=SAMPLE_RATE,
            blocksize=CHUNK_SAMPLES,
            channels=1,
            dtype="int16",
            callback=self._callback,
        )
        stream.start()
        return stream

    async def open(self, *, require: bool = True) -> None:
        """Start the stream; raise `DeviceError` if the speaker is missing."""
        self._loop = asyncio.get_running_loop()
        try:
            self._stream = await asyncio.to_thread(self._open_blocking)
        except DeviceError as exc:
            self._report("disconnected", exc.message)
            raise
        except Exception as exc:
            self._report("error", f"speaker did not open: {exc}")
            raise DeviceError("speaker_open_failed", f"speaker did not open: {exc}") from exc
        self._report("ok", f"open ({self.config.device})")

    async def _wait_for_space(self, limit: int) -> bool:
        while len(self._pending) > limit:
            self._space.clear()
            try:
                await asyncio.wait_for(self._space.wait(), NO_AUDIO_TIMEOUT_S)
            except TimeoutError:
                return False
        return True

    async def write(self, chunk: AudioChunk) -> None:
        """Queue 20 ms for the speaker; a stalled device drops the chunk and reports it."""
        if not await self._wait_for_space(self.MAX_BUFFERED - 1):
            self._report("disconnected", "speaker stopped taking audio: check the cable")
            return
        self._pending.append(chunk.samples)
        self.chunks_written += 1
        self.last_dbfs = dbfs(chunk.samples)

    async def drain(self, timeout_s: float = 2.0) -> None:
        """Wait until everything written has been handed to the device."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wait_for_space(0), timeout_s)

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(stream.close)
        self._report("disconnected", "closed")
