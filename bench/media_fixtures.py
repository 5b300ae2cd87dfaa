"""Files the media benchmark makes at run time: the Chrome sender's page and its sound."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from bench.media_pages import SENDER_PAGE
from telecart.devices.audio_chunk import SAMPLE_RATE
from telecart.devices.stethoscope_sim import StethoscopeSynth

STETHOSCOPE_WAV_S = 30.0


def write_stethoscope_wav(path: Path, seconds: float = STETHOSCOPE_WAV_S) -> None:
    """The simulated stethoscope (heart mode), mono 16-bit at 48 kHz; Chromium loops it."""
    synth = StethoscopeSynth()
    chunks = []
    total = 0
    while total < seconds * SAMPLE_RATE:
        chunk = synth.next_chunk()
        chunks.append(chunk)
        total += len(chunk)
    samples = (np.concatenate(chunks) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())


def write_static(folder: Path) -> Path:
    """`sender.html` and `stethoscope.wav` into `folder`; returns the WAV's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sender.html").write_text(SENDER_PAGE, encoding="utf-8")
    wav = folder / "stethoscope.wav"
    write_stethoscope_wav(wav)
    return wav
