"""The units pass `systemd-analyze verify` and keep their hardening."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).parents[2] / "systemd"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("name", sorted(p.name for p in UNITS.glob("*.service")))
def test_unit_verifies(name: str, tmp_path: Path) -> None:
    telecart = Path(sys.executable).parent / "telecart"
    text = (UNITS / name).read_text().replace("/opt/telecart/.venv/bin/telecart", str(telecart))
    if "chromium" in text and shutil.which("chromium") is None:
        pytest.skip("chromium not installed")
    unit = tmp_path / name
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert name not in result.stderr, result.stderr


@pytest.mark.parametrize("name", ["telecart-server.service", "telecart-agent.service"])
def test_service_is_notify_with_watchdog_and_hardened(name: str) -> None:
    lines = set((UNITS / name).read_text().splitlines())
    for required in (
        "Type=notify",
        "Restart=on-failure",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
    ):
        assert required in lines, required
    assert any(line.startswith("WatchdogSec=") for line in lines)
    assert any(line.startswith("StateDirectory=") for line in lines)


def test_agent_gets_only_device_classes_it_needs() -> None:
    lines = (UNITS / "telecart-agent.service").read_text().splitlines()
    allowed = {
        line.split("=", 1)[1].split()[0] for line in lines if line.startswith("DeviceAllow=")
    }
    assert "DevicePolicy=closed" in lines
    assert allowed == {
        "char-video4linux", "char-alsa", "char-ttyUSB", "char-ttyACM", "char-usb_device"
    }  # fmt: skip
