"""The userspace link emulator: two TUN devices joined by two ``LinkDirection`` models.

Up is cart → clinic (read from the cart's TUN, written to the clinic's), down the other
way. One thread runs one ``select`` loop over the TUN fds, the control socket and a stop
fd, with the model's next event as the timeout, on ``time.monotonic()``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.netlab.control import ControlServer
from bench.netlab.link_model import DirectionParams, LinkDirection
from bench.netlab.namespaces import TUN_NAME, NamespacePair
from bench.netlab.profiles import Profile
from bench.netlab.tun import open_tun

DIRECTIONS = ("up", "down")
SERIES_STEP_S = 0.1
_READ_BATCH = 64
_MAX_PACKET = 65535


@dataclasses.dataclass
class _Side:
    """One direction with the fds it reads from and writes to."""

    model: LinkDirection[bytes]
    read_fd: int
    write_fd: int
    bin_bytes: int = 0
    write_errors: int = 0


class EmulatedLink:
    """Forwards packets between ``cart_fd`` and ``clinic_fd`` through the profile's models."""

    def __init__(
        self,
        profile: Profile,
        cart_fd: int,
        clinic_fd: int,
        *,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self._clock = clock
        rng = random.Random(seed)
        now = clock()
        self._epoch = now
        self._sides = {
            "up": _Side(
                LinkDirection(profile.up, now, random.Random(rng.random())), cart_fd, clinic_fd
            ),
            "down": _Side(
                LinkDirection(profile.down, now, random.Random(rng.random())), clinic_fd, cart_fd
            ),
        }
        self._series: list[dict[str, float]] = []
        self._next_bin = now + SERIES_STEP_S
        self._running = False

    def set(self, direction: str, **params: Any) -> DirectionParams:
        """Change one direction's parameters now (see ``DirectionParams``)."""
        side = self._side(direction)
        side.model.set(self._clock(), **params)
        return side.model.params

    def restart_clock(self) -> None:
        """Make now t=0 for rate traces, outages and the series."""
        now = self._clock()
        self._epoch = now
        for side in self._sides.values():
            side.model.restart_clock(now)
        self._series.clear()
        self._next_bin = now + SERIES_STEP_S

    def stats(self) -> dict[str, Any]:
        now = self._clock()
        result: dict[str, Any] = {"t": now - self._epoch, "cpu_s": time.process_time()}
        for name, side in self._sides.items():
            stats = dataclasses.asdict(side.model.stats(now))
            stats["write_errors"] = side.write_errors
            result[name] = stats
        return result

    def series(self) -> list[dict[str, float]]:
        """Delivered kbit/s and capacity per 100 ms bin since the clock's start."""
        return list(self._series)

    def handle_request(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "ping":
            return {}
        if cmd == "stats":
            return {"stats": self.stats()}
        if cmd == "series":
            return {"series": self.series()}
        if cmd == "set":
            params = self.set(str(request["direction"]), **request.get("params", {}))
            return {"params": dataclasses.asdict(params)}
        if cmd == "restart_clock":
            self.restart_clock()
            return {}
        if cmd == "stop":
            self._running = False
            return {}
        raise ValueError(f"unknown command {cmd!r}")

    def run(self, control: ControlServer | None = None, stop_fds: tuple[int, ...] = ()) -> None:
        """Forward until a stop fd becomes readable (or hits EOF) or ``stop`` is requested."""
        self._running = True
        sides = list(self._sides.values())
        read_fds = {side.read_fd: side for side in sides}
        while self._running:
            now = self._clock()
            wake = self._next_bin
            for side in sides:
                next_event = side.model.next_wakeup()
                if next_event is not None and next_event < wake:
                    wake = next_event
            watched = [*read_fds, *stop_fds, *(control.fds() if control else [])]
            readable, _, _ = select.select(watched, [], [], max(0.0, wake - now))
            now = self._clock()
            for fd in readable:
                if fd in read_fds:
                    self._read_packets(read_fds[fd], now)
                elif fd in stop_fds:
                    self._running = False
                elif control is not None:
                    control.on_readable(fd)
            for side in sides:
                self._write_packets(side, now)
            if now >= self._next_bin:
                self._close_bins(now)

    def _side(self, direction: str) -> _Side:
        if direction not in self._sides:
            raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
        return self._sides[direction]

    def _read_packets(self, side: _Side, now: float) -> None:
        for _ in range(_READ_BATCH):
            try:
                packet = os.read(side.read_fd, _MAX_PACKET)
            except BlockingIOError:
                return
            side.model.enqueue(packet, len(packet), now)

    def _write_packets(self, side: _Side, now: float) -> None:
        for packet in side.model.pop_delivered(now):
            try:
                os.write(side.write_fd, packet)
                side.bin_bytes += len(packet)
            except OSError:
                side.write_errors += 1

    def _close_bins(self, now: float) -> None:
        while now >= self._next_bin:
            t = self._next_bin - self._epoch
            row = {"t": round(t, 3)}
            for name, side in self._sides.items():
                row[f"{name}_kbps"] = side.bin_bytes * 8 / SERIES_STEP_S / 1000.0
                row[f"{name}_capacity_kbps"] = side.model.rate_now(self._next_bin)
                side.bin_bytes = 0
            self._series.append(row)
            self._next_bin += SERIES_STEP_S


def serve(
    profile: Profile,
    namespaces: NamespacePair,
    control_path: Path,
    *,
    seed: int | None = None,
    watch_stdin: bool = False,
) -> None:
    """Open both TUNs in the (existing) namespaces, address them, and forward until stopped.

    Prints one JSON line ``{"ready": true, ...}`` on stdout once packets can flow. With
    ``watch_stdin`` it stops when stdin closes, so it never outlives the process that
    started it.
    """
    cart_fd = open_tun(TUN_NAME, namespaces.cart)
    clinic_fd = open_tun(TUN_NAME, namespaces.clinic)
    stop_r, stop_w = os.pipe()
    try:
        namespaces.configure_tuns()
        link = EmulatedLink(profile, cart_fd, clinic_fd, seed=seed)
        control = ControlServer(control_path, link.handle_request)
        try:

            def request_stop(signum: int, frame: object) -> None:
                os.write(stop_w, b"x")

            signal.signal(signal.SIGTERM, request_stop)
            signal.signal(signal.SIGINT, request_stop)
            ready = {"ready": True, "pid": os.getpid(), "control": str(control_path)}
            print(json.dumps(ready), flush=True)
            stop_fds = (stop_r, sys.stdin.fileno()) if watch_stdin else (stop_r,)
            link.run(control, stop_fds)
        finally:
            control.close()
    finally:
        for fd in (cart_fd, clinic_fd, stop_r, stop_w):
            os.close(fd)
