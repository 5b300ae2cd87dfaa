"""Synthetic voice: a gliding glottal pulse train shaped by vowel formants, in syllables."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .audio_chunk import CHUNK_SAMPLES, SAMPLE_RATE

SYLLABLE_S = 0.25
_VOWELS = ((730, 1090), (270, 2290), (300, 870), (530, 1840), (570, 840))  # a i u e o (F1, F2)
_HARMONICS = np.arange(1, 41)


class VoiceSynth:
    """Speech-like sound: harmonics of f0 (~110-150 Hz) weighted by two formants that
    change per syllable (4 per second), with pauses between phrases. Deterministic."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        self._n = 0
        self._phase = 0.0
        self._syllables: list[tuple[int, bool]] = []

    def _syllable(self, index: int) -> tuple[int, bool]:
        while len(self._syllables) <= index:
            vowel = int(self._rng.integers(len(_VOWELS)))
            voiced = bool(self._rng.random() > 0.15)  # some syllable slots are pauses
            self._syllables.append((vowel, voiced))
        return self._syllables[index]

    def next_chunk(self) -> npt.NDArray[np.float64]:
        t = (self._n + np.arange(CHUNK_SAMPLES)) / SAMPLE_RATE
        mid = float(t[CHUNK_SAMPLES // 2])
        vowel, voiced = self._syllable(int(mid / SYLLABLE_S))
        f0 = 130 + 20 * np.sin(2 * np.pi * 0.7 * t)
        phase = self._phase + 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        self._phase = float(phase[-1] % (2 * np.pi))
        f1, f2 = _VOWELS[vowel]
        freqs = _HARMONICS * float(f0.mean())
        weights = np.exp(-(((freqs - f1) / 90) ** 2)) + 0.6 * np.exp(-(((freqs - f2) / 120) ** 2))
        weights = weights / (_HARMONICS**0.5) + 0.02
        wave = np.sin(np.outer(phase, _HARMONICS)) @ weights
        envelope = np.sin(np.pi * ((t % SYLLABLE_S) / SYLLABLE_S)) ** 2 if voiced else 0 * t
        self._n += CHUNK_SAMPLES
        out: npt.NDArray[np.float64] = np.clip(
            0.5 * envelope * wave / float(weights.sum()), -0.9, 0.9
        )
        return out
