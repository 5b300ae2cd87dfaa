"""The stethoscope benchmark's source: a looping heart section then lung section, as a WAV.

Both sections come from `telecart.devices.stethoscope_sim.StethoscopeSynth` (seed 0): the
heart mode (S1/S2/S3 at 72 bpm, 150–400 Hz systolic murmur) for ten beats, then the lung
mode (breath noise 100–1000 Hz, inspiratory crackles) for two breaths. Every sender plays
the same int16 samples in a loop, so the received audio can be aligned to the loop.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from telecart.devices.audio_chunk import CHUNK_SAMPLES, FULL_SCALE, SAMPLE_RATE, to_int16
from telecart.devices.stethoscope_sim import BEAT_S, BREATH_S, StethoscopeSynth

HEART_CHUNKS: Final = round(10 * BEAT_S * SAMPLE_RATE / CHUNK_SAMPLES)
LUNG_CHUNKS: Final = round(2 * BREATH_S * SAMPLE_RATE / CHUNK_SAMPLES)
HEART_SAMPLES: Final = HEART_CHUNKS * CHUNK_SAMPLES
LOOP_SAMPLES: Final = (HEART_CHUNKS + LUNG_CHUNKS) * CHUNK_SAMPLES
SECTIONS: Final = ("heart", "lung")


def source_loop() -> npt.NDArray[np.int16]:
    """One loop of the source, int16 mono at 48 kHz (about 16.3 s)."""
    synth = StethoscopeSynth(seed=0, mode="heart")
    chunks = [synth.next_chunk() for _ in range(HEART_CHUNKS)]
    synth.mode = "lung"
    chunks += [synth.next_chunk() for _ in range(LUNG_CHUNKS)]
    return to_int16(np.concatenate(chunks))


def section_of(positions: npt.NDArray[np.int64]) -> npt.NDArray[np.int8]:
    """Index into `SECTIONS` of each position (samples) in the loop."""
    return (np.asarray(positions) % LOOP_SAMPLES >= HEART_SAMPLES).astype(np.int8)


def write_wav(path: Path, samples: npt.NDArray[np.int16]) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.astype("<i2").tobytes())


def read_wav(path: Path) -> npt.NDArray[np.int16]:
    """A mono 16-bit 48 kHz WAV's samples; anything else is refused."""
    with wave.open(str(path), "rb") as wav:
        shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        if shape != (1, 2, SAMPLE_RATE):
            raise ValueError(f"{path}: need mono 16-bit {SAMPLE_RATE} Hz, got {shape}")
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.int16)


def as_float(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    return samples.astype(np.float64) / FULL_SCALE


class WavLoop:
    """Successive 20 ms chunks (960 int16 samples) of a sample loop, wrapping at its end."""

    def __init__(self, samples: npt.NDArray[np.int16]) -> None:
        self._samples = samples
        self._n = 0

    def next_chunk(self) -> npt.NDArray[np.int16]:
        index = (self._n + np.arange(CHUNK_SAMPLES)) % self._samples.size
        self._n = (self._n + CHUNK_SAMPLES) % self._samples.size
        return self._samples[index]
