"""The cart's devices for the agent's lifetime, opened from a `DevicesConfig`."""

from __future__ import annotations

import asyncio
import logging

from telecart.devices.audio_host import AudioHost
from telecart.devices.config import DevicesConfig
from telecart.devices.sources import (
    AudioSink,
    AudioSource,
    CameraSource,
    make_audio_input,
    make_audio_output,
    make_camera,
    make_serial_reader,
)
from telecart.devices.status import StatusBoard

log = logging.getLogger(__name__)


class MissingDeviceError(Exception):
    """The configuration lacks a device the consultation needs."""


class CartDevices:
    """Cameras by role, audio inputs by role, the speaker and the serial readers.

    Opening never fails because a device is unplugged: sources report "disconnected"
    and reconnect by themselves, so a consultation can start without the stethoscope.
    """

    def __init__(self, config: DevicesConfig) -> None:
        self.board = StatusBoard()
        audio_host = AudioHost()  # one PortAudio owner: the streams restart together
        self.cameras: dict[str, CameraSource] = {
            c.role: make_camera(c, self.board) for c in config.cameras
        }
        self.audio_inputs: dict[str, AudioSource] = {
            a.role: make_audio_input(a, self.board, audio_host) for a in config.audio_inputs
        }
        self.speaker: AudioSink | None = (
            make_audio_output(config.audio_output, self.board, audio_host)
            if config.audio_output
            else None
        )
        self.serial = [make_serial_reader(s, self.board) for s in config.serial]
        for role in ("room", "exam"):
            if role not in self.cameras:
                raise MissingDeviceError(
                    f'no {role} camera in [[devices.camera]]: add one with role = "{role}" '
                    '(source = "simulated" for a test)'
                )
        for role in ("stethoscope", "voice"):
            if role not in self.audio_inputs:
                raise MissingDeviceError(
                    f"no {role} input in [[devices.audio_input]]: add one with role = "
                    f'"{role}" (device = "simulated" for a test)'
                )

    async def open(self) -> None:
        for camera in self.cameras.values():
            await camera.open()
        for source in self.audio_inputs.values():
            await source.open()
        for reader in self.serial:
            await reader.open()
        if self.speaker is not None:
            # A speaker missing now is "disconnected" and retried like an unplugged one;
            # meanwhile the specialist's voice is dropped at its own pace.
            await self.speaker.open(require=False)

    async def close(self) -> None:
        closers = [
            *(c.close() for c in self.cameras.values()),
            *(a.close() for a in self.audio_inputs.values()),
            *(r.close() for r in self.serial),
        ]
        if self.speaker is not None:
            closers.append(self.speaker.close())
        for result in await asyncio.gather(*closers, return_exceptions=True):
            if isinstance(result, Exception):
                log.warning("closing a device failed: %s", result)
