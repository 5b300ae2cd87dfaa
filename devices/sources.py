"""Factories: a config in, a source that speaks the common interface out, real or simulated.

The cart agent uses only these and the interfaces below; it never needs to know
whether a device is simulated.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from .audio import SoundDeviceInput, SoundDeviceOutput
from .audio_chunk import AudioChunk
from .audio_host import AudioHost
from .audio_sim import SimulatedAudioInput, SimulatedAudioOutput
from .camera import OpenCVCamera
from .camera_frame import CameraFrame
from .camera_sim import SimulatedCamera
from .config import SIMULATED, AudioInputConfig, AudioOutputConfig, CameraConfig, SerialConfig
from .serial_vitals import SerialVitalsReader, SimulatedSerialDevice
from .status import DeviceStatus, StatusBoard


class CameraSource(Protocol):
    async def open(self, *, require: bool = False) -> None: ...
    async def read(self) -> CameraFrame: ...
    async def capture_still(self) -> npt.NDArray[np.uint8]: ...
    async def close(self) -> None: ...
    @property
    def status(self) -> DeviceStatus: ...


class AudioSource(Protocol):
    async def open(self, *, require: bool = False) -> None: ...
    async def read(self) -> AudioChunk: ...
    async def close(self) -> None: ...
    @property
    def status(self) -> DeviceStatus: ...


class AudioSink(Protocol):
    async def open(self, *, require: bool = True) -> None: ...
    async def write(self, chunk: AudioChunk) -> None: ...
    async def close(self) -> None: ...
    @property
    def status(self) -> DeviceStatus: ...


def make_camera(config: CameraConfig, board: StatusBoard | None = None) -> CameraSource:
    if config.source == SIMULATED:
        return SimulatedCamera(config, board)
    return OpenCVCamera(config, board)


def make_audio_input(
    config: AudioInputConfig, board: StatusBoard | None = None, host: AudioHost | None = None
) -> AudioSource:
    """`host`: share one between a process's streams so they restart together."""
    if config.device == SIMULATED:
        return SimulatedAudioInput(config, board, seed=0 if config.role == "stethoscope" else 1)
    return SoundDeviceInput(config, board, host)


def make_audio_output(
    config: AudioOutputConfig, board: StatusBoard | None = None, host: AudioHost | None = None
) -> AudioSink:
    if config.device == SIMULATED:
        return SimulatedAudioOutput(config, board)
    return SoundDeviceOutput(config, board, host)


def make_serial_reader(
    config: SerialConfig, board: StatusBoard | None = None
) -> SerialVitalsReader:
    if config.port == SIMULATED:
        return SimulatedSerialDevice(config, board)
    return SerialVitalsReader(config, board)
