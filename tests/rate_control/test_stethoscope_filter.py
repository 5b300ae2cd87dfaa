"""Heart / lung / wide bands with gain, and a limiter that never lets a sample clip."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from telecart.cart_agent.stethoscope_filter import CEILING, StethoscopeFilter, StethoscopeMode


def run(filt: StethoscopeFilter, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    return np.concatenate([filt.process(samples[i : i + 960]) for i in range(0, len(samples), 960)])


def tone(freq: float, level: float = 0.1, seconds: float = 1.0) -> npt.NDArray[np.int16]:
    t = np.arange(int(48_000 * seconds)) / 48_000
    return (level * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def gain_db(mode: StethoscopeMode, freq: float) -> float:
    filt = StethoscopeFilter(mode, gain_db=0.0)
    x = tone(freq)
    y = run(filt, x)[24_000:].astype(np.float64)
    return float(20 * np.log10(np.sqrt(np.mean(y**2)) / np.sqrt(np.mean(x[24_000:] ** 2.0))))


@pytest.mark.parametrize(
    ("mode", "inside", "outside"),
    [("heart", 60, 1000), ("lung", 400, 30), ("wide", 100, 6000)],
)
def test_mode_keeps_its_band_and_attenuates_outside(
    mode: StethoscopeMode, inside: float, outside: float
) -> None:
    assert abs(gain_db(mode, inside)) < 1.5
    assert gain_db(mode, outside) < -12


def test_heart_mode_adds_its_default_gain() -> None:
    filt = StethoscopeFilter("heart")
    x = tone(60)
    y = run(filt, x)[24_000:].astype(np.float64)
    change = 20 * np.log10(np.sqrt(np.mean(y**2)) / np.sqrt(np.mean(x[24_000:] ** 2.0)))
    assert filt.gain_db == 6.0
    assert abs(change - 6.0) < 1.5


def test_loud_signal_with_high_gain_never_clips() -> None:
    filt = StethoscopeFilter("wide", gain_db=20.0)
    y = run(filt, tone(80, level=0.99, seconds=2.0))
    assert np.abs(y).max() <= CEILING * 32767 + 1
    assert filt.limiting_db > 15


def test_limiter_releases_when_the_signal_gets_quiet() -> None:
    filt = StethoscopeFilter("wide", gain_db=12.0)
    run(filt, tone(80, level=0.9))
    loud = filt.limiting_db
    run(filt, tone(80, level=0.01, seconds=3.0))
    assert filt.limiting_db < loud - 10


def test_chunked_processing_is_seamless() -> None:
    x = tone(50, level=0.2)
    chunked = run(StethoscopeFilter("heart", gain_db=0.0), x)
    whole = StethoscopeFilter("heart", gain_db=0.0).process(x)
    assert np.abs(chunked.astype(int) - whole.astype(int)).max() <= 1
