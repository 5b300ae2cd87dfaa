"""The emulator's control socket: one JSON object per line each way, on a unix socket.

Requests: ``{"cmd": "set", "direction": "up"|"down", "params": {...}}``,
``{"cmd": "stats"}``, ``{"cmd": "series"}``, ``{"cmd": "restart_clock"}``,
``{"cmd": "ping"}`` and ``{"cmd": "stop"}``. Every answer has ``"ok"``; a failed request
gets ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlServer:
    """Non-blocking server that the emulator's own select loop drives."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self._handler = handler
        path.unlink(missing_ok=True)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(8)
        self._listener.setblocking(False)
        self._clients: dict[int, tuple[socket.socket, bytearray]] = {}

    def fds(self) -> list[int]:
        return [self._listener.fileno(), *self._clients]

    def on_readable(self, fd: int) -> None:
        if fd == self._listener.fileno():
            conn, _ = self._listener.accept()
            conn.setblocking(False)
            self._clients[conn.fileno()] = (conn, bytearray())
            return
        conn, buffer = self._clients[fd]
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(fd)
            return
        buffer += data
        while b"\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\n")
            buffer[:] = rest
            reply = self._answer(line)
            try:
                conn.setblocking(True)
                conn.sendall(reply)
                conn.setblocking(False)
            except OSError:
                self._drop(fd)
                return

    def _answer(self, line: bytes) -> bytes:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            reply = {"ok": True, **self._handler(request)}
        except Exception as exc:  # the emulator keeps running whatever a client sends
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return json.dumps(reply).encode() + b"\n"

    def _drop(self, fd: int) -> None:
        conn, _ = self._clients.pop(fd)
        conn.close()

    def close(self) -> None:
        for fd in list(self._clients):
            self._drop(fd)
        self._listener.close()
        self.path.unlink(missing_ok=True)


class ControlError(RuntimeError):
    """The emulator refused a request; the message is its explanation."""


def _check(reply: dict[str, Any]) -> dict[str, Any]:
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "unknown error"))
    return reply


class ControlClient:
    """Asyncio client; one request at a time over one connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_unix_connection(
            str(self.path), limit=64 * 1024 * 1024
        )

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            if self._reader is None or self._writer is None:
                await self.connect()
            assert self._reader is not None and self._writer is not None
            self._writer.write(json.dumps(message).encode() + b"\n")
            await self._writer.drain()
            line = await self._reader.readline()
        if not line:
            raise ControlError(f"the emulator closed its control socket {self.path}")
        return _check(json.loads(line))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
            self._writer = self._reader = None


def request_once(path: Path, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Blocking single request, for the command line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(message).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    return _check(json.loads(data))
