"""The one owner of PortAudio's lifetime for a group of audio streams, and its restart.

Streams register with an `AudioHost`; PortAudio runs in the host's worker process
(`portaudio_worker`, see there why not in this one). When a stream loses its device the
host probes, on the shared reconnect schedule, with a fresh short-lived PortAudio
(`portaudio_worker --list`) so the streams still playing are not disturbed. Once a
missing device is listed again it restarts the worker: every stream is told it is
interrupted, the old worker is stopped (killed if it hangs), a new one starts and
reopens every stream, and each stream reports "ok" (or stays "disconnected"). All of it
is subprocess I/O awaited on the event loop; nothing blocks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from typing import Any, Protocol

from .audio_wire import Frame, Kind, encode, read_frame
from .errors import DeviceError
from .portaudio_devices import Direction, device_matches, missing_device_error
from .reconnect_policy import BACKOFF, Backoff, ReconnectPolicy

logger = logging.getLogger(__name__)

WORKER = "telecart.devices.portaudio_worker"
OPEN_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 2.0
MAX_UNSENT_BYTES = 1 << 20


class HostedStream(Protocol):
    """What the host needs of a stream; its callbacks run on the event loop."""

    direction: Direction
    device_name: str
    policy: ReconnectPolicy

    @property
    def device(self) -> str: ...
    def on_chunk(self, samples: bytes) -> None: ...
    def on_consumed(self) -> None: ...
    def on_lost(self, message: str) -> None: ...
    def on_interrupted(self, message: str) -> None: ...
    def on_reopened(self) -> None: ...


class AudioHost:
    """Runs the PortAudio worker while any stream is registered; restarts it to pick up
    a returned device. Share one host between streams so they restart together."""

    def __init__(self, backoff: Backoff = BACKOFF) -> None:
        self.restarts = 0
        self._backoff = backoff
        self._streams: dict[int, HostedStream] = {}
        self._ids: dict[int, int] = {}  # id(stream) -> stream id on the wire
        self._next_id = 1
        self._replies: dict[int, asyncio.Future[Frame | None]] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None

    async def open(self, stream: HostedStream) -> None:
        """Register `stream` and open it; `DeviceError` says why it did not open (it
        stays registered until `close`, so `recover` can bring it back)."""
        sid = self._ids.get(id(stream))
        if sid is None:
            sid = self._ids[id(stream)] = self._next_id
            self._next_id += 1
        self._streams[sid] = stream
        await self._open_in_worker(sid, stream)

    def play(self, stream: HostedStream, samples: bytes) -> None:
        """Queue one chunk for an open output stream."""
        self._send(Kind.PLAY, self._ids[id(stream)], samples)

    def recover(self, stream: HostedStream) -> None:
        """`stream` lost its device (its policy says so): start the recovery loop."""
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover())

    async def close(self, stream: HostedStream) -> None:
        """Close and unregister `stream`; the worker stops with the last stream."""
        sid = self._ids.pop(id(stream), None)
        if sid is None:
            return
        self._streams.pop(sid, None)
        self._send(Kind.CLOSE, sid)
        if not self._streams:
            if self._recovery is not None:
                self._recovery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._recovery
            await self._stop_worker()

    async def _open_in_worker(self, sid: int, stream: HostedStream) -> None:
        if self._proc is None or self._proc.returncode is not None:
            await self._start_worker()
        reply: asyncio.Future[Frame | None] = asyncio.get_running_loop().create_future()
        self._replies[sid] = reply
        request = {"direction": stream.direction, "device": stream.device}
        self._send(Kind.OPEN, sid, json.dumps({**request, "role": stream.device_name}).encode())
        try:
            frame = await asyncio.wait_for(reply, OPEN_TIMEOUT_S)
        except TimeoutError:
            frame = None
        finally:
            self._replies.pop(sid, None)
        if frame is None:
            raise DeviceError(
                f"{stream.device_name}_open_failed".replace(" ", "_"),
                f"{stream.device_name} did not open: the audio engine stopped answering; "
                "run `telecart devtest --only audio`",
            )
        if frame[0] == Kind.FAILED:
            raise DeviceError(**json.loads(frame[2]))

    def _send(self, kind: Kind, sid: int, payload: bytes = b"") -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            return
        if proc.stdin.transport.get_write_buffer_size() < MAX_UNSENT_BYTES:
            proc.stdin.write(encode(kind, sid, payload))

    async def _start_worker(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            WORKER,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._proc = proc
        self._pump_task = asyncio.create_task(self._pump(proc))

    async def _stop_worker(self) -> None:
        """Ask the worker to leave (closing its stdin); kill it if it does not."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                logger.warning("audio worker did not stop in %.0f s: killed", STOP_TIMEOUT_S)
                proc.kill()
                await proc.wait()
        if self._pump_task is not None:
            await self._pump_task
            self._pump_task = None

    async def _pump(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while (frame := await read_frame(proc.stdout)) is not None:
            self._dispatch(frame)
        for reply in self._replies.values():
            if not reply.done():
                reply.set_result(None)
        if proc is self._proc:  # it died by itself
            self._proc = None
            for stream in list(self._streams.values()):
                stream.on_lost(f"audio engine stopped (exit {await proc.wait()})")

    def _dispatch(self, frame: Frame) -> None:
        kind, sid, payload = frame
        reply = self._replies.get(sid)
        if kind in (Kind.OPENED, Kind.FAILED) and reply is not None and not reply.done():
            reply.set_result(frame)
        stream = self._streams.get(sid)
        if stream is None:
            return
        if kind == Kind.CHUNK:
            stream.on_chunk(payload)
        elif kind == Kind.CONSUMED:
            stream.on_consumed()
        elif kind == Kind.LOST:
            stream.on_lost(f"{stream.device_name}: {payload.decode()}")

    async def _recover(self) -> None:
        for delay in self._backoff.delays():
            await asyncio.sleep(delay)
            missing = [s for s in self._streams.values() if s.policy.missing]
            if not missing:
                return
            try:
                listed = await self._probe()
            except Exception as exc:
                for stream in missing:
                    stream.policy.failed(exc)
                continue
            back = [
                s for s in missing if any(device_matches(d, s.device, s.direction) for d in listed)
            ]
            for stream in missing:
                if stream not in back:
                    stream.policy.failed(missing_device_error(stream.device_name, stream.device))
            if back:
                await self._restart(back)

    async def _probe(self) -> list[dict[str, Any]]:
        """The devices a fresh PortAudio sees now, from a short-lived worker."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            WORKER,
            "--list",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out = b""
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_S)
        except TimeoutError:
            pass
        finally:
            if proc.returncode is None:  # timed out, or we were cancelled
                proc.kill()
                await proc.wait()
        if proc.returncode != 0 or not out:
            raise DeviceError(
                "audio_probe_failed",
                f"listing audio devices failed (exit {proc.returncode}): check that "
                "libportaudio2 is installed, then run `telecart devtest --list`",
            )
        devices: list[dict[str, Any]] = json.loads(out)
        return devices

    async def _restart(self, back: list[HostedStream]) -> None:
        """Close all, re-initialise PortAudio in a new worker, reopen all."""
        names = ", ".join(s.device_name for s in back)
        for stream in self._streams.values():
            if not stream.policy.missing:
                stream.on_interrupted(f"audio restarting to pick up {names}")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._stop_worker()
        self.restarts += 1
        for sid, stream in list(self._streams.items()):
            try:
                await self._open_in_worker(sid, stream)
            except DeviceError as exc:
                if stream.policy.missing:
                    stream.policy.failed(exc)
                else:
                    stream.on_lost(exc.message)
                continue
            stream.on_reopened()
        logger.info("audio restarted for %s in %.2f s", names, loop.time() - started)
