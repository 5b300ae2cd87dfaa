from __future__ import annotations

import pytest

from telecart.devices.config import DevicesConfig
from telecart.devices.errors import DeviceConfigError

GOOD = {
    "camera": [{"role": "room", "source": "/dev/video0", "width": 1280, "height": 720}],
    "audio_input": [{"role": "stethoscope", "device": "USB Stethoscope", "gain_db": 6}],
    "audio_output": {"device": "default"},
    "serial": [{"role": "oximeter", "port": "/dev/ttyUSB0", "protocol": "nonin_oem3_df2"}],
}


def test_from_dict_builds_typed_config_with_defaults() -> None:
    config = DevicesConfig.from_dict(GOOD)
    assert config.cameras[0].width == 1280 and config.cameras[0].fps == 25
    assert config.cameras[0].still_width == 1920
    assert config.audio_inputs[0].gain_db == 6.0
    assert config.audio_output is not None and config.audio_output.device == "default"
    assert config.serial[0].baudrate == 9600


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"camera": [{"role": "ceiling", "source": "x"}]}, "devices.camera[0].role"),
        ({"camera": [{"role": "room"}]}, "devices.camera[0].source is missing"),
        ({"camera": [{"role": "room", "source": "x", "fps": 0}]}, "devices.camera[0].fps"),
        ({"serial": [{"role": "oximeter", "port": "p", "protocol": "morse"}]}, "protocol"),
        ({"audio_input": [{"role": "voice", "device": "x", "gian_db": 3}]}, "gian_db"),
        ({"cameras": []}, "unknown key"),
    ],
)
def test_bad_config_names_the_key(bad: dict[str, object], message: str) -> None:
    with pytest.raises(DeviceConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        DevicesConfig.from_dict(bad)


def test_simulated_config_has_every_device() -> None:
    config = DevicesConfig.simulated()
    assert [c.role for c in config.cameras] == ["room", "exam"]
    assert {c.source for c in config.cameras} == {"simulated"}
    assert [a.role for a in config.audio_inputs] == ["stethoscope", "voice"]
    assert {s.role for s in config.serial} == {"oximeter", "blood_pressure"}
