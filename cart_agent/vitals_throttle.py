"""How often a steady vital sign is recorded for the specialist.

An oximeter such as the Nonin OEM III reports SpO2 and pulse three times a second; sent
one by one, numbered and acknowledged, they cost about 9 kbit/s of SCTP on the uplink,
which a 128 kbit/s EDGE link needs for the stethoscope and a still picture. Each device's
kind is recorded at most once per `interval_s`, except that a jump of at least its
`JUMPS` value (a desaturation, a sudden rate change) is recorded at once. Blood pressure
and anything without a jump threshold are recorded whenever they arrive.
"""

from __future__ import annotations

from telecart.devices.vitals import VitalsReading

JUMPS = {"spo2": 3.0, "pulse": 10.0}


class VitalsThrottle:
    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._last: dict[tuple[str, str], VitalsReading] = {}
        self.skipped = 0

    def admit(self, reading: VitalsReading) -> bool:
        """Whether `reading` is recorded (and sent); its time is `captured_at`."""
        key = (reading.device, reading.kind)
        jump = JUMPS.get(reading.kind)
        last = self._last.get(key)
        if (
            jump is not None
            and last is not None
            and reading.captured_at - last.captured_at < self.interval_s
            and abs(reading.value - last.value) < jump
        ):
            self.skipped += 1
            return False
        self._last[key] = reading
        return True
