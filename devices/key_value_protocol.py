"""Configurable line-based `key=value` profile for devices without a binary protocol.

One reading set per line, ended by LF (a CR before it is ignored), fields separated by
spaces, commas or semicolons, e.g. ``SPO2=97 PR=72`` or ``TEMP=36.8``. An optional
``*HH`` suffix is a checksum: the XOR of every byte before the ``*``, two hex digits
(as in NMEA 0183). `fields` maps device keys to reading kinds; keys not in the map are
ignored. Lines with non-printable bytes or longer than 256 bytes are garbage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import reduce

from .vitals import UNITS, FrameCounters, Measurement

DEFAULT_FIELDS: Mapping[str, str] = {
    "SPO2": "spo2",
    "PR": "pulse",
    "HR": "pulse",
    "PULSE": "pulse",
    "SYS": "bp_systolic",
    "DIA": "bp_diastolic",
    "MAP": "bp_mean",
    "TEMP": "temperature",
}
MAX_LINE = 256
_SPLIT = re.compile(r"[\s,;]+")


def xor_checksum(data: bytes) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


def encode_line(values: Mapping[str, float], with_checksum: bool = True) -> bytes:
    body = " ".join(f"{k}={v:g}" for k, v in values.items()).encode()
    if with_checksum:
        body += b"*%02X" % xor_checksum(body)
    return body + b"\r\n"


class KeyValueParser:
    def __init__(self, fields: Mapping[str, str] | None = None) -> None:
        self.counters = FrameCounters()
        self.fields = {k.upper(): v for k, v in (fields or DEFAULT_FIELDS).items()}
        unknown = set(self.fields.values()) - set(UNITS)
        if unknown:
            raise ValueError(f"unknown reading kinds {sorted(unknown)}; known: {sorted(UNITS)}")
        self._buffer = bytearray()

    def poll_request(self) -> bytes | None:
        return None

    def feed(self, data: bytes) -> list[Measurement]:
        self._buffer += data
        out: list[Measurement] = []
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            out += self._line(line)
        if len(self._buffer) > MAX_LINE:
            self.counters.garbage_bytes += len(self._buffer)
            self._buffer.clear()
        return out

    def _line(self, line: bytes) -> list[Measurement]:
        if not line:
            return []
        if len(line) > MAX_LINE or any(b < 0x20 or b > 0x7E for b in line):
            self.counters.garbage_bytes += len(line) + 1
            return []
        text = line.decode("ascii")
        if "*" in text:
            text, _, check = text.rpartition("*")
            try:
                expected = int(check, 16)
            except ValueError:
                self.counters.corrupt_frames += 1
                return []
            if xor_checksum(text.encode()) != expected:
                self.counters.checksum_errors += 1
                return []
        out: list[Measurement] = []
        for token in filter(None, _SPLIT.split(text)):
            key, sep, value = token.partition("=")
            if not sep:
                self.counters.corrupt_frames += 1
                return []
            kind = self.fields.get(key.upper())
            if kind is None:
                continue
            try:
                out.append((kind, float(value)))
            except ValueError:
                self.counters.corrupt_frames += 1
                return []
        self.counters.good_frames += 1
        return out
