"""aiortc media tracks fed from device sources, and sinks for what the specialist sends.

Sources pace themselves (a camera at its frame rate, audio every 20 ms) and do their
blocking work in threads, so `recv()` only awaits them. Timestamps come from a
monotonic clock so a wall-clock step never makes the receiver drop or stretch media.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time

import cv2
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, AudioResampler, VideoFrame

from telecart.cart_agent.lifecycle import cancel_and_wait
from telecart.cart_agent.stethoscope_filter import StethoscopeFilter
from telecart.devices.audio_chunk import CHUNK_SAMPLES, SAMPLE_RATE, AudioChunk, silence
from telecart.devices.slate import draw_slate
from telecart.devices.sources import AudioSink, AudioSource, CameraSource

log = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
AUDIO_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


def _bgr_to_frame(image: npt.NDArray[np.uint8]) -> VideoFrame:
    """BGR to an I420 frame (the encoder's own format, so it does no conversion)."""
    height, width = image.shape[:2]
    if width % 2 or height % 2:
        image = image[: height - height % 2, : width - width % 2]
    i420 = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), np.uint8)
    return VideoFrame.from_ndarray(i420, format="yuv420p")


class CameraTrack(MediaStreamTrack):
    """One outgoing video track (`role` "room" or "exam") reading from a camera source.

    The specialist may point the track at another camera (`use`) or pause it; a paused
    track sends a "paused" slate once a second so the receiver shows why it stopped.
    """

    kind = "video"

    def __init__(self, role: str, source: CameraSource) -> None:
        super().__init__()
        self.role = role
        self.source = source
        self.paused = False
        self.frames_sent = 0
        self.last_captured_at = 0.0
        self.latest_image: npt.NDArray[np.uint8] | None = None  # for stills mode
        self._origin = time.monotonic()

    def use(self, source: CameraSource) -> None:
        self.source = source

    def _pts(self) -> int:
        return int((time.monotonic() - self._origin) * VIDEO_CLOCK_RATE)

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.paused:
            await asyncio.sleep(1.0)
            image = draw_slate(640, 480, f"{self.role} camera paused", "paused by the specialist")
            captured_at = time.time()
        else:
            frame = await self.source.read()
            image, captured_at = frame.image, frame.captured_at
            self.latest_image = image
        video = await asyncio.to_thread(_bgr_to_frame, image)
        video.pts = self._pts()
        video.time_base = VIDEO_TIME_BASE
        self.frames_sent += 1
        self.last_captured_at = captured_at
        return video


class DeviceAudioTrack(MediaStreamTrack):
    """One outgoing mono audio track (`role` "stethoscope" or "voice"); `muted` sends silence.

    A stethoscope track runs its chunks through a `StethoscopeFilter` (band of interest,
    gain, never clipping); the filter keeps running while muted so unmuting is seamless.
    """

    kind = "audio"

    def __init__(
        self, role: str, source: AudioSource, band_filter: StethoscopeFilter | None = None
    ) -> None:
        super().__init__()
        self.role = role
        self.source = source
        self.band_filter = band_filter
        self.muted = False
        self.chunks_sent = 0
        self._samples = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        chunk = await self.source.read()
        samples = chunk.samples
        if self.band_filter is not None:
            samples = self.band_filter.process(samples)  # ~0.2 ms a chunk: inline
        if self.muted:
            samples = silence()
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._samples
        frame.time_base = AUDIO_TIME_BASE
        self._samples += samples.size
        self.chunks_sent += 1
        return frame


class RemoteAudioPlayer:
    """Plays a received audio track (the specialist's voice) on the cart's speaker."""

    def __init__(self, track: MediaStreamTrack, sink: AudioSink) -> None:
        self._track = track
        self._sink = sink
        self._resampler = AudioResampler(
            format="s16", layout="mono", rate=SAMPLE_RATE, frame_size=CHUNK_SAMPLES
        )
        self.chunks_played = 0
        self._task = asyncio.create_task(self._run(), name="remote-audio")

    async def _run(self) -> None:
        while True:
            try:
                frame = await self._track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, AudioFrame)
            for mono in self._resampler.resample(frame):
                samples = mono.to_ndarray().reshape(-1).astype(np.int16)
                if samples.size == CHUNK_SAMPLES:
                    await self._sink.write(AudioChunk(samples, time.time()))
                    self.chunks_played += 1

    async def close(self) -> None:
        await cancel_and_wait([self._task])


class RemoteVideo:
    """Keeps the latest frame of the specialist's video for the nurse screen."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self._track = track
        self.latest: VideoFrame | None = None
        self.frames_received = 0
        self._task = asyncio.create_task(self._run(), name="remote-video")

    async def _run(self) -> None:
        while True:
            try:
                frame = await self._track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, VideoFrame)
            self.latest = frame
            self.frames_received += 1

    async def close(self) -> None:
        await cancel_and_wait([self._task])
