"""Vital-sign readings and the frame parser interface every serial protocol implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

UNITS = {
    "spo2": "%",
    "pulse": "bpm",
    "bp_systolic": "mmHg",
    "bp_diastolic": "mmHg",
    "bp_mean": "mmHg",
    "temperature": "°C",
}


@dataclass(frozen=True)
class VitalsReading:
    """One value: `kind` is a key of `UNITS`; `captured_at` is time.time() at receipt."""

    kind: str
    value: float
    unit: str
    device: str
    captured_at: float


@dataclass
class FrameCounters:
    """What a parser saw: good frames, structurally bad frames, bad checksums, and bytes
    that belonged to no frame. Bad input is counted and skipped, never raised."""

    good_frames: int = 0
    corrupt_frames: int = 0
    checksum_errors: int = 0
    garbage_bytes: int = 0


Measurement = tuple[str, float]


class FrameParser(Protocol):
    """Incremental decoder of one wire protocol."""

    counters: FrameCounters

    def feed(self, data: bytes) -> list[Measurement]:
        """Consume bytes; return the measurements completed by them."""
        ...

    def poll_request(self) -> bytes | None:
        """Bytes to send periodically to ask for data (None for streaming devices)."""
        ...
