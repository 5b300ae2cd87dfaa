"""The stethoscope benchmark's source: the loop, its WAV and how the Python senders play it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.stethoscope_signal import (
    HEART_SAMPLES,
    LOOP_SAMPLES,
    WavLoop,
    read_wav,
    section_of,
    source_loop,
    write_wav,
)
from bench.stethoscope_source import SOURCE_ENV, WavStethoscopeInput, loop_from_env
from telecart.devices.audio_chunk import CHUNK_SAMPLES
from telecart.devices.status import StatusBoard


def test_the_source_is_the_same_every_time_and_never_clips() -> None:
    first, second = source_loop(), source_loop()
    assert first.size == LOOP_SAMPLES
    assert np.array_equal(first, second)
    assert 0 < np.abs(first).max() < 32767


def test_the_wav_round_trips(tmp_path: Path) -> None:
    samples = source_loop()
    write_wav(tmp_path / "s.wav", samples)
    assert np.array_equal(read_wav(tmp_path / "s.wav"), samples)


def test_a_wav_loop_wraps_at_its_end() -> None:
    samples = np.arange(1500, dtype=np.int16)
    loop = WavLoop(samples)
    first, second = loop.next_chunk(), loop.next_chunk()
    assert first.tolist() == list(range(CHUNK_SAMPLES))
    assert second.tolist() == [*range(CHUNK_SAMPLES, 1500), *range(2 * CHUNK_SAMPLES - 1500)]


def test_positions_map_to_heart_then_lung() -> None:
    positions = np.array([0, HEART_SAMPLES - 1, HEART_SAMPLES, LOOP_SAMPLES + 5])
    assert section_of(positions).tolist() == [0, 0, 1, 0]


async def test_the_senders_play_the_wav_named_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SOURCE_ENV, raising=False)
    assert loop_from_env() is None
    samples = source_loop()
    write_wav(tmp_path / "s.wav", samples)
    monkeypatch.setenv(SOURCE_ENV, str(tmp_path / "s.wav"))
    loop = loop_from_env()
    assert loop is not None
    source = WavStethoscopeInput(loop, StatusBoard())
    await source.open()
    chunk = await source.read()
    assert np.array_equal(chunk.samples, samples[:CHUNK_SAMPLES])
    assert source.status.state == "ok"
