"""`telecart server` speaks systemd's notify protocol: READY, watchdog pings, STOPPING."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from telecart.service_notify import ServiceNotifier


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_notifies_ready_pings_watchdog_and_stops(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(path),
        "WATCHDOG_USEC": "200000",
        "TELECART_DATA_DIR": str(tmp_path / "data"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "telecart", "server", "--port", str(_free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        received: list[str] = []
        deadline = time.monotonic() + 30
        while sum("WATCHDOG=1" in m for m in received) < 3 and time.monotonic() < deadline:
            received.append(sock.recv(4096).decode())
        assert "READY=1" in received[0]
        assert sum("WATCHDOG=1" in m for m in received) >= 3
        proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in received[-1]:
            received.append(sock.recv(4096).decode())
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


def test_watchdog_ignored_when_meant_for_another_pid() -> None:
    notifier = ServiceNotifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_interval_s is None
    assert ServiceNotifier({"WATCHDOG_USEC": "1000000"}).watchdog_interval_s == 0.5


def test_no_socket_means_no_op() -> None:
    assert ServiceNotifier({}).notify("READY=1") is False


def test_abstract_socket_address(tmp_path: Path) -> None:
    name = f"telecart-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        assert ServiceNotifier({"NOTIFY_SOCKET": "@" + name}).notify("READY=1", "STATUS=x")
        assert sock.recv(100) == b"READY=1\nSTATUS=x"
    finally:
        sock.close()
