"""The media benchmark's figures, computed from hand-made probe data (no browser, no root).

The benchmark itself runs as a smoke in CI (`bench/media.py --smoke`), which fails when no
frame is ever decoded on the `good` profile.
"""

from __future__ import annotations

from typing import Any

from bench.media import smoke_failures, table
from bench.media_metrics import figures, recovery_s, rise_s, stalls
from bench.media_run import RunData
from bench.netlab.profiles import load_profile

T0 = 1_000_000.0  # Accept, ms


def _sample(t_s: float, pc: int, **tracks: dict[str, Any]) -> dict[str, Any]:
    return {"t": T0 + t_s * 1000, "pc": pc, "tracks": tracks}


def _run(profile: str = "good", seconds: float = 10.0, **probe: Any) -> RunData:
    probe.setdefault("samples", [])
    probe.setdefault("audio", [])
    probe.setdefault("frames", {})
    series = [{"t": i / 10, "up_kbps": 1000.0, "up_capacity_kbps": 5000.0} for i in range(1, 101)]
    return RunData("telecart", load_profile(profile), seconds, T0, probe, series)


def test_no_frame_means_no_first_frame_and_zero_fps() -> None:
    result = figures(_run())
    assert result["ttff_s"] is None
    assert result["fps_mean"] == 0.0
    assert result["g2g_p50_ms"] is None
    assert (result["stall_count"], result["stall_total_s"]) == (1, 10.0)


def test_counters_are_summed_over_peer_connections() -> None:
    video = {"kind": "video", "framesDecoded": 100, "freezeCount": 2, "frameHeight": 480}
    again = {"kind": "video", "framesDecoded": 50, "freezeCount": 1, "frameHeight": 240}
    frames = [[T0 + 1000 + i * 40, 60, 480] for i in range(200)]
    result = figures(
        _run(
            samples=[_sample(4, 1, room=video), _sample(8, 2, room=again)], frames={"room": frames}
        )
    )
    assert result["freeze_count"] == 3
    assert result["fps_mean"] == round(150 / 9, 1)
    assert result["ttff_s"] == 1.0
    assert result["g2g_p50_ms"] == 60


def test_stalls_include_a_gap_still_open_at_the_end() -> None:
    assert stalls([1.0, 1.1, 2.0, 2.1], 5.0) == [(1.1, 2.0), (2.1, 5.0)]


def test_concealment_and_utilisation() -> None:
    steth = {"kind": "audio", "concealedSamples": 480, "totalSamplesReceived": 48_000}
    result = figures(_run(samples=[_sample(5, 1, stethoscope=steth)]))
    assert result["steth_concealment"] == 0.01
    # A reference's one audio track stands for the voice too.
    assert result["voice_concealment"] == 0.01
    assert result["utilisation"] == 0.2


def test_longest_audio_gap_counts_mostly_concealed_polls_and_ignores_cached_repeats() -> None:
    polls = []
    concealed = total = 0
    for i in range(100):  # 5 s of 50 ms polls
        if i % 2 == 0:  # every other poll is a cached repeat
            total += 4800
            if 40 <= i < 60:  # 1 s fully concealed
                concealed += 4800
        polls.append({"t": T0 + i * 50, "pc": 1, "tracks": {"stethoscope": [concealed, total, i]}})
    steth = {"kind": "audio", "concealedSamples": concealed, "totalSamplesReceived": total}
    result = figures(_run(seconds=5.0, audio=polls, samples=[_sample(5, 1, stethoscope=steth)]))
    assert result["longest_audio_gap_ms"] == 1000


def test_recovery_after_the_step_is_when_latency_stays_under_delay_plus_400_ms() -> None:
    profile = load_profile("step")  # 2000 → 300 kbit/s at 20 s, → 1000 at 40 s; delay 50 ms
    frames = [(20 + i * 0.04, 900.0 if i < 250 else 100.0) for i in range(500)]
    assert recovery_s(profile, frames, 60.0) == 10.0
    stuck = [(20 + i * 0.04, 900.0) for i in range(500)]
    assert recovery_s(profile, stuck, 60.0) is None


def test_smoke_fails_when_a_sender_never_shows_a_frame_on_good() -> None:
    ok = figures(
        _run(
            frames={"room": [[T0 + 500, 50, 480]]}, samples=[_sample(1, 1, room={"kind": "video"})]
        )
    )
    broken = figures(_run())
    entry = {"capacity_up_kbps": 5000.0, "telecart": ok, "aiortc": broken}
    assert smoke_failures({"profiles": {"good": entry}}) == [
        "aiortc: no video frame decoded on 'good'"
    ]
    assert "telecart÷aiortc" in table("good", entry)


def test_rise_is_when_the_link_first_carries_80_percent_of_its_new_rate_for_a_second() -> None:
    profile = load_profile("step")  # → 1000 kbit/s at 40 s
    climbing = [
        {"t": 40 + i / 10, "up_kbps": 300.0 + 50.0 * (i // 10), "up_capacity_kbps": 1000.0}
        for i in range(1, 201)
    ]
    # 50 k more each second; the ten 100 ms bins from 50.0 to 50.9 s all carry 800 k.
    assert rise_s(profile, climbing, 60.0) == 10.9
    flat = [dict(row, up_kbps=700.0) for row in climbing]
    assert rise_s(profile, flat, 60.0) is None
    spike = [dict(row, up_kbps=1000.0 if row["t"] == 41.0 else 300.0) for row in climbing]
    assert rise_s(profile, spike, 60.0) is None  # one 100 ms bin is not a second
    assert rise_s(load_profile("edge"), climbing, 60.0) is None
