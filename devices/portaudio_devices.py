"""What PortAudio sees in this process: device listing and lookup by name. Blocking."""

from __future__ import annotations

from typing import Any, Literal

from .errors import DeviceError

Direction = Literal["input", "output"]


def portaudio() -> Any:
    """The sounddevice module, or DeviceError when PortAudio is not installed."""
    try:
        import sounddevice
    except OSError as exc:
        raise DeviceError(
            "portaudio_missing",
            f"audio library unavailable ({exc}): install the Debian package libportaudio2",
        ) from exc
    return sounddevice


def list_audio_devices() -> list[dict[str, Any]]:
    """PortAudio devices with name, host API, input/output channel counts."""
    sd = portaudio()
    apis = sd.query_hostapis()
    return [
        {
            "index": i,
            "name": d["name"],
            "hostapi": apis[d["hostapi"]]["name"],
            "inputs": d["max_input_channels"],
            "outputs": d["max_output_channels"],
        }
        for i, d in enumerate(sd.query_devices())
    ]


def device_matches(device: dict[str, Any], name: str, direction: Direction) -> bool:
    """`device` has channels for `direction` and its name contains `name`
    (case-insensitive); "default" matches any device with such channels."""
    channels = device["inputs"] if direction == "input" else device["outputs"]
    return bool(channels > 0 and (name == "default" or name.lower() in device["name"].lower()))


def find_audio_device(name: str, direction: Direction) -> int | None:
    """Index of the first device matching `name`; "default" prefers PortAudio's default."""
    sd = portaudio()
    if name == "default":
        index = sd.default.device[0 if direction == "input" else 1]
        if index is not None and index >= 0:
            return int(index)
    for device in list_audio_devices():
        if device_matches(device, name, direction):
            return int(device["index"])
    return None


def missing_device_error(role: str, name: str) -> DeviceError:
    return DeviceError(
        f"{role}_missing".replace(" ", "_"),
        f"{role.capitalize()} not found ({name!r}): check the USB cable, "
        "then run `telecart devtest --only audio`",
    )
