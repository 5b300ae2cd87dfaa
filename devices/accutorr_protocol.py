"""Datascope ACCUTORR 3 NIBP monitor (with its SpO2 option), "PC Interface".

Source document: Datascope Corp., ACCUTORR 3 Service Manual, section "PC Interface For
The ACCUTORR", pages 1-52 to 1-54 (revised 08/24/90); a public copy is manualslib.de
manual 1387918, pages 130-132 (the German operating instructions in the same copy give
the same status bits on its page 61). What the document fixes, and this module follows:

* RS-232, standard asynchronous, 8 data bits, 1 start bit, 1 stop bit, no parity; the
  baud rate is chosen in the monitor's User Configuration Menu (9600 here by default).
* Every character is printable ASCII. "There are no packets, checksums, etc."
* At power up the monitor sends ``ACCUTORR PC Interface is ready`` and a ``>`` prompt.
* A command is one character sent while the prompt is present: ``L`` show alarm limits,
  ``P`` show patient information, and the prompt request, ASCII code 03 (Ctrl-C, the
  one command not echoed), answered with ``>``.
* An answer is the command character, a colon, then three-digit fields separated by
  commas (right-aligned, so ``" 45"``), then CR LF; a field not in use is ``--``.
* ``P`` answers nine fields: SaO2, pulse rate, systolic, mean and diastolic pressure,
  status bytes 0, 1 and 2, and the minutes since the last NIBP measurement. The
  document's example: ``P:--,85,120, 45, 80,000,010,000, 5``.
* Status bytes are flags (page 1-54): byte 0 bits 0-7 and byte 1 bits 0-7 are SaO2
  conditions (`SAO2_FLAGS`), byte 2 bit 0 NIBP cuff overpressure, bit 1 NIBP motion
  artifact, bits 2-7 unused.

Not from the document, and why:

* A status field is read as the byte's decimal value (000-255): the page says three
  digit numbers and binary flags, but not the base; decimal is the one that fits every
  byte into three digits. Above 255 the answer is corrupt.
* What a flag does to the values (`problems` names the flags of the last answer, and a
  change is logged): any SaO2 flag but "alarm overlapped" drops the SaO2 value; an NIBP
  flag drops the pressures, and that measurement is not reported later either. The
  pulse goes with SaO2 when SaO2 is in use, otherwise with NIBP (the document's example
  has a pulse rate with SaO2 unused); it is dropped with the source it goes with.
* With no checksum on the wire, a line is accepted only if it has the documented shape
  and values in physiological ranges (systolic 40-300 above diastolic, mean 20-300,
  SaO2 50-100, pulse 20-300 per minute); anything else is counted as corrupt and skipped.

The monitor answers every poll with its latest NIBP measurement, so pressures are
reported when they change or when the elapsed-time field goes back (a new measurement
that happened to give the same values); SaO2 and pulse are reported on every answer.
"""

from __future__ import annotations

import logging

from .vitals import FrameCounters, Measurement

log = logging.getLogger(__name__)

BANNER = "ACCUTORR PC Interface is ready"
PROMPT = b">"
SHOW_PATIENT = b"P"
PROMPT_REQUEST = b"\x03"
PATIENT_FIELDS = 9
MAX_LINE = 128
UNUSED = "--"
SAO2_FLAGS = (  # status byte 0 bits 0-7, then status byte 1 bits 0-7
    "no sensor",
    "sensor off",
    "interference",
    "pulse search",
    "pulse level weak",
    "no pulse",
    "check sensor site",
    "pulse rate under 30 bpm",
    "pulse rate over 250 bpm",
    "uncalibrated",
    "alarm overlapped",
    "RAM test failure",
    "ROM test failure",
    "offset mismatch",
    "filter mismatch",
    "system test in progress",
)
SAO2_VALUE_OK = 1 << SAO2_FLAGS.index("alarm overlapped")  # a state of the alarms only
NIBP_FLAGS = ("cuff overpressure", "motion artifact")  # status byte 2 bits 0-1
NIBP_MASK = 0b11  # bits 2-7 of status byte 2 are unused


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
    values = (sao2, pulse, systolic, mean, diastolic, elapsed_min)
    fields = [UNUSED if v is None else f"{v:3d}" for v in values]
    fields[5:5] = [f"{byte:03d}" for byte in status]
    return f"P:{','.join(fields)}\r\n>".encode("ascii")


def status_problems(sao2_flags: int, nibp_flags: int) -> list[str]:
    """The names of the flags set, as the nurse would read them."""
    return [f"SaO2 {name}" for bit, name in enumerate(SAO2_FLAGS) if sao2_flags >> bit & 1] + [
        f"NIBP {name}" for bit, name in enumerate(NIBP_FLAGS) if nibp_flags >> bit & 1
    ]


class AccutorrParser:
    """Decodes the monitor's answers to the ``P`` poll, line by line. `problems` names
    the status flags of the last answer."""

    def __init__(self) -> None:
        self.counters = FrameCounters()
        self.problems: list[str] = []
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
        sao2, pulse, systolic, mean, diastolic, *status, elapsed = values
        status_bytes = [0 if byte is None else byte for byte in status]
        if max(status_bytes) > 0xFF or not _plausible(sao2, pulse, systolic, mean, diastolic):
            self.counters.corrupt_frames += 1
            return []
        self.counters.good_frames += 1
        return self._measurements(sao2, pulse, systolic, mean, diastolic, status_bytes, elapsed)

    def _measurements(
        self,
        sao2: int | None,
        pulse: int | None,
        systolic: int | None,
        mean: int | None,
        diastolic: int | None,
        status_bytes: list[int],
        elapsed: int | None,
    ) -> list[Measurement]:
        """The values of a well-formed answer that its status flags leave standing."""
        sao2_flags = status_bytes[0] | (status_bytes[1] << 8)
        nibp_flags = status_bytes[2] & NIBP_MASK
        self._note_problems(status_problems(sao2_flags, nibp_flags))
        sao2_ok = not sao2_flags & ~SAO2_VALUE_OK
        pulse_ok = sao2_ok if sao2 is not None else not nibp_flags
        out: list[Measurement] = []
        if sao2 is not None and sao2_ok:
            out.append(("spo2", float(sao2)))
        if pulse is not None and pulse_ok:
            out.append(("pulse", float(pulse)))
        if systolic is not None and mean is not None and diastolic is not None:
            bp = (systolic, diastolic, mean)
            newer = (
                elapsed is not None
                and self._last_elapsed is not None
                and elapsed < self._last_elapsed
            )
            if (bp != self._last_bp or newer) and not nibp_flags:
                out += [
                    ("bp_systolic", float(systolic)),
                    ("bp_diastolic", float(diastolic)),
                    ("bp_mean", float(mean)),
                ]
            self._last_bp = bp
        self._last_elapsed = elapsed
        return out

    def _note_problems(self, problems: list[str]) -> None:
        if problems != self.problems:
            if problems:
                log.warning("ACCUTORR status: %s (see the monitor)", ", ".join(problems))
            else:
                log.info("ACCUTORR status clear")
        self.problems = problems


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
