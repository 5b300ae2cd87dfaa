"""The rate controller on links recorded in the link lab, replayed without a network.

Each file in `recordings/` is what a telecart cart's controller heard in one 60 s call
over a link-lab profile (bench/profiles.toml, `bench.media --keep`, session 11): its
control steps with the receiver reports, Chromium's transport-wide feedback, probe
readings and the media watchdog's verdicts (cart_agent/link_recording.py). The replay is
open loop: the packets are those the recorded call sent, so these tests check how the
controller reads each link, with times from the recording's start (about the
specialist's Accept, the link's zero).
"""

from __future__ import annotations

import statistics
from functools import cache
from pathlib import Path

import pytest

from telecart.cart_agent.link_recording import Tick, WatchdogVerdict, read_recording
from telecart.cart_agent.link_replay import ReplayedStep, replay

RECORDINGS = Path(__file__).with_name("recordings")
PROFILES = ("step", "rural-3g", "satellite", "outage", "edge")


@cache
def replayed(profile: str) -> tuple[ReplayedStep, ...]:
    return tuple(replay(read_recording(RECORDINGS / f"{profile}.jsonl.gz")))


def estimates(profile: str, start: float, end: float = 1e9) -> list[float]:
    return [s.state.estimate_kbps for s in replayed(profile) if start <= s.at < end]


def raw_round_trips(profile: str) -> list[float]:
    recording = read_recording(RECORDINGS / f"{profile}.jsonl.gz")
    ticks = [r.event for r in recording.events if isinstance(r.event, Tick)]
    return [t.report.rtt_s for t in ticks if t.report is not None and t.report.rtt_s is not None]


@pytest.mark.parametrize("profile", PROFILES)
def test_the_screens_never_show_a_round_trip_aiortc_misread(profile: str) -> None:
    shown = [s.state.rtt_ms for s in replayed(profile) if s.state.rtt_ms is not None]
    assert shown and min(shown) >= 5


def test_the_recorded_reports_include_the_misread_round_trips() -> None:
    """What the test above guards against: aiortc's RTT from a receiver report that
    echoes an older sender report (on `edge` 8 of 36 reports, down to -781 ms)."""
    assert min(raw_round_trips("edge")) < -0.5
    assert min(raw_round_trips("step")) < 0


def test_step_the_estimate_follows_the_drop_in_a_second_and_a_half_and_the_rise_in_ten() -> None:
    """2000 kbit/s, 300 from 20 s, 1000 from 40 s."""
    assert statistics.mean(estimates("step", 10, 19.5)) >= 1200
    after_drop = next(s.at for s in replayed("step") if s.at >= 20 and s.state.estimate_kbps <= 360)
    assert after_drop <= 21.5
    assert max(estimates("step", 22, 40)) <= 1.3 * 300  # never far past the thin link
    after_rise = next(s.at for s in replayed("step") if s.at >= 40 and s.state.estimate_kbps >= 800)
    assert after_rise <= 50


def test_rural_3g_keeps_the_whole_stethoscope_and_sheds_the_room_camera() -> None:
    """384 kbit/s up, 2 % loss, 75 ms each way with 15 ms of jitter."""
    settled = [s.state for s in replayed("rural-3g") if s.at >= 10]
    assert {s.stethoscope_kbps for s in settled} == {48.0}
    assert {s.room for s in settled} == {"off"}
    assert {s.exam for s in settled} == {"320x180@15"}
    assert 0.8 * 384 <= statistics.median(estimates("rural-3g", 10)) <= 1.25 * 384


def test_a_satellite_round_trip_is_never_an_outage() -> None:
    """1000 kbit/s up, 1 % loss, 300 ms each way: a 0.6 s round trip and more."""
    steps = replayed("satellite")
    assert not any(s.outage for s in steps)
    assert min(s.state.rtt_ms or 0 for s in steps if s.at >= 5) >= 400
    assert 700 <= statistics.median(estimates("satellite", 10)) <= 1000


def test_an_outage_is_declared_while_the_link_is_down_and_its_rung_returns_with_it() -> None:
    """1000 kbit/s, down from 20 s to 30 s."""
    recording = read_recording(RECORDINGS / "outage.jsonl.gz")
    start = recording.events[0].at
    back = next(
        r.at - start
        for r in recording.events
        if isinstance(r.event, WatchdogVerdict) and r.event.state == "connected"
    )
    steps = replayed("outage")
    assert not any(s.outage for s in steps if s.at < 20)
    assert any(s.outage for s in steps if 20 <= s.at < back)
    before = [s for s in steps if s.at < 20][-1]
    after = [s for s in steps if s.at >= back]
    assert not any(s.outage for s in after)
    assert after[0].state.rung == before.state.rung  # at once, not climbing back
    assert after[0].at - back <= 0.6


def test_edge_keeps_exam_stills_and_the_stethoscope_on_128_kbit_s() -> None:
    """128 kbit/s up, 5 % loss, 100 ms each way with 20 ms of jitter."""
    settled = [s.state for s in replayed("edge") if s.at >= 10]
    assert {s.exam for s in settled} == {"stills"}
    assert min(s.stethoscope_kbps for s in settled) >= 24
