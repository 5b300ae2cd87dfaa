"""Serial readers against simulators speaking the real bytes over real pseudo-terminals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from telecart.devices.bp_protocol import encode_bp_response
from telecart.devices.config import SerialConfig
from telecart.devices.oximeter_protocol import encode_packet
from telecart.devices.serial_sim import PtyDeviceSimulator
from telecart.devices.serial_vitals import SerialVitalsReader
from telecart.devices.status import DeviceStatus, StatusBoard
from telecart.devices.vitals import VitalsReading

TIMEOUT = 10.0


@pytest.fixture
def oximeter(tmp_path: Path) -> Iterator[PtyDeviceSimulator]:
    sim = PtyDeviceSimulator("nonin_oem3_df2", link=tmp_path / "ttyOXI")
    sim.plug()
    yield sim
    sim.unplug()


@pytest.fixture
async def reader(oximeter: PtyDeviceSimulator) -> AsyncIterator[SerialVitalsReader]:
    r = SerialVitalsReader(SerialConfig("oximeter", oximeter.port, "nonin_oem3_df2"))
    await r.open(require=True)
    yield r
    await r.close()


async def _next_kind(reader: SerialVitalsReader, kind: str) -> VitalsReading:
    while True:
        reading = await reader.read(TIMEOUT)
        if reading.kind == kind:
            return reading


async def test_oximeter_reader_decodes_spo2_and_pulse(
    oximeter: PtyDeviceSimulator, reader: SerialVitalsReader
) -> None:
    oximeter.spo2, oximeter.heart_rate = 93, 130  # 130 needs the HR MSB bit
    spo2 = await _next_kind(reader, "spo2")
    while spo2.value != 93:
        spo2 = await _next_kind(reader, "spo2")
    pulse = await _next_kind(reader, "pulse")
    assert spo2.unit == "%" and spo2.device == "oximeter"
    assert 128 <= pulse.value <= 132 and pulse.unit == "bpm"


async def test_garbage_and_bad_checksums_are_counted_and_skipped(
    oximeter: PtyDeviceSimulator, reader: SerialVitalsReader
) -> None:
    await _next_kind(reader, "spo2")
    bad = bytearray(encode_packet(88, 60))
    bad[4] ^= 0xFF  # checksum of the first frame
    oximeter.inject(b"\x00\x11garbage!" + bytes(bad) + b"\xff" * 7)
    oximeter.spo2 = 91
    while (await _next_kind(reader, "spo2")).value != 91:
        pass
    counters = reader.counters
    assert counters.garbage_bytes >= 10
    assert counters.checksum_errors >= 1
    assert reader.status.state == "ok"


async def test_unplug_reports_disconnected_then_reconnects(
    oximeter: PtyDeviceSimulator, reader: SerialVitalsReader
) -> None:
    states: list[DeviceStatus] = []
    reader.board.subscribe(states.append)
    changes = reader.board.queue()
    await _next_kind(reader, "spo2")
    oximeter.unplug()
    async with asyncio.timeout(TIMEOUT):
        while (await changes.get()).state != "disconnected":
            pass
    oximeter.spo2 = 95
    oximeter.plug()
    async with asyncio.timeout(TIMEOUT):
        while (await _next_kind(reader, "spo2")).value != 95:
            pass
    assert [s.state for s in states] == ["disconnected", "ok"]


async def test_bp_reader_polls_and_decodes_suntech_response(tmp_path: Path) -> None:
    sim = PtyDeviceSimulator("suntech_advantage")
    sim.plug()
    sim.bp = (142, 91, 108)
    reader = SerialVitalsReader(SerialConfig("blood_pressure", sim.port, "suntech_advantage"))
    await reader.open(require=True)
    try:
        got = {}
        while len(got) < 4:
            r = await reader.read(TIMEOUT)
            got[r.kind] = r.value
        assert got == {"bp_systolic": 142, "bp_diastolic": 91, "bp_mean": 108, "pulse": 72}
        assert sim.requests_seen >= 1
    finally:
        await reader.close()
        sim.unplug()


def test_suntech_parser_counts_corrupt_frames() -> None:
    from telecart.devices.bp_protocol import SunTechAdvantageParser

    parser = SunTechAdvantageParser()
    good = encode_bp_response(120, 80, 70, 93)
    bad_sum = good[:-1] + bytes([(good[-1] + 1) & 0xFF])
    implausible = encode_bp_response(20, 80, 70, 93)
    out = parser.feed(b"xx" + bad_sum + implausible + good)
    assert ("bp_systolic", 120.0) in out
    assert parser.counters.checksum_errors >= 1
    assert parser.counters.corrupt_frames == 1
    assert parser.counters.garbage_bytes >= 2


def test_suntech_failed_measurement_yields_no_reading() -> None:
    from telecart.devices.bp_protocol import SunTechAdvantageParser

    parser = SunTechAdvantageParser()
    assert parser.feed(encode_bp_response(120, 80, 70, 93, error=0x02)) == []
    assert parser.counters.good_frames == 1 and parser.counters.corrupt_frames == 0
    assert ("pulse", 70.0) in parser.feed(encode_bp_response(120, 80, 70, 93))


async def test_key_value_profile_with_custom_fields_and_checksum() -> None:
    sim = PtyDeviceSimulator("key_value")
    sim.plug()
    config = SerialConfig("thermometer", sim.port, "key_value", fields={"TEMP": "temperature"})
    reader = SerialVitalsReader(config)
    await reader.open(require=True)
    try:
        sim.inject(b"TEMP=40.0*00\r\n\x01\x02\x03\n")
        reading = await reader.read(TIMEOUT)
        assert (reading.kind, reading.value, reading.unit) == ("temperature", 36.8, "°C")
        assert reader.counters.checksum_errors == 1
        assert reader.counters.garbage_bytes == 4
    finally:
        await reader.close()
        sim.unplug()


async def test_missing_port_reports_disconnected_and_recovers(tmp_path: Path) -> None:
    board = StatusBoard()
    link = tmp_path / "ttyLATE"
    reader = SerialVitalsReader(SerialConfig("oximeter", str(link), "nonin_oem3_df2"), board)
    await reader.open()
    assert reader.status.state == "disconnected"
    assert "not found" in reader.status.message
    sim = PtyDeviceSimulator("nonin_oem3_df2", link=link)
    sim.plug()
    try:
        reading = await reader.read(TIMEOUT)
        assert reading.kind in ("spo2", "pulse")
        assert reader.status.state == "ok"
    finally:
        await reader.close()
        sim.unplug()
