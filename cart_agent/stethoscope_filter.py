"""The stethoscope's band of interest and gain, without ever clipping the signal.

Heart mode keeps 20-200 Hz (S1-S4 and low murmurs), lung mode 100-1000 Hz (breath and
crackles), wide mode 20-2000 Hz. Each edge is a second-order Butterworth section (12 dB
per octave: it de-emphasises, it does not hide), then the gain. A peak limiter with
instant attack and slow release keeps every sample below -1 dBFS, so raising the gain on
a faint chest never turns a loud heart sound into clipped distortion.

Works on the devices' unit: 20 ms chunks of 960 int16 mono samples at 48 kHz. State
carries across chunks, so chunk boundaries are inaudible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

StethoscopeMode = Literal["heart", "lung", "wide"]
SAMPLE_RATE: Final = 48_000
FULL_SCALE: Final = 32767
CEILING: Final = 10 ** (-1 / 20)  # -1 dBFS
RELEASE_DB_PER_S: Final = 6.0


@dataclass(frozen=True)
class Band:
    low_hz: float
    high_hz: float
    gain_db: float


BANDS: Final[dict[StethoscopeMode, Band]] = {
    "heart": Band(20.0, 200.0, 6.0),
    "lung": Band(100.0, 1000.0, 0.0),
    "wide": Band(20.0, 2000.0, 0.0),
}


def _biquad(kind: Literal["low", "high"], cutoff_hz: float) -> tuple[float, ...]:
    """RBJ cookbook Butterworth (Q = 1/sqrt 2) coefficients b0, b1, b2, a1, a2."""
    w0 = 2 * math.pi * cutoff_hz / SAMPLE_RATE
    alpha = math.sin(w0) / math.sqrt(2)
    cos = math.cos(w0)
    a0 = 1 + alpha
    if kind == "low":
        b = ((1 - cos) / 2, 1 - cos, (1 - cos) / 2)
    else:
        b = ((1 + cos) / 2, -(1 + cos), (1 + cos) / 2)
    return (b[0] / a0, b[1] / a0, b[2] / a0, -2 * cos / a0, (1 - alpha) / a0)


class StethoscopeFilter:
    """Band-pass, gain and limiter for one stethoscope stream; `mode`/`gain_db` may change."""

    def __init__(self, mode: StethoscopeMode = "wide", gain_db: float | None = None) -> None:
        self._state = [[0.0, 0.0], [0.0, 0.0]]  # transposed direct form II, per section
        self._limiter_gain = 1.0
        self.set_mode(mode, gain_db)

    @property
    def mode(self) -> StethoscopeMode:
        return self._mode

    @property
    def gain_db(self) -> float:
        return self._gain_db

    @property
    def limiting_db(self) -> float:
        """How far the limiter has pulled the gain down right now (0 when idle)."""
        return -20 * math.log10(self._limiter_gain)

    def set_mode(self, mode: StethoscopeMode, gain_db: float | None = None) -> None:
        band = BANDS[mode]
        self._mode = mode
        self._gain_db = band.gain_db if gain_db is None else gain_db
        self._sections = (_biquad("high", band.low_hz), _biquad("low", band.high_hz))

    def process(self, chunk: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        x = chunk.astype(np.float64) / FULL_SCALE
        for section, state in zip(self._sections, self._state, strict=True):
            x = _run_biquad(x, section, state)
        x *= 10 ** (self._gain_db / 20)
        return np.round(self._limit(x) * FULL_SCALE).astype(np.int16)

    def _limit(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        n = len(x)
        release = 10 ** (RELEASE_DB_PER_S / 20 / SAMPLE_RATE)
        ramp = np.minimum(1.0, self._limiter_gain * release ** np.arange(1, n + 1))
        peak = np.maximum(np.abs(x), 1e-12)
        needed = np.minimum(1.0, CEILING / peak)
        # Instant attack; a reduction holds to the end of the chunk, then releases slowly.
        # So the gain changes smoothly and no sample ever exceeds the ceiling.
        gain = np.minimum(ramp, np.minimum.accumulate(needed))
        if n:
            self._limiter_gain = float(gain[-1])
        limited: npt.NDArray[np.float64] = x * gain
        return limited


def _run_biquad(
    x: npt.NDArray[np.float64], coefficients: tuple[float, ...], state: list[float]
) -> npt.NDArray[np.float64]:
    b0, b1, b2, a1, a2 = coefficients
    z1, z2 = state
    y = np.empty_like(x)
    for i, sample in enumerate(x.tolist()):
        out = b0 * sample + z1
        z1 = b1 * sample - a1 * out + z2
        z2 = b2 * sample - a2 * out
        y[i] = out
    state[0], state[1] = z1, z2
    return y
