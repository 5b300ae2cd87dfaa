"""The stethoscope benchmark's figures and table from a hand-made page probe (no browser)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from bench.media_run import RunData
from bench.netlab.profiles import load_profile
from bench.stethoscope import meets_goals, nothing_received, run_figures, table
from bench.stethoscope_probe import recorded_pcm
from bench.stethoscope_signal import HEART_SAMPLES, as_float, source_loop

T0 = 1_000_000.0  # Accept, ms


def _probe(pcm: np.ndarray[Any, np.dtype[np.int16]]) -> dict[str, Any]:
    recording: dict[str, Any] = {"rate": 48_000, "startedAt": T0, "tracks": 1}
    recording["pcm"] = base64.b64encode(pcm.astype("<i2").tobytes()).decode()
    return {"samples": [], "audio": [], "frames": {}, "recording": recording}


def _run(probe: dict[str, Any]) -> RunData:
    return RunData("telecart", load_profile("good"), 10.0, T0, probe)


def test_the_recording_reads_back_as_floats() -> None:
    pcm = np.array([0, 16384, -32767], np.int16)
    assert recorded_pcm(_probe(pcm)).tolist() == [0.0, 16384 / 32767, -1.0]
    assert recorded_pcm({}).size == 0


def test_a_faithful_recording_passes_the_goals() -> None:
    samples = source_loop()
    received = np.roll(samples, -HEART_SAMPLES + 2 * 48_000)[: 10 * 48_000]
    figures = run_figures(_run(_probe(received)), as_float(samples))
    assert figures["pass"] is True
    assert figures["longest_gap_ms"] == 0
    assert all(abs(v) < 0.1 for v in figures["band_db"].values())
    result = {"profiles": {"good": {"telecart": figures}}}
    assert "PASS" in table(result)
    assert nothing_received(result) == []


def test_silence_is_reported_as_nothing_received() -> None:
    figures = run_figures(_run(_probe(np.zeros(48_000, np.int16))), as_float(source_loop()))
    assert "error" in figures
    result = {"profiles": {"good": {"telecart": figures}}}
    assert nothing_received(result) == [f"telecart on 'good': {figures['error']}"]
    assert "error" in table(result)


def test_a_band_off_by_more_than_3_db_fails_the_goals() -> None:
    figures = {"band_db": {"20-40": -3.2, "40-80": 0.0}, "r_heart": 0.99, "r_lung": 0.99}
    assert not meets_goals(figures)
    assert not meets_goals({**figures, "band_db": {"20-40": 0.0}, "r_lung": 0.89})
    assert meets_goals({**figures, "band_db": {"20-40": -2.9}})
