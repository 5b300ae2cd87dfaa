"""Real camera source (OpenCV backend): V4L2 device, file or URL, with hot-plug.

Why OpenCV and not PyAV: see docs/devices.md ("Camera backend choice") and
bench/camera_backends.py for the measured latency and CPU of both.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from .camera_frame import CameraFrame
from .config import CameraConfig
from .errors import DeviceError
from .pacing import Pacer
from .reconnect_policy import ReconnectPolicy, reconnect
from .slate import camera_disconnected_slate
from .status import DeviceKind, DeviceStatusMixin, StatusBoard
from .v4l2 import resolve_camera

T = TypeVar("T")
CAMERA_HINT = "check the USB cable, then run `telecart devtest --only camera`"
READ_TIMEOUT_S = 3.0


def is_device_source(source: str) -> bool:
    """True for a V4L2 device (path or card name), False for a file path or URL."""
    if source.startswith("/dev/"):
        return True
    return "://" not in source and os.path.sep not in source and not os.path.exists(source)


class OpenCVCamera(DeviceStatusMixin):
    """Camera source over `cv2.VideoCapture`. Every cv2 call runs on the camera's own
    worker thread, so the event loop never blocks and calls never interleave.

    A file source loops (reopened by path at its end) and is paced at the configured
    rate; a device or URL is paced by itself. When frames stop (unplugged, file gone),
    `read()` returns "camera disconnected" slates at the configured rate, the status
    turns "disconnected", and a reconnect loop reopens the source when it returns.
    """

    kind: DeviceKind = "camera"

    def __init__(self, config: CameraConfig, board: StatusBoard | None = None) -> None:
        self.config = config
        self.device_name = config.name
        self.board = board or StatusBoard()
        self._is_device = is_device_source(config.source)
        self._cap: cv2.VideoCapture | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"camera-{config.role}")
        self._pacer = Pacer(1.0 / config.fps)
        self._reconnect_task: asyncio.Task[None] | None = None
        self._policy = ReconnectPolicy(self.device_name, self._report, CAMERA_HINT)
        self._closed = False
        self.frames_read = 0

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def _open_blocking(self) -> cv2.VideoCapture:
        c = self.config
        if self._is_device:
            path = resolve_camera(c.source)
            if path is None:
                raise DeviceError(
                    "camera_missing",
                    f"{self.device_name} not found ({c.source}): check the USB cable, "
                    "then run `telecart devtest --only camera`",
                )
            cap = cv2.VideoCapture(path, cv2.CAP_V4L2)
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
            cap.set(cv2.CAP_PROP_FPS, c.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        else:
            if "://" not in c.source and not os.path.exists(c.source):
                raise DeviceError(
                    "camera_missing",
                    f"{self.device_name}: video file {c.source} not found: fix `source` "
                    "in [[devices.camera]]",
                )
            cap = cv2.VideoCapture(c.source)
        if not cap.isOpened():
            cap.release()
            raise DeviceError(
                "camera_open_failed",
                f"{self.device_name} ({c.source}) did not open: unplug and replug it, "
                "then run `telecart devtest --only camera`",
            )
        return cap

    def _read_blocking(self) -> npt.NDArray[np.uint8] | None:
        """One frame at the configured size; a file is reopened at its end."""
        if self._cap is None:
            return None
        ok, image = self._cap.read()
        if not ok and not self._is_device and "://" not in self.config.source:
            self._cap.release()
            self._cap = None
            self._cap = self._open_blocking()
            ok, image = self._cap.read()
        if not ok or image is None:
            return None
        return self._fit(np.asarray(image, np.uint8), self.config.width, self.config.height)

    @staticmethod
    def _fit(image: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
        image = np.asarray(image, np.uint8)
        if image.ndim == 2:
            image = np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), np.uint8)
        if image.shape[1] != width or image.shape[0] != height:
            image = np.asarray(
                cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), np.uint8
            )
        return np.ascontiguousarray(image, dtype=np.uint8)

    def _release_blocking(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    async def open(self, *, require: bool = False) -> None:
        """Open the source. If it is missing, `require=True` raises `DeviceError`;
        otherwise `read()` serves slates while a reconnect loop keeps trying."""
        self._closed = False
        try:
            self._cap = await self._run(self._open_blocking)
        except DeviceError as exc:
            if require:
                raise
            self._disconnected(exc.message)
            return
        self._report("ok", f"open ({self.config.source})")

    def _disconnected(self, message: str) -> None:
        self._policy.lost(message)
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        async def attempt() -> None:
            await self._run(self._release_blocking)
            self._cap = await self._run(self._open_blocking)

        await reconnect(
            self._policy, attempt, lambda: self._closed, f"reconnected ({self.config.source})"
        )

    def _slate(self) -> CameraFrame:
        c = self.config
        image = camera_disconnected_slate(c.width, c.height, self.device_name)
        return CameraFrame(image, time.time(), live=False)

    async def read(self) -> CameraFrame:
        """The next frame, or a "camera disconnected" slate while the source is gone."""
        if not self._is_device:
            await self._pacer.wait()
        if self._reconnect_task is not None and not self._reconnect_task.done():
            if self._is_device:
                await self._pacer.wait()
            return self._slate()
        try:
            image = await asyncio.wait_for(self._run(self._read_blocking), READ_TIMEOUT_S)
        except DeviceError as exc:
            message, image = exc.message, None
        except TimeoutError:
            # The worker thread is stuck in the driver: abandon it, start a fresh one.
            self._executor.shutdown(wait=False)
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"camera-{self.config.role}")
            self._cap = None
            message, image = f"no frame for {READ_TIMEOUT_S:.0f} s", None
        else:
            message = "frames stopped: check the USB cable"
        if image is None:
            self._disconnected(f"{self.device_name}: {message}")
            return self._slate()
        self.frames_read += 1
        return CameraFrame(image, time.time())

    async def capture_still(self) -> npt.NDArray[np.uint8]:
        """A frame at `still_width`×`still_height` (the device's native maximum when it
        supports it; a file or URL frame is returned at its own size)."""
        c = self.config

        def grab() -> npt.NDArray[np.uint8]:
            if self._cap is None:
                raise DeviceError("camera_disconnected", f"{self.device_name} is disconnected")
            if not self._is_device:
                ok, image = self._cap.read()
                if not ok:
                    raise DeviceError("camera_no_frame", f"{self.device_name} gave no frame")
                return np.ascontiguousarray(image, dtype=np.uint8)
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.still_width)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.still_height)
            try:
                for _ in range(3):  # the first frames after a mode switch are often stale
                    ok, image = self._cap.read()
                if not ok:
                    raise DeviceError("camera_no_frame", f"{self.device_name} gave no still")
                return np.ascontiguousarray(image, dtype=np.uint8)
            finally:
                self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
                self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)

        return await self._run(grab)

    async def close(self) -> None:
        self._closed = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
        await self._run(self._release_blocking)
        self._executor.shutdown(wait=False)
        self._report("disconnected", "closed")
