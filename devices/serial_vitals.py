"""Serial vital-sign reader: pyserial in a thread, protocol parser, counters, hot-plug."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator

import serial

from .config import SerialConfig
from .errors import DeviceError
from .reconnect_policy import ReconnectPolicy, reconnect_blocking
from .serial_protocols import make_parser
from .status import DeviceKind, DeviceState, DeviceStatusMixin, StatusBoard
from .vitals import UNITS, FrameCounters, VitalsReading

SERIAL_HINT = "check the cable and the port name, then run `telecart devtest --only serial`"
POLL_INTERVAL_S = 1.0
QUEUE_READINGS = 200


class SerialVitalsReader(DeviceStatusMixin):
    """Reads one serial device. `readings()` yields `VitalsReading`s; bad bytes only bump
    `counters`. The port is read on a thread; if it disappears the status turns
    "disconnected" and the thread reopens it on the `reconnect_policy` schedule until
    `close()`."""

    kind: DeviceKind = "serial"

    def __init__(
        self, config: SerialConfig, board: StatusBoard | None = None, port: str | None = None
    ) -> None:
        self.config = config
        self.port = port or config.port
        self.device_name = config.name
        self.board = board or StatusBoard()
        self._parser = make_parser(config.protocol, config.fields)
        self._queue: asyncio.Queue[VitalsReading] = asyncio.Queue(QUEUE_READINGS)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._loop_thread: int | None = None
        self._policy = ReconnectPolicy(self.device_name, self._report_threadsafe, SERIAL_HINT)

    @property
    def counters(self) -> FrameCounters:
        return self._parser.counters

    def _open_blocking(self) -> serial.Serial:
        try:
            return serial.Serial(self.port, self.config.baudrate, timeout=0.1, write_timeout=1)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(
                f"{self.config.role}_missing",
                f"{self.device_name.capitalize()} not found on {self.port}: check the cable "
                f"and the port name, then run `telecart devtest --only serial` ({exc})",
            ) from exc

    async def open(self, *, require: bool = False) -> None:
        """Start reading. `require=True` raises `DeviceError` if the port cannot be
        opened now; otherwise the reader keeps trying in the background."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        first: serial.Serial | None = None
        try:
            first = await asyncio.to_thread(self._open_blocking)
        except DeviceError as exc:
            if require:
                raise
            self._policy.lost(exc.message)
        else:
            self._report("ok", f"open ({self.port})")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(first,), name=f"serial-{self.config.role}", daemon=True
        )
        self._thread.start()

    def _report_threadsafe(self, state: DeviceState, message: str) -> None:
        if threading.get_ident() == self._loop_thread:
            self._report(state, message)
        elif self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._report, state, message)

    def _deliver(self, reading: VitalsReading) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(reading)

    def _run(self, port: serial.Serial | None) -> None:
        while not self._stop.is_set():
            if port is None:
                port = reconnect_blocking(
                    self._policy, self._open_blocking, self._stop, f"reconnected ({self.port})"
                )
                if port is None:
                    return
            try:
                self._pump(port)
            except (serial.SerialException, OSError) as exc:
                self._policy.lost(
                    f"{self.device_name.capitalize()} disconnected from {self.port}: check "
                    f"the cable ({exc})"
                )
            finally:
                with contextlib.suppress(Exception):
                    port.close()
                port = None

    def _pump(self, port: serial.Serial) -> None:
        """Read and parse until stopped; raises when the port goes away."""
        request = self._parser.poll_request()
        next_poll = 0.0
        while not self._stop.is_set():
            if request is not None and time.monotonic() >= next_poll:
                port.write(request)
                next_poll = time.monotonic() + POLL_INTERVAL_S
            data = port.read(max(1, port.in_waiting))
            if not data:
                continue
            now = time.time()
            for kind, value in self._parser.feed(data):
                reading = VitalsReading(kind, value, UNITS[kind], self.device_name, now)
                if self._loop is not None and not self._loop.is_closed():
                    self._loop.call_soon_threadsafe(self._deliver, reading)

    async def read(self, timeout_s: float | None = None) -> VitalsReading:
        """The next reading; `TimeoutError` after `timeout_s`."""
        return await asyncio.wait_for(self._queue.get(), timeout_s)

    async def readings(self) -> AsyncIterator[VitalsReading]:
        """Every reading from now on, until cancelled."""
        if self._thread is None:
            await self.open()
        while True:
            yield await self._queue.get()

    async def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 3)
            self._thread = None
        self._report("disconnected", "closed")


class SimulatedSerialDevice(SerialVitalsReader):
    """The real reader attached to a `PtyDeviceSimulator` it starts and stops itself."""

    def __init__(self, config: SerialConfig, board: StatusBoard | None = None) -> None:
        from .serial_sim import PtyDeviceSimulator

        self.simulator = PtyDeviceSimulator(config.protocol)
        self.simulator.plug()
        super().__init__(config, board, port=self.simulator.port)

    async def close(self) -> None:
        await super().close()
        self.simulator.unplug()
