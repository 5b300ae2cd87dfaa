"""V4L2 camera discovery: card names and supported capture modes, read with ioctls."""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import dataclass
from pathlib import Path

_CAP_VIDEO_CAPTURE = 0x00000001
_CAP_DEVICE_CAPS = 0x80000000
_BUF_TYPE_VIDEO_CAPTURE = 1
_FRMSIZE_TYPE_DISCRETE = 1
_FRMIVAL_TYPE_DISCRETE = 1


def _iowr(nr: int, size: int, read_only: bool = False) -> int:
    direction = 2 if read_only else 3
    return (direction << 30) | (size << 16) | (ord("V") << 8) | nr


_QUERYCAP = _iowr(0, 104, read_only=True)
_ENUM_FMT = _iowr(2, 64)
_ENUM_FRAMESIZES = _iowr(74, 44)
_ENUM_FRAMEINTERVALS = _iowr(75, 52)


@dataclass(frozen=True)
class CameraMode:
    pixel_format: str
    width: int
    height: int
    fps: tuple[float, ...]


@dataclass(frozen=True)
class V4L2Camera:
    path: str
    name: str
    bus: str
    modes: tuple[CameraMode, ...]


def _ioctl(fd: int, request: int, buf: bytearray) -> bool:
    try:
        fcntl.ioctl(fd, request, buf)
    except OSError:
        return False
    return True


def _intervals(fd: int, fourcc: int, width: int, height: int) -> tuple[float, ...]:
    rates: list[float] = []
    for index in range(64):
        buf = bytearray(struct.pack("=5I", index, fourcc, width, height, 0) + bytes(32))
        if not _ioctl(fd, _ENUM_FRAMEINTERVALS, buf):
            break
        kind, num, den = struct.unpack_from("=I2I", buf, 16)
        if kind != _FRMIVAL_TYPE_DISCRETE or num == 0:
            break
        rates.append(round(den / num, 2))
    return tuple(rates)


def _modes(fd: int) -> tuple[CameraMode, ...]:
    modes: list[CameraMode] = []
    for fmt_index in range(32):
        buf = bytearray(struct.pack("=2I", fmt_index, _BUF_TYPE_VIDEO_CAPTURE) + bytes(56))
        if not _ioctl(fd, _ENUM_FMT, buf):
            break
        (fourcc,) = struct.unpack_from("=I", buf, 44)
        name = fourcc.to_bytes(4, "little").decode("ascii", "replace").strip()
        for size_index in range(64):
            sbuf = bytearray(struct.pack("=3I", size_index, fourcc, 0) + bytes(32))
            if not _ioctl(fd, _ENUM_FRAMESIZES, sbuf):
                break
            kind, width, height = struct.unpack_from("=3I", sbuf, 8)
            if kind != _FRMSIZE_TYPE_DISCRETE:
                break
            modes.append(CameraMode(name, width, height, _intervals(fd, fourcc, width, height)))
    return tuple(modes)


def probe(path: str) -> V4L2Camera | None:
    """The camera at `path`, or None if it is absent or not a capture device."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        buf = bytearray(104)
        if not _ioctl(fd, _QUERYCAP, buf):
            return None
        card = buf[16:48].split(b"\0")[0].decode("utf-8", "replace")
        bus = buf[48:80].split(b"\0")[0].decode("utf-8", "replace")
        caps, device_caps = struct.unpack_from("=2I", buf, 84)
        effective = device_caps if caps & _CAP_DEVICE_CAPS else caps
        if not effective & _CAP_VIDEO_CAPTURE:
            return None
        return V4L2Camera(path, card, bus, _modes(fd))
    finally:
        os.close(fd)


def list_cameras(dev_dir: str = "/dev") -> list[V4L2Camera]:
    """Every V4L2 capture device (metadata-only nodes are left out). Blocking: use a thread."""
    paths = sorted(Path(dev_dir).glob("video*"), key=lambda p: (len(p.name), p.name))
    return [cam for p in paths if (cam := probe(str(p))) is not None]


def resolve_camera(source: str, dev_dir: str = "/dev") -> str | None:
    """A device path for `source` given as a path or as a card name (case-insensitive
    substring); None when no such V4L2 device exists. Blocking: use a thread."""
    if source.startswith("/dev/"):
        return source if os.path.exists(source) else None
    wanted = source.lower()
    for cam in list_cameras(dev_dir):
        if wanted in cam.name.lower():
            return cam.path
    return None
