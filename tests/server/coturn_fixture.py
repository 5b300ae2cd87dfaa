"""A real coturn `turnserver` on loopback, in TURN REST (`use-auth-secret`) mode.

Import the fixture explicitly: `from tests.server.coturn_fixture import coturn`.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aioice import stun

TURNSERVER = shutil.which("turnserver")
REALM = "telecart"
START_TIMEOUT_S = 15.0
RELAY_PORTS = 100


@dataclasses.dataclass(frozen=True)
class Coturn:
    port: int
    secret: str
    log_path: Path

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    """A port free for both UDP and TCP (coturn listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def _answers_stun(port: int) -> bool:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.sendto(bytes(request), ("127.0.0.1", port))
            data = sock.recv(2048)
        except OSError:
            return False
    response = stun.parse_message(data)
    return response.transaction_id == request.transaction_id


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    """coturn on 127.0.0.1, relaying between loopback peers, stopped after the test."""
    if TURNSERVER is None:
        pytest.skip("coturn's turnserver is not installed: apt-get install coturn")
    folder = tmp_path / "coturn"
    folder.mkdir()
    port = _free_port()
    # coturn skips relay ports that are taken, so a random range rarely collides.
    min_port = random.randrange(20000, 60000 - RELAY_PORTS)
    server = Coturn(port=port, secret=os.urandom(16).hex(), log_path=folder / "turn.log")
    args = [
        TURNSERVER,
        "-n",
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={port}",
        f"--min-port={min_port}",
        f"--max-port={min_port + RELAY_PORTS}",
        "--use-auth-secret",
        f"--static-auth-secret={server.secret}",
        f"--realm={REALM}",
        "--no-tls",
        "--no-dtls",
        "--allow-loopback-peers",
        "--no-cli",
        "--simple-log",
        "--verbose",
        f"--log-file={server.log_path}",
        f"--pidfile={folder / 'turnserver.pid'}",
        f"--userdb={folder / 'turndb'}",
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers_stun(port):
            if process.poll() is not None:
                pytest.fail(f"turnserver exited with {process.returncode}: {_log_of(server)}")
            if time.monotonic() > deadline:
                pytest.fail(f"turnserver did not answer within {START_TIMEOUT_S} s")
        yield server
    finally:
        _stop(process)


def _log_of(server: Coturn) -> str:
    try:
        return server.log()[-2000:]
    except OSError:
        return "(no log)"
