"""The published link state: a 0-5 quality score and a sentence for the nurse and specialist.

Like LiveKit's connection quality, the score is the worse of what the network does (loss,
round trip) and what the cart can send over it (the ladder's rung). The message says in
plain words what changed and why, so nobody wonders why the picture went soft.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .quality_ladder import STETHOSCOPE_LEVELS, Allocation, VideoMode

STETH_FULL_BPS = STETHOSCOPE_LEVELS[0].bitrate_bps


@dataclass(frozen=True)
class QualityState:
    """What the cart publishes on the control channel, to the server and to /metrics."""

    estimate_kbps: float
    loss: float  # 0..1
    rtt_ms: float | None
    rung: int
    rungs: int
    score: int  # 0 (no link) .. 5 (excellent)
    message: str
    exam: str  # the exam camera's level: "1280x720@25", "stills" or "off"
    room: str
    stethoscope_kbps: float
    sent_kbps: float | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def network_score(loss: float, rtt_ms: float | None) -> int:
    rtt = rtt_ms if rtt_ms is not None else 0.0
    if loss < 0.02 and rtt < 300:
        return 5
    if loss < 0.05 and rtt < 600:
        return 4
    if loss < 0.10 and rtt < 1000:
        return 3
    if loss < 0.20 and rtt < 2000:
        return 2
    return 1


def media_score(allocation: Allocation) -> int:
    levels = allocation.rung.levels
    exam = levels.get("exam")
    steth = levels.get("stethoscope")
    if steth is not None and steth.bitrate_bps < 32_000:
        return 1
    if exam is None:
        return 5
    if exam.mode is VideoMode.OFF:
        return 1
    if exam.mode is VideoMode.STILLS:
        return 2
    if exam.height >= 540:
        return 5
    if exam.height >= 360:
        return 4
    return 3


def describe(allocation: Allocation, outage: bool) -> str:
    """One plain sentence for both screens."""
    if outage:
        return (
            "Connection lost: trying to reconnect. Keep the stethoscope in place; "
            "the call resumes on its own."
        )
    levels = allocation.rung.levels
    exam = levels.get("exam")
    room = levels.get("room")
    steth = levels.get("stethoscope")
    if allocation.rung.index == 0:
        return "Good connection: full video and stethoscope."
    if steth is not None and steth.bitrate_bps < STETH_FULL_BPS:
        return (
            "Very slow connection: video is off and the stethoscope is sent at reduced "
            "quality. Listen again if a sound is unclear."
        )
    if exam is not None and exam.mode is VideoMode.OFF:
        return "Very slow connection: video paused to keep the stethoscope and voice clear."
    if exam is not None and exam.mode is VideoMode.STILLS:
        return (
            "Slow connection: video reduced to still pictures every few seconds "
            "to keep the stethoscope clear."
        )
    if room is not None and room.mode is VideoMode.OFF and exam is not None:
        return (
            f"Slow connection: room camera paused, exam camera at {exam.height}p "
            "to keep the stethoscope clear."
        )
    if exam is not None:
        return f"Reduced connection: exam camera at {exam.height}p, stethoscope at full quality."
    return "Reduced connection: stethoscope at full quality."


def quality_state(
    allocation: Allocation,
    *,
    estimate_bps: float,
    loss: float,
    rtt_s: float | None,
    outage: bool,
    rungs: int,
    sent_bps: float | None = None,
    reason: str = "",
) -> QualityState:
    rtt_ms = None if rtt_s is None else rtt_s * 1000
    score = 0 if outage else min(network_score(loss, rtt_ms), media_score(allocation))
    levels = allocation.rung.levels
    exam = levels.get("exam")
    room = levels.get("room")
    return QualityState(
        estimate_kbps=round(estimate_bps / 1000, 1),
        loss=round(loss, 4),
        rtt_ms=None if rtt_ms is None else round(rtt_ms, 1),
        rung=allocation.rung.index,
        rungs=rungs,
        score=score,
        message=describe(allocation, outage),
        exam=exam.label if exam is not None else "none",
        room=room.label if room is not None else "none",
        stethoscope_kbps=allocation.bitrates_bps.get("stethoscope", 0) / 1000,
        sent_kbps=None if sent_bps is None else round(sent_bps / 1000, 1),
        reason=reason,
    )
