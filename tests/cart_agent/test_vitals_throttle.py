"""Steady vitals once a second; jumps and blood pressure at once."""

from __future__ import annotations

from telecart.cart_agent.vitals_throttle import VitalsThrottle
from telecart.devices.vitals import VitalsReading


def _reading(kind: str, value: float, at: float, device: str = "oximeter") -> VitalsReading:
    return VitalsReading(kind, value, "", device, at)


def test_a_three_per_second_oximeter_is_recorded_once_a_second() -> None:
    throttle = VitalsThrottle()
    admitted = [
        throttle.admit(_reading("spo2", 97 + (i % 2), i / 3))
        for i in range(30)  # 10 s
    ]
    assert sum(admitted) == 10 and throttle.skipped == 20


def test_a_desaturation_is_recorded_at_once() -> None:
    throttle = VitalsThrottle()
    assert throttle.admit(_reading("spo2", 97, 0.0))
    assert not throttle.admit(_reading("spo2", 96, 0.3))
    assert throttle.admit(_reading("spo2", 92, 0.6))  # a 5-point drop within the second
    assert throttle.admit(_reading("pulse", 72, 0.6))  # each kind has its own clock


def test_blood_pressure_and_other_devices_are_never_held_back() -> None:
    throttle = VitalsThrottle()
    for kind in ("bp_systolic", "bp_diastolic", "bp_mean"):
        assert throttle.admit(_reading(kind, 120, 0.0, "blood pressure"))
        assert throttle.admit(_reading(kind, 120, 0.1, "blood pressure"))
    assert throttle.admit(_reading("spo2", 97, 0.0, "oximeter"))
    assert throttle.admit(_reading("spo2", 97, 0.1, "second oximeter"))
