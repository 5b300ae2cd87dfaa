"""Datascope ACCUTORR 3 NIBP monitor (with its SpO2 option), "PC Interface".

Source document: Datascope Corp., ACCUTORR 3 Service Manual, section "PC Interface For
The ACCUTORR", pages 1-52 and 1-53 (revised 08/24/90); a public copy is manualslib.de
manual 1387918, pages 130-131. What the document fixes, and this module follows:

* RS-232, standard asynchronous, 8 data bits, 1 start bit, 1 stop bit, no parity; the
  baud rate is chosen in the monitor's User Configuration Menu (9600 here by default).
* Every character is printable ASCII. "There are no packets, checksums, etc."
* At power up the monitor sends ``ACCUTORR PC Interface is ready`` and a ``>`` prompt.
* A command is one character sent while the prompt is present: ``P`` show patient
  information, ``L`` show alarm limits, ``C`` prompt request (answered with ``>``).
* An answer is the command character, a colon, then three-digit fields separated by
  commas (right-aligned, so ``" 45"``), then CR LF; a field not in use is ``--``.
* ``P`` answers nine fields: SaO2, pulse rate, systolic, mean and diastolic pressure,
  status bytes 0, 1 and 2, and the minutes since the last NIBP measurement. The
  document's example: ``P:--,85,120, 45, 80,000,010,000, 5``.

Not from the document: the status bytes' bit meanings are on its next page, which the
public copy checked did not include, so they are read but not interpreted. With no
checksum on the wire, a line is accepted only if it has the documented shape and values
in physiological ranges (systolic 40-300 above diastolic, mean 20-300, SaO2 50-100,
pulse 20-300 per minute); anything else is counted as corrupt and skipped.

The monitor answers every poll with its latest NIBP measurement, so pressures are
reported when they change or when the elapsed-time field goes back (a new measurement
that happened to give the same values); SaO2 and pulse are reported on every answer.
"""

from __future__ import annotations

from .vitals import FrameCounters, Measurement

BANNER = "ACCUTORR PC Interface is ready"
PROMPT = b">"
SHOW_PATIENT = b"P"
PATIENT_FIELDS = 9
MAX_LINE = 128
UNUSED = "--"


def encode_patient_answer(
    sao2: int | None,
    pulse: int | None,
    systolic: int | None,
    mean: int | None,
    diastolic: int | None,
    elapsed_min: int | None,
    status: tuple[int, int, int] = (0, 0, 0),
) -> bytes:
    """The monitor's answer to ``P``, with its prompt, as the wire carries it."""
    values = (sao2, pulse, systolic, mean, diastolic, *status, elapsed_min)
    fields = [UNUSED if v is None else f"{v:3d}" for v in values]
    return f"P:{','.join(fields)}\r\n>".encode("ascii")


class AccutorrParser:
    """Decodes the monitor's answers to the ``P`` poll, line by line."""

    def __init__(self) -> None:
        self.counters = FrameCounters()
        self._buffer = bytearray()
        self._last_bp: tuple[int, int, int] | None = None
        self._last_elapsed: int | None = None

    def poll_request(self) -> bytes | None:
        return SHOW_PATIENT

    def feed(self, data: bytes) -> list[Measurement]:
        self._buffer += data
        out: list[Measurement] = []
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            out += self._line(line)
        if len(self._buffer) > MAX_LINE:  # no line end in sight: noise, not an answer
            self.counters.garbage_bytes += len(self._buffer)
            self._buffer.clear()
        return out

    def _line(self, raw: bytes) -> list[Measurement]:
        text = raw.lstrip(PROMPT + b" ").rstrip(b"\r ")
        if not text:
            return []
        try:
            line = text.decode("ascii")
        except UnicodeDecodeError:
            self.counters.corrupt_frames += 1
            return []
        if not line.isprintable():
            self.counters.corrupt_frames += 1
            return []
        if line == BANNER or line.startswith("L:"):
            self.counters.good_frames += 1
            return []
        if not line.startswith("P:"):
            self.counters.garbage_bytes += len(raw) + 1
            return []
        values = _fields(line[2:])
        if values is None:
            self.counters.corrupt_frames += 1
            return []
        sao2, pulse, systolic, mean, diastolic, _, _, _, elapsed = values
        if not _plausible(sao2, pulse, systolic, mean, diastolic):
            self.counters.corrupt_frames += 1
            return []
        self.counters.good_frames += 1
        out: list[Measurement] = []
        if sao2 is not None:
            out.append(("spo2", float(sao2)))
        if pulse is not None:
            out.append(("pulse", float(pulse)))
        if systolic is not None and mean is not None and diastolic is not None:
            bp = (systolic, diastolic, mean)
            newer = (
                elapsed is not None
                and self._last_elapsed is not None
                and elapsed < self._last_elapsed
            )
            if bp != self._last_bp or newer:
                out += [
                    ("bp_systolic", float(systolic)),
                    ("bp_diastolic", float(diastolic)),
                    ("bp_mean", float(mean)),
                ]
            self._last_bp = bp
        self._last_elapsed = elapsed
        return out


def _fields(text: str) -> list[int | None] | None:
    parts = text.split(",")
    if len(parts) != PATIENT_FIELDS:
        return None
    values: list[int | None] = []
    for part in parts:
        field = part.strip()
        if field == UNUSED:
            values.append(None)
        elif field.isdigit() and len(field) <= 3:
            values.append(int(field))
        else:
            return None
    return values


def _plausible(
    sao2: int | None,
    pulse: int | None,
    systolic: int | None,
    mean: int | None,
    diastolic: int | None,
) -> bool:
    pressures = (systolic, mean, diastolic)
    if any(p is None for p in pressures) and any(p is not None for p in pressures):
        return False
    if systolic is not None and diastolic is not None and mean is not None:
        if not (40 <= systolic <= 300 and 15 <= diastolic < systolic and 20 <= mean <= 300):
            return False
    if sao2 is not None and not 50 <= sao2 <= 100:
        return False
    return pulse is None or 20 <= pulse <= 300
