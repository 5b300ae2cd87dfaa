"""Seamlessly looping band-limited noise, made once by FFT so synthesis stays vectorised."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .audio_chunk import SAMPLE_RATE


def band_noise_loop(
    rng: np.random.Generator, low_hz: float, high_hz: float, length: int
) -> npt.NDArray[np.float64]:
    """`length` samples of noise with energy only in [low_hz, high_hz], RMS 1. The FFT
    construction is circular, so indexing it modulo `length` has no seam."""
    spectrum = rng.normal(size=length // 2 + 1) + 1j * rng.normal(size=length // 2 + 1)
    freqs = np.fft.rfftfreq(length, 1 / SAMPLE_RATE)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0
    noise = np.fft.irfft(spectrum, length)
    return noise / float(np.sqrt(np.mean(noise**2)))


def loop_slice(loop: npt.NDArray[np.float64], start: int, count: int) -> npt.NDArray[np.float64]:
    return loop[(start + np.arange(count)) % loop.size]
