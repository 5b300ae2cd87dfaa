"""Device-test check for serial vital-sign devices: valid readings within the timeout."""

from __future__ import annotations

import time

from .config import SerialConfig
from .devtest_report import CheckResult
from .errors import DeviceError
from .sources import make_serial_reader


async def check_serial(config: SerialConfig) -> list[CheckResult]:
    name = config.name
    reader = make_serial_reader(config)
    try:
        await reader.open(require=True)
    except DeviceError as exc:
        return [CheckResult(name, "port opens", "FAIL", config.port, exc.message)]
    out = [CheckResult(name, "port opens", "PASS", f"{reader.port} @ {config.baudrate}")]
    values: dict[str, str] = {}
    deadline = time.monotonic() + config.timeout_s
    try:
        while time.monotonic() < deadline and len(values) < 2:
            try:
                reading = await reader.read(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break
            values[reading.kind] = f"{reading.kind} {reading.value:g} {reading.unit}"
    finally:
        await reader.close()
    c = reader.counters
    errors = c.corrupt_frames + c.checksum_errors
    detail = (
        f"good frames {c.good_frames}, corrupt {c.corrupt_frames}, "
        f"checksum errors {c.checksum_errors}, garbage {c.garbage_bytes} B"
    )
    if not values:
        hint = (
            "bytes arrive but none form a valid frame: check `protocol` and `baudrate`"
            if c.garbage_bytes or errors
            else "no data: switch the device on, check the cable and the port"
        )
        out.append(
            CheckResult(
                name, "valid readings", "FAIL", f"none in {config.timeout_s:g} s; {detail}", hint
            )
        )
        return out
    out.append(CheckResult(name, "valid readings", "PASS", ", ".join(values.values())))
    bad = errors / max(1, errors + c.good_frames)
    out.append(
        CheckResult(
            name,
            "frame errors",
            "PASS" if bad < 0.05 and not c.garbage_bytes else "WARN",
            detail,
            ""
            if bad < 0.05 and not c.garbage_bytes
            else "interference or loose connector: reseat the cable",
        )
    )
    return out
