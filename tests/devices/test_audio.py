"""Audio: the synthesisers, the simulated sources, and sounddevice over a JACK dummy."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from telecart.devices.audio import SoundDeviceInput, SoundDeviceOutput
from telecart.devices.audio_chunk import CHUNK_SAMPLES, SAMPLE_RATE, AudioChunk
from telecart.devices.audio_sim import SimulatedAudioInput
from telecart.devices.config import AudioInputConfig, AudioOutputConfig
from telecart.devices.devtest_media import tone_chunk
from telecart.devices.errors import DeviceError
from telecart.devices.stethoscope_sim import StethoscopeMode, StethoscopeSynth
from telecart.devices.voice_sim import VoiceSynth


def band_energy(x: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)
    return float(spectrum[(freqs >= low) & (freqs <= high)].sum())


def render(mode: StethoscopeMode, seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    synth = StethoscopeSynth(seed, mode)
    return np.concatenate([synth.next_chunk() for _ in range(int(seconds * 50))])


def test_heart_mode_is_dominated_by_heart_sounds_and_lung_mode_by_breath() -> None:
    heart, lung = render("heart"), render("lung")
    assert band_energy(heart, 20, 115) > 5 * band_energy(heart, 150, 1000)
    assert band_energy(lung, 150, 1000) > 2 * band_energy(lung, 20, 115)
    wide = render("wide")
    assert band_energy(wide, 20, 115) > 0 and band_energy(wide, 150, 1000) > 0


def test_murmur_sits_between_s1_and_s2() -> None:
    synth = StethoscopeSynth(0, "heart")
    x = np.concatenate([synth.next_chunk() for _ in range(50)])
    beat = int(60 / 72 * SAMPLE_RATE)
    systole = x[int(0.15 * SAMPLE_RATE) : int(0.25 * SAMPLE_RATE)]
    diastole = x[int(0.65 * SAMPLE_RATE) : int(0.75 * SAMPLE_RATE)]
    assert beat > 0
    assert band_energy(systole, 150, 400) > 10 * band_energy(diastole, 150, 400)


@pytest.mark.parametrize("mode", ["heart", "lung", "wide"])
def test_stethoscope_never_clips(mode: StethoscopeMode) -> None:
    assert np.abs(render(mode, 8.0)).max() < 0.9


def test_synthesis_is_deterministic_per_seed() -> None:
    assert np.array_equal(render("wide", 1.0, seed=3), render("wide", 1.0, seed=3))
    assert not np.array_equal(render("wide", 1.0, seed=3), render("wide", 1.0, seed=4))


def test_voice_has_syllable_rhythm() -> None:
    synth = VoiceSynth(0)
    x = np.concatenate([synth.next_chunk() for _ in range(100)])
    rms = np.sqrt((x.reshape(-1, CHUNK_SAMPLES) ** 2).mean(axis=1))
    assert rms.max() > 0.02 and rms.min() < rms.max() / 10


async def test_simulated_stethoscope_is_real_time_and_switches_mode() -> None:
    source = SimulatedAudioInput(AudioInputConfig("stethoscope", "simulated"))
    await source.open()
    loop = asyncio.get_running_loop()
    started = loop.time()
    chunks = [await source.read() for _ in range(26)]
    assert loop.time() - started >= 0.48
    assert all(c.samples.shape == (960,) and c.samples.dtype == np.int16 for c in chunks)
    source.mode = "lung"
    assert source.mode == "lung"
    with pytest.raises(ValueError):
        source.mode = "belly"  # type: ignore[assignment]


async def test_missing_sound_device_raises_actionable_error(jack_server: str) -> None:
    source = SoundDeviceInput(AudioInputConfig("stethoscope", "Littmann USB"))
    with pytest.raises(DeviceError, match="Stethoscope not found"):
        await source.open(require=True)
    await source.close()


async def test_jack_input_delivers_20ms_int16_chunks(jack_server: str) -> None:
    source = SoundDeviceInput(AudioInputConfig("voice", "system"))
    await source.open(require=True)
    try:
        chunks = [await source.read() for _ in range(10)]
    finally:
        await source.close()
    assert all(c.samples.shape == (960,) and c.samples.dtype == np.int16 for c in chunks)
    assert source.status.state == "disconnected" and source.status.message == "closed"
    assert chunks[-1].captured_at > chunks[0].captured_at


async def test_jack_output_plays_at_device_rate(jack_server: str) -> None:
    sink = SoundDeviceOutput(AudioOutputConfig("system"))
    await sink.open()
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        for i in range(30):
            await sink.write(tone_chunk(i))
        await sink.drain()
        elapsed = loop.time() - started
    finally:
        await sink.close()
    assert sink.chunks_written == 30
    assert elapsed >= 0.4  # paced by the dummy device's clock, not instant
    assert -16 < sink.last_dbfs < -14  # a -12 dBFS peak sine is -15 dBFS RMS


def test_tone_chunk_is_960_samples() -> None:
    assert isinstance(tone_chunk(0), AudioChunk) and tone_chunk(0).samples.shape == (960,)
