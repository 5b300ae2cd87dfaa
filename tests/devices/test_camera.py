"""Camera sources: the OpenCV backend on a real video file, and the simulator."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from telecart.devices.camera import OpenCVCamera
from telecart.devices.camera_sim import SimulatedCamera
from telecart.devices.config import CameraConfig
from telecart.devices.errors import DeviceError
from telecart.devices.timestamp_code import decode_timestamp, timestamp_ms
from telecart.devices.v4l2 import list_cameras

TIMEOUT = 15.0


def make_video(path: Path, frames: int = 10, size: tuple[int, int] = (320, 240)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25, size)
    assert writer.isOpened()
    for i in range(frames):
        image = np.zeros((size[1], size[0], 3), np.uint8)
        cv2.rectangle(image, (10 + i * 20, 60), (60 + i * 20, 160), (255, 255, 255), -1)
        writer.write(image)
    writer.release()


async def test_file_source_delivers_moving_frames_at_configured_size(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    make_video(video)
    camera = OpenCVCamera(CameraConfig("exam", str(video), width=160, height=120, fps=50))
    await camera.open(require=True)
    try:
        frames = [await camera.read() for _ in range(15)]  # past the end: the file loops
    finally:
        await camera.close()
    assert all(f.live and f.image.shape == (120, 160, 3) for f in frames)
    assert frames[0].image.dtype == np.uint8
    assert np.abs(frames[0].image.astype(int) - frames[3].image.astype(int)).mean() > 1


async def test_missing_file_raises_actionable_error(tmp_path: Path) -> None:
    camera = OpenCVCamera(CameraConfig("room", str(tmp_path / "none.avi")))
    with pytest.raises(DeviceError, match="not found") as info:
        await camera.open(require=True)
    assert info.value.code == "camera_missing"
    await camera.close()


async def test_unplugged_source_gives_slates_then_resumes(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    make_video(video, frames=5)
    camera = OpenCVCamera(CameraConfig("exam", str(video), width=320, height=240, fps=50))
    events: list[str] = []
    camera.board.subscribe(lambda s: events.append(s.state))
    await camera.open(require=True)
    try:
        last_live = await camera.read()
        os.rename(video, tmp_path / "away.avi")  # the source vanishes mid-stream
        async with asyncio.timeout(TIMEOUT):
            frame = await camera.read()
            while frame.live:
                frame = await camera.read()
        assert camera.status.state == "disconnected"
        assert frame.image.shape == (240, 320, 3)
        assert not np.array_equal(frame.image, last_live.image)
        assert frame.image[:, :, 2].mean() > frame.image[:, :, 0].mean()  # the red slate
        os.rename(tmp_path / "away.avi", video)
        async with asyncio.timeout(TIMEOUT):
            while not (await camera.read()).live:
                pass
        assert camera.status.state == "ok"
    finally:
        await camera.close()
    assert events[:3] == ["ok", "disconnected", "ok"]


async def test_simulated_camera_encodes_capture_time_and_moves() -> None:
    camera = SimulatedCamera(CameraConfig("room", "simulated"))
    await camera.open()
    frames = [await camera.read() for _ in range(3)]
    still = await camera.capture_still()
    camera.connected = False
    slate = await camera.read()
    await camera.close()
    for f in frames:
        assert f.image.shape == (480, 640, 3)
        assert decode_timestamp(f.image) == timestamp_ms(f.captured_at)
    assert not np.array_equal(frames[0].image[24:], frames[2].image[24:])
    assert still.shape == (1080, 1920, 3)
    assert not slate.live and decode_timestamp(slate.image) is None
    assert camera.status.state == "disconnected"


async def test_simulated_camera_is_paced_to_its_frame_rate() -> None:
    camera = SimulatedCamera(CameraConfig("room", "simulated", width=160, height=120, fps=25))
    await camera.open()
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(26):
        await camera.read()
    assert loop.time() - started >= 0.95  # never faster than real time


def test_real_v4l2_camera_when_present() -> None:
    cameras = list_cameras()
    if not cameras:
        pytest.skip("no V4L2 capture device on this machine (/dev/video* absent)")
    assert cameras[0].name and cameras[0].modes
