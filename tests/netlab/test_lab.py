"""A real lab: two namespaces, TUN devices and the emulator process (needs root)."""

from __future__ import annotations

import asyncio
import socket
import statistics
import struct
import subprocess
import time

import pytest

from bench.netlab import DirectionParams, LinkLab, Profile
from bench.netlab.namespaces import call_in_netns, netns_supported

_reason = netns_supported()
pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(_reason is not None, reason=f"link lab: {_reason}"),
]


def _namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def _udp_in(ns: str) -> socket.socket:
    return call_in_netns(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))


def _receive_delays_ms(rx: socket.socket) -> list[float]:
    delays: list[float] = []
    while True:
        try:
            data = rx.recv(100)
        except TimeoutError:
            return delays
        delays.append((time.monotonic() - struct.unpack("!Id", data)[1]) * 1000)


async def test_udp_crosses_with_delay_and_loss() -> None:
    params = DirectionParams(rate_kbps=2000, delay_ms=40, loss=0.2, queue_ms=300)
    async with LinkLab(Profile("test", "", params, params), seed=5) as lab:
        rx = _udp_in(lab.clinic_ns)
        rx.bind((lab.clinic_ip, 40000))
        rx.settimeout(1.0)
        tx = _udp_in(lab.cart_ns)
        receiving = asyncio.create_task(asyncio.to_thread(_receive_delays_ms, rx))
        n = 400
        for seq in range(n):
            tx.sendto(struct.pack("!Id", seq, time.monotonic()), (lab.clinic_ip, 40000))
            await asyncio.sleep(0.002)
        delays = await receiving
        tx.close()
        rx.close()
        stats = await lab.stats()
    assert 0.12 < 1 - len(delays) / n < 0.28
    assert 40 <= statistics.median(delays) < 60
    assert stats["up"]["model_losses"] + stats["up"]["delivered_packets"] == n


async def test_ping_works_and_namespaces_are_removed() -> None:
    async with LinkLab("good") as lab:
        names = (lab.cart_ns, lab.clinic_ns)
        assert all(name in _namespaces() for name in names)
        ping = await lab.run_in(
            lab.cart_ns,
            ["ping", "-c", "3", "-i", "0.2", "-W", "2", lab.clinic_ip],
            stdout=asyncio.subprocess.DEVNULL,
        )
        assert await ping.wait() == 0
        await lab.set_uplink(down=True)
        assert (await lab.stats())["up"]["rate_kbps"] == 0
    assert not any(name in _namespaces() for name in names)
