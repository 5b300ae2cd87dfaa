"""The emulator loop and its control socket over datagram socket pairs (no root needed)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.netlab.control import ControlError, ControlServer, request_once
from bench.netlab.emulator import EmulatedLink
from bench.netlab.link_model import DirectionParams
from bench.netlab.profiles import Profile


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.cart, cart_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.clinic, clinic_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for end in (cart_end, clinic_end):
            end.setblocking(False)
        self._ends = (cart_end, clinic_end)
        params = DirectionParams(rate_kbps=10_000, delay_ms=30, queue_ms=200)
        profile = Profile("test", "", params, params)
        self.link = EmulatedLink(profile, cart_end.fileno(), clinic_end.fileno(), seed=1)
        self.control_path = tmp_path / "control.sock"
        self.control = ControlServer(self.control_path, self.link.handle_request)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self.link.run, args=(self.control, (self._stop_r,)))
        self._thread.start()

    def one_way_ms(self, sender: socket.socket, receiver: socket.socket) -> float:
        start = time.monotonic()
        sender.send(b"x" * 100)
        receiver.settimeout(5)
        assert receiver.recv(2048) == b"x" * 100
        return (time.monotonic() - start) * 1000

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join()
        self.control.close()
        for sock in (self.cart, self.clinic, *self._ends):
            sock.close()
        os.close(self._stop_r)
        os.close(self._stop_w)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


def test_packets_cross_with_the_configured_delay(harness: Harness) -> None:
    up = harness.one_way_ms(harness.cart, harness.clinic)
    down = harness.one_way_ms(harness.clinic, harness.cart)
    assert 29 <= up < 200
    assert 29 <= down < 200


def test_control_socket_changes_one_direction(harness: Harness) -> None:
    reply = request_once(
        harness.control_path, {"cmd": "set", "direction": "up", "params": {"delay_ms": 120}}
    )
    assert reply["params"]["delay_ms"] == 120
    assert harness.one_way_ms(harness.cart, harness.clinic) >= 119
    assert harness.one_way_ms(harness.clinic, harness.cart) < 119
    stats = request_once(harness.control_path, {"cmd": "stats"})["stats"]
    assert stats["up"]["delivered_packets"] == 1
    assert stats["up"]["rate_kbps"] == 10_000


def test_control_socket_reports_bad_requests(harness: Harness) -> None:
    with pytest.raises(ControlError, match="direction"):
        request_once(harness.control_path, {"cmd": "set", "direction": "sideways"})
    with pytest.raises(ControlError, match="unknown command"):
        request_once(harness.control_path, {"cmd": "explode"})


def test_series_has_a_row_per_100_ms(harness: Harness) -> None:
    time.sleep(0.35)
    series = request_once(harness.control_path, {"cmd": "series"})["series"]
    assert len(series) >= 3
    assert series[0]["t"] == pytest.approx(0.1)
    assert series[0]["up_capacity_kbps"] == 10_000
