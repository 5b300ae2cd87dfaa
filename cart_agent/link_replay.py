"""A link recording (`link_recording.py`) fed back through a fresh `RateController`."""

from __future__ import annotations

from dataclasses import dataclass

from .link_recording import Feedback, Recording, Tick, WatchdogVerdict
from .quality_ladder import QualityLadder
from .quality_score import QualityState
from .rate_controller import RateController


@dataclass(frozen=True)
class ReplayedStep:
    """The controller's decision at one recorded control step."""

    at: float  # seconds since the recording's first event
    state: QualityState
    delay_estimate_bps: float  # the delay-based estimate (`DelayBasedEstimator`)
    outage: bool  # the receiver-report estimator hears nothing from the link


async def _publish_nothing(state: QualityState) -> None:
    return None


def replay(recording: Recording, ladder: QualityLadder | None = None) -> list[ReplayedStep]:
    """Each control step's decision, for a cart with the default four tracks unless
    `ladder` says otherwise, starting where the recorded call started."""
    clock = [0.0]
    controller = RateController(
        {},
        _publish_nothing,
        ladder=ladder or QualityLadder.build(),
        start_bps=recording.start_bps,
        clock=lambda: clock[0],
    )
    steps: list[ReplayedStep] = []
    first: float | None = None
    for recorded in recording.events:
        at = clock[0] = recorded.at
        first = at if first is None else first
        event = recorded.event
        if isinstance(event, Tick):
            state = controller.on_tick(event, at)
            steps.append(
                ReplayedStep(
                    at - first,
                    state,
                    controller.delay_estimator.estimate_bps,
                    controller.estimator.in_outage,
                )
            )
        elif isinstance(event, Feedback):
            controller.on_feedback(event, at)
        elif isinstance(event, WatchdogVerdict):
            controller.link_changed(event.state)
        else:
            controller.on_probe_reading(event, at)
    return steps
