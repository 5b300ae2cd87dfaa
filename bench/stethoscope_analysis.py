"""Received stethoscope audio against its source: alignment, band levels, envelopes, gaps.

Pure numpy, no I/O. The received audio is cut into 0.5 s blocks and each block is found in
the looping source by circular cross-correlation (first at 12 kHz, then refined at 48 kHz),
because the receiver's jitter buffer stretches and conceals, so one offset does not hold
for a whole call. A block that matches nothing (a gap, concealment noise) takes its
predecessor's offset plus one block, so what was lost still counts against fidelity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from bench.stethoscope_signal import SECTIONS, section_of
from telecart.devices.audio_chunk import SAMPLE_RATE

Floats = npt.NDArray[np.float64]

BANDS_HZ: Final = ((20.0, 40.0), (40.0, 80.0), (80.0, 200.0), (200.0, 1000.0))
BLOCK_S: Final = 0.5
MATCH_MIN: Final = 0.5  # normalised correlation for a block to count as found
LEVEL_TOLERANCE_DB: Final = 15.0
TRACK_S: Final = 0.25  # how far a block may move from where the previous one ended
_DECIMATE: Final = 4
WELCH_SEGMENT: Final = 16_384  # 2.9 Hz bins: the 20–40 Hz band gets seven
ENVELOPE_RATE: Final = 200
ENVELOPE_CUTOFF_HZ: Final = 25.0  # 20 ms resolution: the shape of each sound, not its waveform
GAP_FRAME_S: Final = 0.01
GAP_BELOW_SOURCE_DB: Final = 30.0  # a frame this far under its source is silent
SOUND_FLOOR: Final = 1e-4  # -80 dBFS: a recording starts with exact silence, not this
QUIET_SOURCE_DBFS: Final = -50.0  # source frames quieter than this say nothing about gaps
# The source's sections last 8 s; a shorter run of one section's positions is a block
# aligned to the wrong place (a jitter-buffer jump), and its envelope compares unlike
# sounds: 0.1-0.4 s islands of "lung" inside the heart section took `step`'s lung r
# from 0.99 to 0.55-0.89 while every 4 s lung window read 0.98-1.00.
MIN_SECTION_S: Final = 1.0


@dataclass(frozen=True)
class Alignment:
    """Per block of `BLOCK_S` received: its start in the loop and whether it was found."""

    offsets: npt.NDArray[np.int64]
    found: npt.NDArray[np.bool_]
    block: int

    @property
    def found_fraction(self) -> float:
        return float(self.found.mean()) if self.found.size else 0.0


@dataclass(frozen=True)
class Fidelity:
    """The figures of one recording; band levels in dB received − source."""

    band_db: tuple[float, ...]
    r: dict[str, float | None]
    silent_gap_ms: float
    analysed_s: float
    found_fraction: float


def _decimated(x: Floats) -> Floats:
    n = x.size // _DECIMATE * _DECIMATE
    means: Floats = x[:n].reshape(-1, _DECIMATE).mean(axis=1)
    return means


def align(received: Floats, loop: Floats) -> Alignment:
    """Where each 0.5 s block of `received` sits in the looping `loop`.

    A block is first looked for within `TRACK_S` of where the previous one ended (the
    jitter buffer moves the offset by tens of ms at most); only when it is not found there
    is the whole loop searched: heart sounds recur every beat and, quieter, in the lung
    section, so a block can match several places nearly as well as its own."""
    block = int(BLOCK_S * SAMPLE_RATE)
    small = block // _DECIMATE
    reach = int(TRACK_S * SAMPLE_RATE) // _DECIMATE
    loop_d = _decimated(loop)
    spectrum = np.fft.rfft(loop_d)
    squares = np.concatenate([loop_d, loop_d[: small - 1]]) ** 2
    window_energy = np.maximum(np.convolve(squares, np.ones(small), "valid")[: loop_d.size], 1e-20)
    offsets, found = [], []
    expected: int | None = None
    for start in range(0, received.size - block + 1, block):
        chunk = received[start : start + block]
        chunk_d = _decimated(chunk)
        chunk_energy = max(float(chunk_d @ chunk_d), 1e-20)
        corr = np.fft.irfft(np.conj(np.fft.rfft(chunk_d, loop_d.size)) * spectrum, loop_d.size)
        ncc = corr / np.sqrt(window_energy * chunk_energy)
        coarse = int(np.argmax(ncc * _level_weight(window_energy / chunk_energy)))
        if expected is not None:
            near = (expected // _DECIMATE + np.arange(-reach, reach + 1)) % loop_d.size
            best_near = int(near[np.argmax(ncc[near])])
            if ncc[best_near] >= MATCH_MIN:
                coarse = best_near
        candidates = [coarse * _DECIMATE + d for d in range(-_DECIMATE, _DECIMATE + 1)]
        scores = [_match(chunk, loop, c) for c in candidates]
        best = int(np.argmax(scores))
        offsets.append(candidates[best] % loop.size)
        found.append(scores[best] >= MATCH_MIN)
        if found[-1]:
            expected = offsets[-1] + block
        elif expected is not None:
            expected += block
    return Alignment(np.array(offsets, np.int64), np.array(found, np.bool_), block)


def _level_weight(power_ratio: Floats) -> Floats:
    """Down-weights stretches of the loop far louder or quieter than the block."""
    level_db = 10 * np.log10(power_ratio)
    weight: Floats = np.exp(-((level_db / LEVEL_TOLERANCE_DB) ** 2))
    return weight


def _match(chunk: Floats, loop: Floats, offset: int) -> float:
    """Normalised correlation of `chunk` with the loop from `offset`."""
    segment = loop[(offset + np.arange(chunk.size)) % loop.size]
    denominator = np.sqrt(float(chunk @ chunk) * float(segment @ segment))
    return float(chunk @ segment) / denominator if denominator > 0 else 0.0


def aligned_source(alignment: Alignment, loop_size: int) -> npt.NDArray[np.int64] | None:
    """Loop position of every received sample from the first found block on (None if none).

    A block not found continues from the previous one, a lost stretch being compared
    with what should have been there."""
    if not alignment.found.any():
        return None
    first = int(np.argmax(alignment.found))
    positions = []
    offset = int(alignment.offsets[first])
    for offset_i, found in zip(alignment.offsets[first:], alignment.found[first:], strict=True):
        if found:
            offset = int(offset_i)
        positions.append((offset + np.arange(alignment.block)) % loop_size)
        offset += alignment.block
    return np.concatenate(positions)


def welch_psd(x: Floats) -> tuple[Floats, Floats]:
    """Frequencies and mean power spectrum of Hann-windowed, half-overlapping segments."""
    segment = min(WELCH_SEGMENT, x.size)
    window = np.hanning(segment)
    starts = range(0, x.size - segment + 1, segment // 2)
    spectra = [np.abs(np.fft.rfft(x[s : s + segment] * window)) ** 2 for s in starts]
    power: Floats = np.mean(spectra, axis=0)
    freqs: Floats = np.fft.rfftfreq(segment, 1 / SAMPLE_RATE)
    return freqs, power


def band_levels_db(received: Floats, source: Floats) -> tuple[float, ...]:
    """Per `BANDS_HZ`, received band power over source band power, in dB."""
    freqs, p_received = welch_psd(received)
    _, p_source = welch_psd(source)
    levels = []
    for low, high in BANDS_HZ:
        band = (freqs >= low) & (freqs < high)
        ratio = max(float(p_received[band].sum()), 1e-30) / max(float(p_source[band].sum()), 1e-30)
        levels.append(10 * np.log10(ratio))
    return tuple(float(level) for level in levels)


def envelope(x: Floats) -> Floats:
    """Hilbert magnitude at `ENVELOPE_RATE`, low-passed at `ENVELOPE_CUTOFF_HZ`."""
    spectrum = np.fft.fft(x)
    weights = np.zeros(x.size)
    weights[0] = 1
    weights[1 : (x.size + 1) // 2] = 2
    if x.size % 2 == 0:
        weights[x.size // 2] = 1
    magnitude = np.abs(np.fft.ifft(spectrum * weights))
    step = SAMPLE_RATE // ENVELOPE_RATE
    coarse = magnitude[: magnitude.size // step * step].reshape(-1, step).mean(axis=1)
    smooth = np.fft.rfft(coarse)
    smooth[np.fft.rfftfreq(coarse.size, 1 / ENVELOPE_RATE) > ENVELOPE_CUTOFF_HZ] = 0
    smoothed: Floats = np.fft.irfft(smooth, coarse.size)
    return smoothed


def envelope_r(received: Floats, source: Floats, mask: npt.NDArray[np.bool_]) -> float | None:
    """Pearson r of the two envelopes where `mask` (at `ENVELOPE_RATE`) holds."""
    a, b = envelope(received)[mask], envelope(source)[mask]
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def without_islands(sections: npt.NDArray[np.int8]) -> npt.NDArray[np.int8]:
    """Section labels at `ENVELOPE_RATE` with runs under `MIN_SECTION_S` set to -1 (in no
    section's envelope correlation)."""
    labels = sections.copy()
    edges = np.flatnonzero(np.diff(labels) != 0) + 1
    starts, ends = np.concatenate([[0], edges]), np.concatenate([edges, [labels.size]])
    for start, end in zip(starts, ends, strict=True):
        if end - start < MIN_SECTION_S * ENVELOPE_RATE:
            labels[start:end] = -1
    return labels


def _frame_dbfs(x: Floats, frame: int) -> Floats:
    rms = np.sqrt(np.mean(x[: x.size // frame * frame].reshape(-1, frame) ** 2, axis=1))
    levels: Floats = 20 * np.log10(np.maximum(rms, 1e-10))
    return levels


def longest_silent_gap_ms(received: Floats, source: Floats) -> float:
    """Longest span from a silent 10 ms frame to a later one with no heard frame between.

    Silent: received `GAP_BELOW_SOURCE_DB` under the source; heard: not silent. Frames
    whose source is below `QUIET_SOURCE_DBFS` are neither (a pause between heart sounds)."""
    frame = int(GAP_FRAME_S * SAMPLE_RATE)
    got, want = _frame_dbfs(received, frame), _frame_dbfs(source, frame)
    meaningful = want >= QUIET_SOURCE_DBFS
    silent = meaningful & (got < want - GAP_BELOW_SOURCE_DB)
    longest, first = 0, None
    for i in np.flatnonzero(meaningful).tolist():
        if not silent[i]:
            first = None
            continue
        if first is None:
            first = i
        longest = max(longest, i - first + 1)
    return longest * GAP_FRAME_S * 1000


def fidelity(received: Floats, loop: Floats) -> Fidelity | None:
    """All figures for a recording of the looping `loop`; None when nothing matches.

    The recording starts at its first sound: the track is recorded from its arrival, and
    its first packets come later."""
    sounding = np.flatnonzero(np.abs(received) >= SOUND_FLOOR)
    received = received[sounding[0] :] if sounding.size else received[:0]
    alignment = align(received, loop)
    positions = aligned_source(alignment, loop.size)
    if positions is None:
        return None
    start = int(np.argmax(alignment.found)) * alignment.block
    got = received[start : start + positions.size]
    want = loop[positions]
    step = SAMPLE_RATE // ENVELOPE_RATE
    sections = without_islands(section_of(positions[::step][: got.size // step]))
    r = {name: envelope_r(got, want, sections == index) for index, name in enumerate(SECTIONS)}
    return Fidelity(
        band_levels_db(got, want),
        r,
        longest_silent_gap_ms(got, want),
        got.size / SAMPLE_RATE,
        alignment.found_fraction,
    )
