"""The stethoscope benchmark's analysis on known distortions of its own source (no network)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from bench.stethoscope_analysis import (
    BANDS_HZ,
    ENVELOPE_RATE,
    align,
    band_levels_db,
    fidelity,
    longest_silent_gap_ms,
    without_islands,
)
from bench.stethoscope_signal import HEART_SAMPLES, LOOP_SAMPLES, as_float, source_loop
from telecart.devices.audio_chunk import SAMPLE_RATE

Floats = npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def loop() -> Floats:
    return as_float(source_loop())


def _played(loop: Floats, start: int, seconds: float) -> Floats:
    """What a sender starting `start` samples into the loop plays for `seconds`."""
    return loop[(start + np.arange(int(seconds * SAMPLE_RATE))) % loop.size]


def _high_pass(x: Floats, cutoff_hz: float) -> tuple[Floats, list[float]]:
    """`x` through a zero-phase 2nd-order Butterworth high-pass, and each band's exact dB."""
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)
    power_gain = freqs**4 / (freqs**4 + cutoff_hz**4)
    power = np.abs(spectrum) ** 2
    expected = []
    for low, high in BANDS_HZ:
        band = (freqs >= low) & (freqs < high)
        expected.append(10 * np.log10((power[band] * power_gain[band]).sum() / power[band].sum()))
    return np.fft.irfft(spectrum * np.sqrt(power_gain), x.size), expected


def test_a_gain_shows_as_the_same_level_in_every_band(loop: Floats) -> None:
    levels = band_levels_db(loop * 10 ** (-6 / 20), loop)
    assert levels == pytest.approx([-6.0] * len(BANDS_HZ), abs=0.3)


def test_a_high_pass_filter_shows_its_loss_in_each_band(loop: Floats) -> None:
    filtered, expected = _high_pass(loop, 60.0)
    assert expected[0] < -8 and expected[3] > -0.1  # the filter does bite where expected
    assert band_levels_db(filtered, loop) == pytest.approx(expected, abs=0.3)


def test_a_copy_shifted_into_the_loop_aligns_block_by_block(loop: Floats) -> None:
    start = 123_457
    alignment = align(_played(loop, start, 5.0), loop)
    assert alignment.found.all()
    expected = (start + np.arange(alignment.offsets.size) * alignment.block) % loop.size
    assert alignment.offsets.tolist() == expected.tolist()


def test_alignment_follows_a_jitter_buffer_stretch(loop: Floats) -> None:
    played = _played(loop, 5_000, 6.0)
    stretched = np.concatenate([played[:72_000], played[71_520:72_000], played[72_000:]])
    alignment = align(stretched, loop)
    assert alignment.found.all()
    assert alignment.offsets[-1] == (5_000 + 11 * alignment.block - 480) % loop.size


def test_a_clean_copy_after_leading_silence_is_faithful(loop: Floats) -> None:
    received = np.concatenate([np.zeros(30_000), 0.5 * _played(loop, 300_000, 20.0)])
    result = fidelity(received, loop)
    assert result is not None
    assert result.band_db == pytest.approx([-6.02] * len(BANDS_HZ), abs=0.1)
    assert result.r["heart"] == pytest.approx(1.0, abs=0.01)
    assert result.r["lung"] == pytest.approx(1.0, abs=0.01)
    assert result.silent_gap_ms == 0
    assert result.found_fraction == 1.0


def test_a_dropout_in_the_lung_section_is_the_longest_gap(loop: Floats) -> None:
    received = _played(loop, HEART_SAMPLES, 6.0)
    received[96_000:105_600] = 0  # 200 ms, two seconds into the lung section
    assert longest_silent_gap_ms(received, _played(loop, HEART_SAMPLES, 6.0)) == pytest.approx(
        200, abs=20
    )


def test_a_dropout_lowers_the_envelope_correlation(loop: Floats) -> None:
    received = _played(loop, HEART_SAMPLES, 8.0)
    received[int(2 * SAMPLE_RATE) : int(4 * SAMPLE_RATE)] = 0
    result = fidelity(received, loop)
    assert result is not None
    assert result.r["lung"] is not None and result.r["lung"] < 0.9
    assert result.silent_gap_ms == pytest.approx(2000, abs=50)


def test_nothing_of_the_source_gives_no_figures(loop: Floats) -> None:
    noise = np.random.default_rng(0).normal(0, 0.1, 4 * SAMPLE_RATE)
    assert fidelity(noise, loop) is None
    assert fidelity(np.zeros(4 * SAMPLE_RATE), loop) is None


def test_the_loop_is_heart_then_lung() -> None:
    assert HEART_SAMPLES == pytest.approx(10 * 60 / 72 * SAMPLE_RATE, abs=960)
    assert LOOP_SAMPLES - HEART_SAMPLES == 8 * SAMPLE_RATE


def test_an_alignment_island_is_in_no_sections_correlation() -> None:
    second = ENVELOPE_RATE
    heart, lung = [0] * 8 * second, [1] * 8 * second
    island = [1] * (second // 4)  # a quarter second of "lung" positions: a misaligned block
    labels = np.array(heart[: 4 * second] + island + heart + lung + heart[: second // 2], np.int8)
    cleaned = without_islands(labels)
    assert (cleaned[4 * second : 4 * second + second // 4] == -1).all()
    assert (cleaned[-second // 2 :] == -1).all()  # a section cut short by the recording's end
    kept = cleaned != -1
    assert (cleaned[kept] == labels[kept]).all()
    assert kept.sum() == labels.size - second // 4 - second // 2
