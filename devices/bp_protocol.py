"""SunTech Advantage OEM NIBP module (blood pressure), serial interface.

No SunTech document could be found to check this against (searched: "SunTech Advantage
OEM BP module interface", "SunTech Advantage 2.0 serial protocol", "SunTech Vital signs
module command", "Advantage OEM NIBP Module Interface Specification" in public docs,
manuals and code). What follows agrees with two independent host implementations of
this module found in public code (a Qt patient-monitor "SuntechProvider" in two versions)
and with the earlier open-source source of these offsets. 9600 baud, 8N1.

    host command   ':' (0x3A), command bytes..., CHK          (no length byte)
    response       '>' (0x3E), LEN, data..., CHK      (LEN counts every byte of the frame)
    checksum       the byte that makes the sum of all frame bytes 0 mod 256

"Get BP data" is sent as 3A 79 03 00 4A; its response has LEN 0x18 (24 bytes) with,
little-endian: systolic u16 at offset 2, diastolic u16 at offset 4, pulse rate u16 at
offset 16, mean arterial pressure u16 at offset 18 (mmHg, bpm) and the measurement's
error code at offset 20 (0 = valid; e.g. 0x01 weak signal, 0x02 erratic signal, 0x03 out
of range, 0x04 timeout); the other bytes (cycle, time, status) are not used here. Verify
the offsets against the document revision shipped with the module before clinical use.
"""

from __future__ import annotations

import struct

from .vitals import FrameCounters, Measurement

COMMAND_START = 0x3A
RESPONSE_START = 0x3E
GET_BP_DATA = bytes([0x3A, 0x79, 0x03, 0x00, 0x4A])
BP_DATA_LEN = 0x18
MAX_LEN = 0x43
MIN_LEN = 3


def checksum(frame_without_chk: bytes) -> int:
    return (-sum(frame_without_chk)) & 0xFF


def encode_bp_response(
    systolic: int, diastolic: int, pulse: int, mean: int, error: int = 0
) -> bytes:
    body = bytearray(BP_DATA_LEN - 1)
    body[0], body[1] = RESPONSE_START, BP_DATA_LEN
    struct.pack_into("<HH", body, 2, systolic, diastolic)
    struct.pack_into("<HH", body, 16, pulse, mean)
    body[20] = error
    return bytes(body) + bytes([checksum(bytes(body))])


def is_bp_request(data: bytes) -> bool:
    return GET_BP_DATA in data


class SunTechAdvantageParser:
    """Decodes module responses; yields a BP reading when it differs from the last one
    (the module answers every poll with its latest measurement)."""

    def __init__(self) -> None:
        self.counters = FrameCounters()
        self._buffer = bytearray()
        self._last: tuple[int, int, int, int] | None = None

    def poll_request(self) -> bytes | None:
        return GET_BP_DATA

    def feed(self, data: bytes) -> list[Measurement]:
        self._buffer += data
        out: list[Measurement] = []
        buf = self._buffer
        while len(buf) >= 2:
            if buf[0] != RESPONSE_START:
                del buf[0]
                self.counters.garbage_bytes += 1
                continue
            length = buf[1]
            if not MIN_LEN <= length <= MAX_LEN:
                del buf[0]
                self.counters.corrupt_frames += 1
                continue
            if len(buf) < length:
                break
            frame = bytes(buf[:length])
            if sum(frame) & 0xFF:
                del buf[0]
                self.counters.checksum_errors += 1
                continue
            del buf[:length]
            out += self._frame(frame)
        return out

    def _frame(self, frame: bytes) -> list[Measurement]:
        if len(frame) != BP_DATA_LEN:
            self.counters.good_frames += 1
            return []
        if frame[20]:  # the module says the measurement failed: no values
            self.counters.good_frames += 1
            return []
        systolic, diastolic = struct.unpack_from("<HH", frame, 2)
        pulse, mean = struct.unpack_from("<HH", frame, 16)
        if not (
            40 <= systolic <= 300 and 20 <= diastolic < systolic and diastolic <= mean <= systolic
        ):
            self.counters.corrupt_frames += 1
            return []
        self.counters.good_frames += 1
        values = (systolic, diastolic, pulse, mean)
        if values == self._last:
            return []
        self._last = values
        out: list[Measurement] = [
            ("bp_systolic", float(systolic)),
            ("bp_diastolic", float(diastolic)),
            ("bp_mean", float(mean)),
        ]
        if 20 <= pulse <= 250:
            out.append(("pulse", float(pulse)))
        return out
