"""The unit every audio source delivers and every sink accepts: 20 ms, mono, int16, 48 kHz."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 48_000
CHUNK_MS = 20
CHUNK_SAMPLES = SAMPLE_RATE * CHUNK_MS // 1000  # 960
FULL_SCALE = 32767


@dataclass(frozen=True)
class AudioChunk:
    """`samples` is int16 of shape (960,); `captured_at` is time.time() of its first sample."""

    samples: npt.NDArray[np.int16]
    captured_at: float


def silence() -> npt.NDArray[np.int16]:
    return np.zeros(CHUNK_SAMPLES, np.int16)


def to_int16(signal: npt.NDArray[np.float64], gain_db: float = 0.0) -> npt.NDArray[np.int16]:
    """Float in [-1, 1] to int16 with gain, clipped at full scale."""
    scaled = signal * (10 ** (gain_db / 20) * FULL_SCALE)
    return np.clip(np.round(scaled), -FULL_SCALE, FULL_SCALE).astype(np.int16)


def apply_gain(samples: npt.NDArray[np.int16], gain_db: float) -> npt.NDArray[np.int16]:
    if gain_db == 0:
        return samples
    return to_int16(samples.astype(np.float64) / FULL_SCALE, gain_db)


def dbfs(samples: npt.NDArray[np.int16]) -> float:
    """RMS level in dBFS (-120 for digital silence)."""
    rms = math.sqrt(float(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0
    return 20 * math.log10(rms / FULL_SCALE) if rms > 0 else -120.0
