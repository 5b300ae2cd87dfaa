"""Figures of one media benchmark run, from the browser probe and the link's series.

The window is `seconds` from the specialist's Accept (t = 0, also the link clock's zero).
Definitions (docs/media-benchmark.md):
- freezes: Chromium's `freezeCount` / `totalFreezesDuration` of the room video (it calls
  gaps over 5 s pauses and misses one still going at the end); stalls: gaps ≥ 0.5 s with
  no presented frame from the first frame to the end of the window, the end included
  (the whole window when no frame is ever shown);
- fps: frames decoded from the first frame to the end, per second; height: median of the
  samples' `frameHeight` after the first frame;
- kbps: RTP bytes (payload + headers) received on all tracks, per second of the window;
  utilisation: IP bytes delivered up the link over the capacity in force (lab series);
- glass-to-glass: presented time minus the capture time in the frame's strip;
- concealment: `concealedSamples / totalSamplesReceived` per audio track; longest audio
  gap: the longest run of 50 ms polls in which at least half the samples played were
  concealed (or none played), from the track's first packet;
- exam camera (the cart's, shed after the room camera): the same fps, height, stalls and
  recovery, plus its longest stall after the first `SETTLE_S` seconds; stills: how many
  arrived, and the longest gap after `SETTLE_S` with no new exam picture, frame or still
  (the edge goal: a still at least every 5 s);
- recovery (profiles whose uplink steps or goes down): seconds from the change until the
  last frame with glass-to-glass ≥ delay + 400 ms, or the last stall, before the next
  change; `None` ("never") when that is within 2 s of the next change;
- rise (profiles whose uplink capacity goes up, `step` at 40 s): seconds from the rise
  until the link's delivered rate, a 1 s mean, first reaches `RISE_SHARE` of the new
  capacity (the step goal: 80 % of 1000 kbit/s within 10 s); `None` when it never does.
"""

from __future__ import annotations

import itertools
import statistics
from typing import Any

from bench.media_run import RunData
from bench.netlab.profiles import Profile

STALL_S = 0.5
GAP_CONCEALED = 0.5
AUDIO_POLL_MS = 50.0
RECOVERY_MARGIN_MS = 400.0
RECOVERY_HOLD_S = 2.0
RISE_SHARE = 0.8
RISE_MEAN_S = 1.0
SETTLE_S = 10.0  # the rural-3g goal: no freeze over 1 s after the first 10 s
G2G_PLAUSIBLE_MS = (-50.0, 120_000.0)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _total(samples: list[dict[str, Any]], role: str, key: str) -> float:
    """A cumulative counter summed over the run's peer connections (each starts at 0)."""
    last: dict[int, float] = {}
    for sample in samples:
        value = sample["tracks"].get(role, {}).get(key)
        if value is not None:
            last[sample["pc"]] = value
    return sum(last.values())


def _plausible(g2g: float | None) -> float | None:
    """A strip misread (blur, a shrunk frame) gives an absurd value: count it as unread."""
    return g2g if g2g is not None and G2G_PLAUSIBLE_MS[0] <= g2g <= G2G_PLAUSIBLE_MS[1] else None


def _frames(data: RunData, role: str, end_ms: float) -> list[tuple[float, float | None]]:
    """(seconds from Accept, g2g ms or None) of each presented frame in the window."""
    t0 = data.accepted_at_ms
    frames = data.probe.get("frames", {}).get(role, [])
    return [((f[0] - t0) / 1000, _plausible(f[1])) for f in frames if t0 <= f[0] <= end_ms]


def stalls(times: list[float], end_s: float) -> list[tuple[float, float]]:
    """(start, end) of every gap ≥ `STALL_S` between presented frames, the tail included."""
    gaps = [(a, b) for a, b in itertools.pairwise(times) if b - a >= STALL_S]
    if times and end_s - times[-1] >= STALL_S:
        gaps.append((times[-1], end_s))
    return gaps


def longest_audio_gap_ms(data: RunData, role: str, end_ms: float) -> float | None:
    """Chromium caches stats for a few tens of ms, so only polls whose counters moved
    delimit intervals; counters that stop moving (playout stopped) are a gap too."""
    polls = [p for p in data.probe.get("audio", []) if p["t"] <= end_ms]
    longest = run = 0.0
    previous: tuple[int, list[float], float] | None = None
    for poll in polls:
        values = poll["tracks"].get(role)
        if values is None or (previous is None and values[2] == 0):
            continue
        if previous is None or poll["pc"] != previous[0]:
            previous = (poll["pc"], values, poll["t"])
            continue
        _, (concealed, total, _), t = previous
        if values[:2] == [concealed, total]:
            continue
        d_total, d_concealed = values[1] - total, values[0] - concealed
        if d_concealed >= GAP_CONCEALED * d_total:
            run += poll["t"] - t
            longest = max(longest, run)
        else:
            run = 0.0
        previous = (poll["pc"], values, poll["t"])
    if previous is None:
        return None
    stopped = end_ms - previous[2]
    if stopped > 4 * AUDIO_POLL_MS:
        longest = max(longest, run + stopped)
    return round(longest)


def _link_changes(profile: Profile) -> list[float]:
    up = profile.up
    return sorted({t for t, _ in up.rate_trace} | {end for _, end in up.outages})


def recovery_s(
    profile: Profile, frames: list[tuple[float, float | None]], end_s: float
) -> float | None:
    """Seconds after the uplink's first change until latency and frames are back to normal."""
    changes = [t for t in _link_changes(profile) if t < end_s]
    if not changes:
        return None
    start = changes[0]
    until = changes[1] if len(changes) > 1 else end_s
    threshold = profile.up.delay_ms + RECOVERY_MARGIN_MS
    times = [t for t, _ in frames]
    last_bad = start
    for t, g2g in frames:
        if start <= t <= until and g2g is not None and g2g >= threshold:
            last_bad = max(last_bad, t)
    for a, b in stalls(times, until):
        if b >= start and a <= until:
            last_bad = max(last_bad, b)
    if until - last_bad < RECOVERY_HOLD_S:
        return None
    return round(last_bad - start, 1)


def _rises(profile: Profile) -> list[tuple[float, float]]:
    """(time, new kbit/s) of each step up in the uplink's rate trace."""
    steps = [(0.0, profile.up.rate_kbps), *profile.up.rate_trace]
    return [(t, kbps) for (_, before), (t, kbps) in itertools.pairwise(steps) if kbps > before]


def rise_s(profile: Profile, series: list[dict[str, float]], end_s: float) -> float | None:
    """Seconds after the uplink's first rise until it carries `RISE_SHARE` of the new rate."""
    rises = [(t, kbps) for t, kbps in _rises(profile) if t < end_s]
    if not rises:
        return None
    start, kbps = rises[0]
    window = [(r["t"], r["up_kbps"]) for r in series if start < r["t"] <= end_s]
    for i, (t, _) in enumerate(window):
        recent = [k for u, k in window[: i + 1] if u > t - RISE_MEAN_S]
        if t - start >= RISE_MEAN_S and statistics.fmean(recent) >= RISE_SHARE * kbps:
            return round(t - start, 1)
    return None


def figures(data: RunData) -> dict[str, Any]:
    """The reported numbers of one run (see the module docstring)."""
    seconds = data.seconds
    end_ms = data.accepted_at_ms + seconds * 1000
    samples = [s for s in data.probe.get("samples", []) if s["t"] <= end_ms]
    room = _frames(data, "room", end_ms)
    first = room[0][0] if room else None
    g2g = [d for _, d in room if d is not None]
    # With no frame at all, the whole window is one stall.
    room_stalls = stalls([t for t, _ in room], seconds) if room else [(0.0, seconds)]
    decoded = _total(samples, "room", "framesDecoded")
    heights = [
        s["tracks"]["room"]["frameHeight"]
        for s in samples
        if first is not None
        and (s["t"] - data.accepted_at_ms) / 1000 >= first
        and "frameHeight" in s["tracks"].get("room", {})
    ]
    roles = {role for s in samples for role in s["tracks"]}
    rtp_bytes = sum(
        _total(samples, role, "bytesReceived") + _total(samples, role, "headerBytesReceived")
        for role in roles
    )
    series = [row for row in data.series if row["t"] <= seconds]
    capacity = statistics.fmean(r["up_capacity_kbps"] for r in series) if series else 0.0
    delivered = statistics.fmean(r["up_kbps"] for r in series) if series else 0.0

    def concealment(role: str) -> float | None:
        total = _total(samples, role, "totalSamplesReceived")
        return round(_total(samples, role, "concealedSamples") / total, 4) if total else None

    audio_roles = [r for r in ("stethoscope", "voice") if r in roles]
    steth = concealment("stethoscope")
    gaps = [longest_audio_gap_ms(data, role, end_ms) for role in audio_roles]
    result: dict[str, Any] = {
        "freeze_count": int(_total(samples, "room", "freezeCount")),
        "freeze_total_s": round(_total(samples, "room", "totalFreezesDuration"), 2),
        "stall_count": len(room_stalls),
        "stall_total_s": round(sum(b - a for a, b in room_stalls), 2),
        "fps_mean": round(decoded / (seconds - first), 1) if first is not None else 0.0,
        "height_median": int(statistics.median(heights)) if heights else None,
        "kbps_mean": round(rtp_bytes * 8 / 1000 / seconds, 1),
        "link_kbps_mean": round(delivered, 1),
        "utilisation": round(delivered / capacity, 3) if capacity else None,
        "g2g_p50_ms": round(statistics.median(g2g)) if g2g else None,
        "g2g_p95_ms": round(_percentile(g2g, 0.95)) if g2g else None,
        "g2g_frames": len(g2g),
        "steth_concealment": steth,
        # The references send one audio track (the stethoscope sound): it stands for both.
        "voice_concealment": concealment("voice") if "voice" in roles else steth,
        "longest_audio_gap_ms": max((g for g in gaps if g is not None), default=None),
        "ttff_s": round(first, 2) if first is not None else None,
        "packets_lost": int(sum(_total(samples, role, "packetsLost") for role in roles)),
    }
    if _link_changes(data.profile):
        result["recovery_s"] = recovery_s(data.profile, room, seconds)
    if _rises(data.profile):
        result["rise_s"] = rise_s(data.profile, series, seconds)
    if "exam" in roles:
        result.update(_exam_figures(data, samples, end_ms))
    if data.uplink_kbps:
        result["uplink_kbps"] = data.uplink_kbps
    if data.error:
        result["error"] = data.error
    return result


def _exam_figures(data: RunData, samples: list[dict[str, Any]], end_ms: float) -> dict[str, Any]:
    """The cart's exam camera: the video it sheds last, so the one its goals are about."""
    seconds = data.seconds
    exam = _frames(data, "exam", end_ms)
    exam_g2g = [d for _, d in exam if d is not None]
    exam_stalls = stalls([t for t, _ in exam], seconds) if exam else [(0.0, seconds)]
    stills = [
        (t - data.accepted_at_ms) / 1000
        for t in data.probe.get("stills", [])
        if data.accepted_at_ms <= t <= end_ms
    ]
    late = [b - max(a, SETTLE_S) for a, b in exam_stalls if b > SETTLE_S]
    heights = [
        s["tracks"]["exam"]["frameHeight"]
        for s in samples
        if exam
        and (s["t"] - data.accepted_at_ms) / 1000 >= exam[0][0]
        and "frameHeight" in s["tracks"].get("exam", {})
    ]
    figures: dict[str, Any] = {
        "exam_fps_mean": (
            round(_total(samples, "exam", "framesDecoded") / (seconds - exam[0][0]), 1)
            if exam
            else 0.0
        ),
        "exam_height_median": int(statistics.median(heights)) if heights else None,
        "exam_stall_count": len(exam_stalls),
        "exam_stall_total_s": round(sum(b - a for a, b in exam_stalls), 2),
        "exam_longest_stall_after_settle_s": round(max(late), 2) if late else 0.0,
        "stills_count": len(stills),
        "exam_longest_picture_gap_s": _longest_gap_after_settle(
            sorted([t for t, _ in exam] + stills), seconds
        ),
        "exam_g2g_p50_ms": round(statistics.median(exam_g2g)) if exam_g2g else None,
    }
    if _link_changes(data.profile):
        figures["exam_recovery_s"] = recovery_s(data.profile, exam, seconds)
    return figures


def _longest_gap_after_settle(times: list[float], end_s: float) -> float:
    """The longest time after `SETTLE_S` with no new exam picture (a frame or a still)."""
    edges = [SETTLE_S, *(t for t in times if SETTLE_S < t < end_s), end_s]
    before = [t for t in times if t <= SETTLE_S]
    if not before:  # nothing yet at the settle time: the gap runs from the start
        edges[0] = 0.0
    return round(max(b - a for a, b in itertools.pairwise(edges)), 2)


def capacity_up_kbps(data: RunData) -> float:
    series = [row for row in data.series if row["t"] <= data.seconds]
    if not series:
        return data.profile.up.rate_kbps
    return round(statistics.fmean(r["up_capacity_kbps"] for r in series), 1)


def timeline(data: RunData) -> dict[str, Any]:
    """Per-run series for the plot: link, latency, fps, stalls (seconds from Accept)."""
    end_ms = data.accepted_at_ms + data.seconds * 1000
    room = _frames(data, "room", end_ms)
    samples = [s for s in data.probe.get("samples", []) if s["t"] <= end_ms]
    fps: list[tuple[float, float]] = []
    for a, b in itertools.pairwise(samples):
        if a["pc"] != b["pc"]:
            continue
        da = a["tracks"].get("room", {}).get("framesDecoded", 0)
        db = b["tracks"].get("room", {}).get("framesDecoded", 0)
        dt = (b["t"] - a["t"]) / 1000
        if dt > 0:
            fps.append(((b["t"] - data.accepted_at_ms) / 1000, (db - da) / dt))
    return {
        "link": [(r["t"], r["up_kbps"], r["up_capacity_kbps"]) for r in data.series],
        "g2g": [(t, d) for t, d in room if d is not None],
        "fps": fps,
        "stalls": stalls([t for t, _ in room], data.seconds) if room else [(0.0, data.seconds)],
    }
