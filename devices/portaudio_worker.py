"""The process that owns PortAudio: opens streams on request and relays 20 ms chunks.

`AudioHost` runs it as `python -m telecart.devices.portaudio_worker`, talking
`audio_wire` frames over stdin/stdout. PortAudio lives here, not in the cart process,
because PortAudio only sees a returned device after Pa_Terminate/Pa_Initialize, and once
a JACK server has died under an open stream, closing that stream blocks for 600 s and
Pa_Terminate aborts the process (measured with Debian's libportaudio2 19.6.0): killing
this process is the one reliable way to start again.

`--list` prints the devices a fresh PortAudio sees as JSON and exits.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import sys
import threading
import time
from typing import Any, BinaryIO

from .audio_chunk import CHUNK_SAMPLES, SAMPLE_RATE
from .audio_wire import Kind, encode, read_frame_blocking
from .errors import DeviceError
from .portaudio_devices import (
    Direction,
    find_audio_device,
    list_audio_devices,
    missing_device_error,
    portaudio,
)

STALL_S = 1.0  # no callback for this long: the device is gone
WATCH_INTERVAL_S = 0.2


class WorkerStream:
    """One PortAudio stream (mono int16, 48 kHz, 20 ms blocks) on its device callback."""

    def __init__(
        self, sid: int, direction: Direction, index: int, send: queue.SimpleQueue[bytes]
    ) -> None:
        self.sid = sid
        self.lost = False
        self.last_callback = time.monotonic()
        self.pending: collections.deque[bytes] = collections.deque()
        self._send = send
        sd = portaudio()
        kind = sd.RawInputStream if direction == "input" else sd.RawOutputStream
        callback = self._input if direction == "input" else self._output
        self.stream = kind(
            device=index,
            samplerate=SAMPLE_RATE,
            blocksize=CHUNK_SAMPLES,
            channels=1,
            dtype="int16",
            callback=callback,
        )
        self.stream.start()

    def _input(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        self.last_callback = time.monotonic()
        if frames == CHUNK_SAMPLES:
            self._send.put(encode(Kind.CHUNK, self.sid, bytes(indata)))

    def _output(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        self.last_callback = time.monotonic()
        if self.pending and frames == CHUNK_SAMPLES:
            outdata[:] = self.pending.popleft()
            self._send.put(encode(Kind.CONSUMED, self.sid))
        else:
            outdata[:] = bytes(len(outdata))

    def close(self) -> None:
        # A stream whose device died is left open: closing it can block for minutes.
        if not self.lost:
            self.stream.close()


class Worker:
    """Executes OPEN/CLOSE/PLAY from the host; a watchdog reports stalled streams."""

    def __init__(self, stdout: BinaryIO) -> None:
        self.streams: dict[int, WorkerStream] = {}
        self.send: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._stdout = stdout
        threading.Thread(target=self._write, name="audio-out", daemon=True).start()
        threading.Thread(target=self._watch, name="audio-watchdog", daemon=True).start()

    def _write(self) -> None:
        while True:
            self._stdout.write(self.send.get())
            self._stdout.flush()

    def _watch(self) -> None:
        while True:
            time.sleep(WATCH_INTERVAL_S)
            now = time.monotonic()
            for stream in list(self.streams.values()):
                if not stream.lost and now - stream.last_callback > STALL_S:
                    stream.lost = True
                    message = f"no audio callback for {STALL_S:.0f} s: the device stopped"
                    self.send.put(encode(Kind.LOST, stream.sid, message.encode()))

    def handle(self, kind: Kind, sid: int, payload: bytes) -> None:
        if kind == Kind.PLAY and sid in self.streams:
            self.streams[sid].pending.append(payload)
        elif kind == Kind.OPEN:
            self._open(sid, json.loads(payload))
        elif kind == Kind.CLOSE and sid in self.streams:
            self.streams.pop(sid).close()

    def _open(self, sid: int, request: dict[str, str]) -> None:
        direction: Direction = "input" if request["direction"] == "input" else "output"
        role, device = request["role"], request["device"]
        try:
            index = find_audio_device(device, direction)
            if index is None:
                raise missing_device_error(role, device)
            self.streams[sid] = WorkerStream(sid, direction, index, self.send)
        except DeviceError as exc:
            self._fail(sid, exc.code, exc.message)
        except Exception as exc:  # PortAudioError and friends
            self._fail(sid, f"{role}_open_failed", f"{role} ({device}) did not open: {exc}")
        else:
            self.send.put(encode(Kind.OPENED, sid))

    def shutdown(self) -> None:
        """Close everything cleanly (a JACK server sees its client leave), unless a
        device died: then Pa_Terminate could block or abort, and exiting is enough."""
        if any(stream.lost for stream in self.streams.values()):
            return
        for stream in self.streams.values():
            stream.close()
        portaudio()._terminate()

    def _fail(self, sid: int, code: str, message: str) -> None:
        reply = json.dumps({"code": code, "message": message}).encode()
        self.send.put(encode(Kind.FAILED, sid, reply))


def main(argv: list[str]) -> None:
    # Native libraries may print to fd 1: frames go to a private copy of it instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    if "--list" in argv:
        out.write(json.dumps(list_audio_devices()).encode())
        out.flush()
        return
    worker = Worker(out)
    while (frame := read_frame_blocking(sys.stdin.buffer)) is not None:
        worker.handle(*frame)
    worker.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
