"""TUN devices opened inside a named network namespace."""

from __future__ import annotations

import fcntl
import os
import struct

from bench.netlab.namespaces import call_in_netns

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_TUN_DEVICE = "/dev/net/tun"


class TunError(OSError):
    """A TUN device could not be opened; the message says what to check."""


def _open_here(name: str) -> int:
    if not os.path.exists(_TUN_DEVICE):
        raise TunError(f"{_TUN_DEVICE} is missing: load the tun module (modprobe tun)")
    fd = os.open(_TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    except OSError as exc:
        os.close(fd)
        raise TunError(exc.errno, f"TUNSETIFF {name} failed: {exc.strerror}") from exc
    return fd


def open_tun(name: str, netns: str) -> int:
    """Create TUN ``name`` inside ``netns``; return its non-blocking fd (the device's life)."""
    return call_in_netns(netns, lambda: _open_here(name))
