"""Nonin OEM III pulse oximetry module, serial "Data Format #2".

Source document: Nonin Medical, "OEM III Module Specifications and Technical
Information" (serial data format #2). 9600 baud, 8N1. Frames of 5 bytes, 75 frames/s,
25 frames to a packet (one packet every 1/3 s):

    byte 1  0x01 (start)
    byte 2  STATUS: bit 7 always 1; bit 6 SNSD sensor disconnected; bit 5 OOT out of
            track; bit 4 LPRF, bit 3 MPRF perfusion; bit 2 ARTF artifact; bit 0 SYNC
            (set only in frame 1 of a packet)
    byte 3  PLETH, plethysmogram sample 0..255
    byte 4  per frame in the packet: frame 1 HR MSB (HR bits 8..7 in bits 1..0),
            frame 2 HR LSB (HR bits 6..0), frame 3 SpO2 (0..100); other frames carry
            values this reader does not use. HR 511 and SpO2 127 mean "no value".
    byte 5  CHK = (byte1 + byte2 + byte3 + byte4) mod 256
"""

from __future__ import annotations

from .vitals import FrameCounters, Measurement

FRAME_LEN = 5
FRAMES_PER_PACKET = 25
START = 0x01
STATUS_ALWAYS = 0x80
STATUS_SENSOR_DISCONNECTED = 0x40
STATUS_SYNC = 0x01
HR_MISSING = 511
SPO2_MISSING = 127


def checksum(frame_head: bytes | bytearray) -> int:
    return sum(frame_head) & 0xFF


def encode_frame(status: int, pleth: int, data: int) -> bytes:
    head = bytes([START, STATUS_ALWAYS | status, pleth & 0xFF, data & 0xFF])
    return head + bytes([checksum(head)])


def encode_packet(spo2: int, heart_rate: int, pleth: list[int] | None = None) -> bytes:
    """One 25-frame packet (1/3 s of data) carrying `spo2` and `heart_rate`."""
    data = [0] * FRAMES_PER_PACKET
    data[0] = (heart_rate >> 7) & 0x03
    data[1] = heart_rate & 0x7F
    data[2] = spo2 & 0x7F
    waves = pleth or [128] * FRAMES_PER_PACKET
    return b"".join(
        encode_frame(STATUS_SYNC if i == 0 else 0, waves[i], data[i])
        for i in range(FRAMES_PER_PACKET)
    )


class NoninDataFormat2Parser:
    """Decodes Data Format #2; yields pulse and SpO2 once per packet."""

    def __init__(self) -> None:
        self.counters = FrameCounters()
        self._buffer = bytearray()
        self._index: int | None = None  # frame index in the current packet
        self._hr_msb: int | None = None
        self._hr_lsb: int | None = None

    def poll_request(self) -> bytes | None:
        return None

    def feed(self, data: bytes) -> list[Measurement]:
        self._buffer += data
        out: list[Measurement] = []
        buf = self._buffer
        while len(buf) >= FRAME_LEN:
            if buf[0] != START or not buf[1] & STATUS_ALWAYS:
                del buf[0]
                self.counters.garbage_bytes += 1
                continue
            if checksum(buf[:4]) != buf[4]:
                del buf[0]
                self.counters.checksum_errors += 1
                self._index = None  # a packet with a bad frame is not trusted
                continue
            status, value = buf[1], buf[3]
            del buf[:FRAME_LEN]
            self.counters.good_frames += 1
            out += self._frame(status, value)
        return out

    def _frame(self, status: int, value: int) -> list[Measurement]:
        if status & STATUS_SYNC:
            self._index, self._hr_msb, self._hr_lsb = 0, None, None
        elif self._index is None:
            return []
        else:
            self._index += 1
        if self._index >= FRAMES_PER_PACKET:
            self.counters.corrupt_frames += 1
            self._index = None
            return []
        if status & STATUS_SENSOR_DISCONNECTED:
            return []
        if self._index == 0:
            self._hr_msb = value & 0x03
        elif self._index == 1:
            self._hr_lsb = value & 0x7F
        elif self._index == 2:
            out: list[Measurement] = []
            if self._hr_msb is not None and self._hr_lsb is not None:
                heart_rate = (self._hr_msb << 7) | self._hr_lsb
                if heart_rate != HR_MISSING:
                    out.append(("pulse", float(heart_rate)))
            spo2 = value & 0x7F
            if spo2 != SPO2_MISSING and spo2 <= 100:
                out.append(("spo2", float(spo2)))
            return out
        return []
