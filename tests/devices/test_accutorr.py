"""The Datascope ACCUTORR 3 "PC Interface": the real reader polls a simulated monitor over
a pseudo-terminal; the parser keeps only well-formed, plausible answers."""

from __future__ import annotations

import asyncio

import pytest

from telecart.devices.accutorr_protocol import AccutorrParser, encode_patient_answer
from telecart.devices.config import SerialConfig
from telecart.devices.serial_sim import PtyDeviceSimulator
from telecart.devices.serial_vitals import SerialVitalsReader

TIMEOUT = 10.0


def test_the_documents_own_example_is_read() -> None:
    parser = AccutorrParser()
    out = parser.feed(b"P:--,85,120, 45, 80,000,010,000, 5\r\n>")
    assert out == [
        ("pulse", 85.0),
        ("bp_systolic", 120.0),
        ("bp_diastolic", 80.0),
        ("bp_mean", 45.0),
    ]
    assert parser.counters.good_frames == 1
    # Its status byte 1, 010, read as decimal; SaO2 is unused, so no value is dropped.
    assert parser.problems == ["SaO2 uncalibrated", "SaO2 RAM test failure"]


def test_pressures_are_reported_once_per_measurement() -> None:
    parser = AccutorrParser()
    first = parser.feed(encode_patient_answer(97, 72, 121, 93, 79, 3))
    again = parser.feed(encode_patient_answer(97, 73, 121, 93, 79, 4))  # same measurement
    new_same_values = parser.feed(encode_patient_answer(96, 73, 121, 93, 79, 0))
    assert ("bp_systolic", 121.0) in first
    assert [k for k, _ in again] == ["spo2", "pulse"]
    assert ("bp_systolic", 121.0) in new_same_values  # elapsed time went back: a new one


def test_garbage_corrupt_and_implausible_lines_are_counted_and_skipped() -> None:
    parser = AccutorrParser()
    stream = (
        b"ACCUTORR PC Interface is ready\r\n>"  # the power-up banner: fine
        + b"\x00\xff noise\r\n"  # not ASCII
        + b"hello\r\n"  # no answer at all
        + b"P:97,72,121, 93\r\n"  # too few fields
        + b"P:97,72,1x1, 93, 79,000,000,000, 3\r\n"  # not a number
        + b"P:97,72, 70, 93, 79,000,000,000, 3\r\n"  # systolic below diastolic
        + b"P:--,--,--, 93, 79,000,000,000, 3\r\n"  # half a pressure set
        + b"P:97,72,121, 93, 79,000,256,000, 3\r\n"  # a status "byte" above 255
        + b"L:100, 90,120, 50,160, 90,110, 60, 90, 50\r\n>"  # alarm limits: fine
        + encode_patient_answer(98, 70, 118, 90, 76, 1)
    )
    out = parser.feed(stream[:7]) + parser.feed(stream[7:])  # split mid-line
    assert out == [
        ("spo2", 98.0),
        ("pulse", 70.0),
        ("bp_systolic", 118.0),
        ("bp_diastolic", 76.0),
        ("bp_mean", 90.0),
    ]
    counters = parser.counters
    assert counters.good_frames == 3
    assert counters.corrupt_frames == 6
    assert counters.garbage_bytes == len(b"hello\r\n")


def test_a_line_that_never_ends_is_dropped_as_noise() -> None:
    parser = AccutorrParser()
    assert parser.feed(b"P:" + b"9" * 200) == []
    assert parser.counters.garbage_bytes == 202
    assert parser.feed(encode_patient_answer(95, 80, 130, 97, 85, 2))[0] == ("spo2", 95.0)


MOTION_ARTIFACT = (0, 0, 0b10)  # status byte 2 bit 1 (document p. 1-54)


def test_a_measurement_flagged_motion_artifact_is_never_reported() -> None:
    parser = AccutorrParser()
    flagged = parser.feed(encode_patient_answer(97, 72, 182, 120, 96, 0, MOTION_ARTIFACT))
    cleared = parser.feed(encode_patient_answer(97, 72, 182, 120, 96, 1))  # same measurement
    retaken = parser.feed(encode_patient_answer(97, 71, 124, 94, 80, 0))
    assert flagged == [("spo2", 97.0), ("pulse", 72.0)]  # the oximeter's values stand
    assert cleared == [("spo2", 97.0), ("pulse", 72.0)]
    assert ("bp_systolic", 124.0) in retaken
    assert parser.counters.good_frames == 3 and parser.counters.corrupt_frames == 0


@pytest.mark.parametrize(
    ("status", "problem"),
    [
        ((0b1, 0, 0), "SaO2 no sensor"),
        ((0b100000, 0, 0), "SaO2 no pulse"),
        ((0, 0b10, 0), "SaO2 uncalibrated"),
    ],
)
def test_an_sao2_problem_drops_sao2_and_its_pulse_but_not_the_pressures(
    status: tuple[int, int, int], problem: str
) -> None:
    parser = AccutorrParser()
    out = parser.feed(encode_patient_answer(88, 140, 121, 93, 79, 0, status))
    assert out == [("bp_systolic", 121.0), ("bp_diastolic", 79.0), ("bp_mean", 93.0)]
    assert parser.problems == [problem]
    assert parser.feed(encode_patient_answer(97, 72, 121, 93, 79, 0))[:2] == [
        ("spo2", 97.0),
        ("pulse", 72.0),
    ]
    assert parser.problems == []


def test_without_sao2_the_pulse_goes_with_the_pressure_measurement() -> None:
    parser = AccutorrParser()
    no_sensor = parser.feed(encode_patient_answer(None, 85, 120, 45, 80, 5, (0b1, 0, 0)))
    artifact = parser.feed(encode_patient_answer(None, 85, 120, 45, 80, 0, MOTION_ARTIFACT))
    assert no_sensor == [
        ("pulse", 85.0),
        ("bp_systolic", 120.0),
        ("bp_diastolic", 80.0),
        ("bp_mean", 45.0),
    ]
    assert artifact == []
    assert parser.problems == ["NIBP motion artifact"]


def test_alarm_overlapped_and_unused_bits_do_not_drop_values() -> None:
    parser = AccutorrParser()
    alarm_overlapped, unused_nibp_bits = 0b100, 0b11111100
    status = (0, alarm_overlapped, unused_nibp_bits)
    out = parser.feed(encode_patient_answer(84, 130, 121, 93, 79, 0, status))
    assert [kind for kind, _ in out] == ["spo2", "pulse", "bp_systolic", "bp_diastolic", "bp_mean"]
    assert parser.problems == ["SaO2 alarm overlapped"]


async def test_reader_polls_the_monitor_over_a_pty() -> None:
    sim = PtyDeviceSimulator("datascope_accutorr")
    sim.plug()
    sim.bp = (142, 91, 108)
    sim.spo2 = 96
    reader = SerialVitalsReader(SerialConfig("blood_pressure", sim.port, "datascope_accutorr"))
    await reader.open(require=True)
    try:
        got: dict[str, float] = {}
        async with asyncio.timeout(TIMEOUT):
            while len(got) < 5:
                reading = await reader.read(TIMEOUT)
                got[reading.kind] = reading.value
        assert got == {
            "spo2": 96,
            "pulse": 72,
            "bp_systolic": 142,
            "bp_diastolic": 91,
            "bp_mean": 108,
        }
        assert sim.requests_seen >= 1
        assert reader.counters.good_frames >= 1 and reader.counters.corrupt_frames == 0
    finally:
        await reader.close()
        sim.unplug()


async def test_a_flagged_measurement_over_a_pty_gives_no_pressures_until_retaken() -> None:
    sim = PtyDeviceSimulator("datascope_accutorr")
    sim.plug()
    sim.bp = (190, 60, 103)
    sim.accutorr_status = MOTION_ARTIFACT
    reader = SerialVitalsReader(SerialConfig("blood_pressure", sim.port, "datascope_accutorr"))
    await reader.open(require=True)
    try:
        kinds: list[str] = []
        async with asyncio.timeout(TIMEOUT):
            while reader.counters.good_frames < 3:
                kinds.append((await reader.read(TIMEOUT)).kind)
            assert set(kinds) == {"spo2", "pulse"}
            sim.accutorr_status = (0, 0, 0)
            sim.bp, sim.bp_elapsed_min = (128, 82, 97), 0  # the nurse measures again
            while (reading := await reader.read(TIMEOUT)).kind != "bp_systolic":
                pass
        assert reading.value == 128
    finally:
        await reader.close()
        sim.unplug()
