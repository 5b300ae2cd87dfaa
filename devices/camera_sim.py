"""Simulated camera: a moving test scene with role label, clock and timestamp strip."""

from __future__ import annotations

import asyncio
import math
import time

import cv2
import numpy as np
import numpy.typing as npt

from .camera_frame import CameraFrame
from .config import CameraConfig
from .pacing import Pacer
from .slate import camera_disconnected_slate
from .status import DeviceKind, DeviceStatusMixin, StatusBoard
from .timestamp_code import STRIP_ROWS, encode_timestamp


def render_test_scene(width: int, height: int, role: str, at: float) -> npt.NDArray[np.uint8]:
    """Colour bars, a ball circling the frame, the role and the wall-clock time."""
    frame = np.empty((height, width, 3), np.uint8)
    bars = np.array(
        [
            (192, 192, 192),
            (0, 192, 192),
            (192, 192, 0),
            (0, 192, 0),
            (192, 0, 192),
            (0, 0, 192),
            (192, 0, 0),
        ],
        np.uint8,
    )
    columns = (np.arange(width) * len(bars) // width).clip(0, len(bars) - 1)
    frame[:] = bars[columns][None, :, :]
    lower = height * 2 // 3
    frame[lower:] = np.linspace(16, 235, width, dtype=np.uint8)[None, :, None]
    phase = (at % 4.0) / 4.0 * 2 * math.pi
    radius = max(4, min(width, height) // 10)
    cx = int(width / 2 + (width / 2 - radius - 4) * math.cos(phase))
    cy = int(
        STRIP_ROWS
        + (height - STRIP_ROWS) / 2
        + ((height - STRIP_ROWS) / 2 - radius - 4) * math.sin(phase)
    )
    cv2.circle(frame, (cx, cy), radius, (255, 255, 255), -1, cv2.LINE_AA)
    cv2.circle(frame, (cx, cy), radius // 2, (0, 0, 0), -1, cv2.LINE_AA)
    scale = max(0.4, width / 640)
    thickness = max(1, round(2 * scale))
    label = f"SIMULATED {role.upper()} CAMERA"
    clock = time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"
    for text, y in ((label, STRIP_ROWS + int(40 * scale)), (clock, lower - int(12 * scale))):
        cv2.putText(
            frame,
            text,
            (int(12 * scale), y),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            thickness + 2,
            cv2.LINE_AA,
        )
        cv2.putText(
            frame,
            text,
            (int(12 * scale), y),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )
    encode_timestamp(frame, at)
    return frame


class SimulatedCamera(DeviceStatusMixin):
    """Speaks the camera source interface; `connected = False` simulates an unplug."""

    kind: DeviceKind = "camera"

    def __init__(self, config: CameraConfig, board: StatusBoard | None = None) -> None:
        self.config = config
        self.device_name = config.name
        self.board = board or StatusBoard()
        self.connected = True
        self._pacer = Pacer(1.0 / config.fps)
        self._open = False

    async def open(self, *, require: bool = False) -> None:
        self._open = True
        self._report("ok", "simulated test scene")

    async def read(self) -> CameraFrame:
        await self._pacer.wait()
        now = time.time()
        c = self.config
        if not self.connected:
            self._report("disconnected", "simulated unplug")
            return CameraFrame(
                camera_disconnected_slate(c.width, c.height, self.device_name), now, live=False
            )
        self._report("ok", "simulated test scene")
        return CameraFrame(render_test_scene(c.width, c.height, c.role, now), now)

    async def capture_still(self) -> npt.NDArray[np.uint8]:
        c = self.config
        return await asyncio.to_thread(
            render_test_scene, c.still_width, c.still_height, c.role, time.time()
        )

    async def close(self) -> None:
        self._open = False
