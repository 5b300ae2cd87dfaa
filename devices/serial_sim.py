"""Simulated serial vital-sign devices speaking the real protocols over a pseudo-terminal.

The simulator owns the master side of `os.openpty()`; the real reader opens the slave
path (or `link`, a stable symlink like udev's /dev/serial/by-id names) with pyserial.
`unplug()` closes the pty and removes the link; `plug()` makes a new one at the link.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import threading
import time
import tty
from pathlib import Path

from .accutorr_protocol import BANNER, PROMPT, PROMPT_REQUEST, SHOW_PATIENT, encode_patient_answer
from .bp_protocol import encode_bp_response, is_bp_request
from .config import SERIAL_PROTOCOLS
from .key_value_protocol import encode_line
from .oximeter_protocol import encode_packet

PACKET_S = 1 / 3


class PtyDeviceSimulator:
    """A device on a pty: `nonin_oem3_df2` streams 3 packets/s, `suntech_advantage`
    answers each "Get BP data" request, `datascope_accutorr` greets, then answers each
    "P" (and the prompt request), `key_value` sends a line per second."""

    def __init__(self, protocol: str, link: str | Path | None = None) -> None:
        if protocol not in SERIAL_PROTOCOLS:
            raise ValueError(f"no simulator for protocol {protocol!r}")
        self.protocol = protocol
        self.link = Path(link) if link is not None else None
        self.spo2 = 97
        self.heart_rate = 72
        self.bp = (121, 79, 93)
        self.bp_elapsed_min = 3  # minutes since the last measurement (Accutorr)
        self.accutorr_status = (0, 0, 0)  # the three status bytes of a "P" answer
        self.requests_seen = 0
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_path = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> str:
        """The path a reader opens: the link if one was asked for, else the pty slave."""
        return str(self.link) if self.link is not None else self._slave_path

    def plug(self) -> None:
        """Create the pty (and link) and start talking."""
        master, slave = os.openpty()
        tty.setraw(slave)  # binary-clean before any reader configures it
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._slave_path = os.ttyname(slave)
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            self.link.symlink_to(self._slave_path)
        self._stop.clear()
        if self.protocol == "datascope_accutorr":
            self._write(f"{BANNER}\r\n>".encode("ascii"))
        self._thread = threading.Thread(target=self._run, name=f"sim-{self.protocol}", daemon=True)
        self._thread.start()

    def unplug(self) -> None:
        """Close the pty: the reader sees the device vanish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        with self._lock:
            for fd in (self._master, self._slave):
                if fd is not None:
                    os.close(fd)
            self._master = self._slave = None

    def inject(self, data: bytes) -> None:
        """Put raw bytes (garbage, corrupt frames) into the stream."""
        self._write(data)

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self._master is None:
                return
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._master, data)  # a full buffer (no reader yet) drops data

    def _run(self) -> None:
        started = time.monotonic()
        request = bytearray()
        while not self._stop.is_set():
            t = time.monotonic() - started
            if self.protocol == "nonin_oem3_df2":
                hr = self.heart_rate + round(2 * math.sin(t / 7))
                pleth = [
                    128 + round(90 * math.sin(2 * math.pi * (t + i / 75) * hr / 60))
                    for i in range(25)
                ]
                self._write(encode_packet(self.spo2, hr, pleth))
                self._stop.wait(PACKET_S)
            elif self.protocol == "key_value":
                self._write(encode_line({"SPO2": self.spo2, "PR": self.heart_rate, "TEMP": 36.8}))
                self._stop.wait(1.0)
            elif self.protocol == "datascope_accutorr":
                self._answer_accutorr(self._read_request())
            else:
                request += self._read_request()
                if is_bp_request(bytes(request)):
                    request.clear()
                    self.requests_seen += 1
                    sys_, dia, mean = self.bp
                    self._write(encode_bp_response(sys_, dia, self.heart_rate, mean))
                del request[:-16]

    def _answer_accutorr(self, commands: bytes) -> None:
        for command in commands:
            if command == SHOW_PATIENT[0]:
                self.requests_seen += 1
                sys_, dia, mean = self.bp
                answer = encode_patient_answer(
                    self.spo2,
                    self.heart_rate,
                    sys_,
                    mean,
                    dia,
                    self.bp_elapsed_min,
                    self.accutorr_status,
                )
                self._write(answer)
            elif command == PROMPT_REQUEST[0]:
                self._write(PROMPT)

    def _read_request(self) -> bytes:
        master = self._master
        if master is None:
            return b""
        ready, _, _ = select.select([master], [], [], 0.1)
        if not ready:
            return b""
        try:
            return os.read(master, 256)
        except OSError:
            return b""
