"""Synthetic stethoscope: heart sounds, a systolic murmur and lung sounds, deterministic.

Heart at ~72 bpm: S1 and S2 (energy 20-115 Hz), a soft S3; a crescendo-decrescendo
systolic murmur of band noise 150-400 Hz between S1 and S2; breath noise 100-1000 Hz on
a 4 s respiratory cycle with fine inspiratory crackles. `mode` weights them like the
chest piece's bell (heart), diaphragm on the back (lung) or wide. The mix is scaled so
its peak stays below -1 dBFS in every mode: it never clips at gain 0 dB.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from .audio_chunk import CHUNK_SAMPLES, SAMPLE_RATE
from .band_noise import band_noise_loop, loop_slice

StethoscopeMode = Literal["heart", "lung", "wide"]
MODES: tuple[StethoscopeMode, ...] = ("heart", "lung", "wide")
BEAT_S = 60 / 72
BREATH_S = 4.0
INSPIRATION_S = 1.6
_PEAK = 0.85  # linear full-scale fraction the worst-case mix can reach
_MIX: dict[StethoscopeMode, tuple[float, float]] = {
    "heart": (1.0, 0.08),
    "lung": (0.12, 1.0),
    "wide": (0.6, 0.5),
}


def _burst(t: npt.NDArray[np.float64], at: float, width: float) -> npt.NDArray[np.float64]:
    return np.exp(-(((t - at) / width) ** 2))


class StethoscopeSynth:
    """Generates successive 20 ms chunks as float64 in [-1, 1]."""

    def __init__(self, seed: int = 0, mode: StethoscopeMode = "heart") -> None:
        rng = np.random.default_rng(seed)
        self._murmur = band_noise_loop(rng, 150, 400, 1 << 17)
        self._breath = band_noise_loop(rng, 100, 1000, 1 << 18)
        # Crackle onsets (seconds into the inspiration) repeat each breath.
        self._crackles = np.sort(rng.uniform(0.5, INSPIRATION_S - 0.1, size=6))
        self._n = 0
        self.mode = mode

    @property
    def mode(self) -> StethoscopeMode:
        return self._mode

    @mode.setter
    def mode(self, value: StethoscopeMode) -> None:
        if value not in MODES:
            raise ValueError(f"stethoscope mode must be one of {MODES}, not {value!r}")
        self._mode = value

    def heart(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Heart sounds plus murmur, peak below 1."""
        tb = t % BEAT_S
        s1 = _burst(tb, 0.05, 0.022) * (
            0.6 * np.sin(2 * np.pi * 45 * tb) + 0.4 * np.sin(2 * np.pi * 90 * tb)
        )
        s2 = _burst(tb, 0.36, 0.016) * (
            0.5 * np.sin(2 * np.pi * 65 * tb) + 0.3 * np.sin(2 * np.pi * 110 * tb)
        )
        s3 = 0.2 * _burst(tb, 0.52, 0.03) * np.sin(2 * np.pi * 30 * tb)
        envelope = np.clip(1 - np.abs(tb - 0.2) / 0.11, 0, 1)
        murmur = 0.06 * envelope * loop_slice(self._murmur, self._n, t.size) / 4
        return s1 + s2 + s3 + murmur

    def lung(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Breath noise with crackles, peak below 1."""
        tr = t % BREATH_S
        rising = np.clip(tr / INSPIRATION_S, 0, 1)
        falling = np.clip(1 - (tr - INSPIRATION_S) / (BREATH_S - INSPIRATION_S), 0, 1)
        envelope = np.where(
            tr < INSPIRATION_S, np.sin(np.pi * rising), 0.6 * np.sin(np.pi * falling)
        )
        breath = 0.16 * envelope * loop_slice(self._breath, self._n, t.size) / 4
        crackles = np.zeros_like(t)
        for onset in self._crackles:
            dt = tr - onset
            mask = (dt >= 0) & (dt < 0.01)
            crackles[mask] += 0.3 * np.exp(-dt[mask] / 0.002) * np.sin(2 * np.pi * 600 * dt[mask])
        return breath + crackles

    def next_chunk(self) -> npt.NDArray[np.float64]:
        t = (self._n + np.arange(CHUNK_SAMPLES)) / SAMPLE_RATE
        heart_gain, lung_gain = _MIX[self._mode]
        mix = heart_gain * self.heart(t) + lung_gain * self.lung(t)
        self._n += CHUNK_SAMPLES
        return np.clip(_PEAK * mix / (heart_gain + lung_gain), -_PEAK, _PEAK)
