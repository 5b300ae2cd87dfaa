"""Device configuration: frozen dataclasses built from the `[devices]` TOML table.

TOML shape (the `telecart/config.py` loader passes the `devices` table as a dict)::

    [[devices.camera]]
    role = "room"            # "room" | "exam"
    source = "/dev/video0"   # device path, V4L2 card name, file path/URL, or "simulated"
    width = 640
    height = 480
    fps = 25

    [[devices.audio_input]]
    role = "stethoscope"     # "stethoscope" | "voice"
    device = "USB Stethoscope"   # sounddevice name (substring), or "simulated"
    gain_db = 6.0

    [devices.audio_output]
    device = "default"       # sounddevice name, "default", or "simulated"

    [[devices.serial]]
    role = "oximeter"        # "oximeter" | "blood_pressure" | "thermometer" | ...
    port = "/dev/ttyUSB0"    # or "simulated"
    protocol = "nonin_oem3_df2"  # see telecart.devices.serial_protocols.PROTOCOLS
    baudrate = 9600
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import DeviceConfigError

SIMULATED = "simulated"
CAMERA_ROLES = ("room", "exam")
AUDIO_INPUT_ROLES = ("stethoscope", "voice")
SERIAL_PROTOCOLS = ("nonin_oem3_df2", "suntech_advantage", "datascope_accutorr", "key_value")
DEFAULT_BAUDRATE = {
    "nonin_oem3_df2": 9600,
    "suntech_advantage": 9600,
    "datascope_accutorr": 9600,
    "key_value": 9600,
}


@dataclass(frozen=True)
class CameraConfig:
    """One camera. `source` is a device path, a V4L2 card name, a file path/URL or "simulated"."""

    role: str
    source: str
    width: int = 640
    height: int = 480
    fps: int = 25
    still_width: int = 1920
    still_height: int = 1080

    @property
    def name(self) -> str:
        return f"{self.role} camera"


@dataclass(frozen=True)
class AudioInputConfig:
    """A microphone or USB stethoscope, chosen by sounddevice name (substring) or "simulated"."""

    role: str
    device: str
    gain_db: float = 0.0

    @property
    def name(self) -> str:
        return "stethoscope" if self.role == "stethoscope" else f"{self.role} microphone"


@dataclass(frozen=True)
class AudioOutputConfig:
    """The cart's speaker: a sounddevice name, "default" or "simulated"."""

    device: str = "default"

    @property
    def name(self) -> str:
        return "speaker"


@dataclass(frozen=True)
class SerialConfig:
    """A serial vital-sign device. `protocol` is one of `SERIAL_PROTOCOLS`.

    `fields` maps `key=value` keys to reading kinds for the `key_value` profile, e.g.
    ``{"SPO2": "spo2", "PR": "pulse"}``; empty means the built-in names (see docs).
    """

    role: str
    port: str
    protocol: str
    baudrate: int = 9600
    fields: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 5.0

    @property
    def name(self) -> str:
        return self.role.replace("_", " ")


@dataclass(frozen=True)
class DevicesConfig:
    """All devices of one cart."""

    cameras: tuple[CameraConfig, ...] = ()
    audio_inputs: tuple[AudioInputConfig, ...] = ()
    audio_output: AudioOutputConfig | None = None
    serial: tuple[SerialConfig, ...] = ()

    @classmethod
    def simulated(cls) -> DevicesConfig:
        """Room and exam cameras 640x480@25, stethoscope, voice, oximeter and BP monitor."""
        return cls(
            cameras=(CameraConfig("room", SIMULATED), CameraConfig("exam", SIMULATED)),
            audio_inputs=(
                AudioInputConfig("stethoscope", SIMULATED),
                AudioInputConfig("voice", SIMULATED),
            ),
            audio_output=AudioOutputConfig(SIMULATED),
            serial=(
                SerialConfig("oximeter", SIMULATED, "nonin_oem3_df2", 9600),
                SerialConfig("blood_pressure", SIMULATED, "suntech_advantage", 9600),
            ),
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DevicesConfig:
        """Build from the `[devices]` table; raise `DeviceConfigError` naming the bad key."""
        if not isinstance(d, Mapping):
            raise DeviceConfigError("[devices] must be a table")
        unknown = set(d) - {"camera", "audio_input", "audio_output", "serial"}
        if unknown:
            raise DeviceConfigError(
                f"[devices] has unknown key(s) {sorted(unknown)}: "
                "expected camera, audio_input, audio_output, serial"
            )
        cameras = tuple(
            _camera(t, f"devices.camera[{i}]") for i, t in enumerate(_array(d, "camera"))
        )
        inputs = tuple(
            _audio_input(t, f"devices.audio_input[{i}]")
            for i, t in enumerate(_array(d, "audio_input"))
        )
        output = None
        if "audio_output" in d:
            table = _table(d["audio_output"], "devices.audio_output")
            output = AudioOutputConfig(
                device=_str(table, "device", "devices.audio_output", "default")
            )
        serial = tuple(
            _serial(t, f"devices.serial[{i}]") for i, t in enumerate(_array(d, "serial"))
        )
        roles = [c.role for c in cameras]
        if len(set(roles)) != len(roles):
            raise DeviceConfigError(f"two cameras share a role in {roles}: give each its own role")
        return cls(cameras=cameras, audio_inputs=inputs, audio_output=output, serial=serial)


def _array(d: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = d.get(key, [])
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        raise DeviceConfigError(f"devices.{key} must be an array of tables ([[devices.{key}]])")
    return [_table(v, f"devices.{key}[{i}]") for i, v in enumerate(value)]


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DeviceConfigError(f"{where} must be a table")
    return value


def _str(t: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = t.get(key, default)
    if value is None:
        raise DeviceConfigError(f"{where}.{key} is missing")
    if not isinstance(value, str) or not value:
        raise DeviceConfigError(f"{where}.{key} must be a non-empty string, not {value!r}")
    return value


def _int(t: Mapping[str, Any], key: str, where: str, default: int, lo: int, hi: int) -> int:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise DeviceConfigError(
            f"{where}.{key} must be an integer from {lo} to {hi}, not {value!r}"
        )
    return value


def _float(
    t: Mapping[str, Any], key: str, where: str, default: float, lo: float, hi: float
) -> float:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise DeviceConfigError(f"{where}.{key} must be a number from {lo} to {hi}, not {value!r}")
    return float(value)


def _role(t: Mapping[str, Any], where: str, allowed: tuple[str, ...] | None) -> str:
    role = _str(t, "role", where)
    if allowed is not None and role not in allowed:
        raise DeviceConfigError(f"{where}.role must be one of {list(allowed)}, not {role!r}")
    return role


def _check_keys(t: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    unknown = set(t) - allowed
    if unknown:
        raise DeviceConfigError(
            f"{where} has unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )


def _camera(t: Mapping[str, Any], where: str) -> CameraConfig:
    _check_keys(
        t, where, {"role", "source", "width", "height", "fps", "still_width", "still_height"}
    )
    return CameraConfig(
        role=_role(t, where, CAMERA_ROLES),
        source=_str(t, "source", where),
        width=_int(t, "width", where, 640, 16, 7680),
        height=_int(t, "height", where, 480, 16, 4320),
        fps=_int(t, "fps", where, 25, 1, 120),
        still_width=_int(t, "still_width", where, 1920, 16, 7680),
        still_height=_int(t, "still_height", where, 1080, 16, 4320),
    )


def _audio_input(t: Mapping[str, Any], where: str) -> AudioInputConfig:
    _check_keys(t, where, {"role", "device", "gain_db"})
    return AudioInputConfig(
        role=_role(t, where, AUDIO_INPUT_ROLES),
        device=_str(t, "device", where),
        gain_db=_float(t, "gain_db", where, 0.0, -40.0, 40.0),
    )


def _serial(t: Mapping[str, Any], where: str) -> SerialConfig:
    _check_keys(t, where, {"role", "port", "protocol", "baudrate", "fields", "timeout_s"})
    protocol = _str(t, "protocol", where)
    if protocol not in SERIAL_PROTOCOLS:
        raise DeviceConfigError(
            f"{where}.protocol must be one of {list(SERIAL_PROTOCOLS)}, not {protocol!r}"
        )
    fields = t.get("fields", {})
    if not isinstance(fields, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
    ):
        raise DeviceConfigError(
            f'{where}.fields must be a table of strings, e.g. {{SPO2 = "spo2"}}'
        )
    return SerialConfig(
        role=_role(t, where, None),
        port=_str(t, "port", where),
        protocol=protocol,
        baudrate=_int(t, "baudrate", where, DEFAULT_BAUDRATE[protocol], 300, 4_000_000),
        fields=dict(fields),
        timeout_s=_float(t, "timeout_s", where, 5.0, 0.1, 600.0),
    )
