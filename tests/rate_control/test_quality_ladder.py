"""The ladder: monotonic, priority-ordered at every budget, stable under hysteresis."""

from __future__ import annotations

import itertools

import pytest

from telecart.cart_agent.bandwidth_estimator import BandwidthEstimator
from telecart.cart_agent.quality_ladder import (
    DEFAULT_LEVELS,
    OFF,
    PRIORITY,
    STILLS,
    THIN_STILLS,
    QualityLadder,
    RungSelector,
    VideoMode,
)
from telecart.cart_agent.quality_score import quality_state

from .link_model import LinkModel

LADDER = QualityLadder.build()


def test_rungs_cost_strictly_less_going_down() -> None:
    costs = [rung.cost_bps for rung in LADDER.rungs]
    assert all(a > b for a, b in itertools.pairwise(costs))


def test_no_track_ever_improves_going_down() -> None:
    for upper, lower in itertools.pairwise(LADDER.rungs):
        for role in PRIORITY:
            assert lower.levels[role].bitrate_bps <= upper.levels[role].bitrate_bps


def test_one_track_changes_per_rung_and_audio_yields_only_to_stills() -> None:
    for upper, lower in itertools.pairwise(LADDER.rungs):
        changed = [role for role in PRIORITY if upper.levels[role] != lower.levels[role]]
        assert len(changed) == 1
        if changed[0] in ("stethoscope", "voice"):
            assert upper.levels["room"] is OFF
            assert upper.levels["exam"] in (STILLS, THIN_STILLS, OFF)
        if changed[0] == "stethoscope":
            assert upper.levels["voice"].bitrate_bps == DEFAULT_LEVELS["voice"][-1].bitrate_bps


def test_the_room_camera_goes_off_before_the_exam_camera_drops_below_320x180_at_15() -> None:
    for rung in LADDER.rungs:
        exam = rung.levels["exam"]
        if exam.mode is not VideoMode.VIDEO or (exam.height, exam.fps) < (180, 15):
            assert rung.levels["room"] is OFF


def test_stills_hold_until_voice_and_stethoscope_are_at_their_floors() -> None:
    # 24 kbit/s "audio"-mode Opus is as flat in the heart bands as 64 (test_opus_settings),
    # and it is sent twice (RED): a still every few seconds is worth more on `edge`.
    last_stills = max(r.index for r in LADDER.rungs if r.levels["exam"] == STILLS)
    levels = LADDER.rungs[last_stills].levels
    assert levels["voice"].bitrate_bps == DEFAULT_LEVELS["voice"][-1].bitrate_bps
    assert levels["stethoscope"].bitrate_bps == 24_000
    assert LADDER.rungs[last_stills].cost_bps < 110_000  # the edge profile's 128 kbit/s uplink


@pytest.mark.parametrize("budget", [20_000, 90_000, 150_000, 400_000, 1_000_000, 3_000_000])
def test_stethoscope_is_never_below_voice_or_video_in_priority(budget: int) -> None:
    rung = LADDER.best_fit(budget)
    levels = rung.levels
    if levels["stethoscope"] != DEFAULT_LEVELS["stethoscope"][0]:
        assert levels["exam"].mode in (VideoMode.STILLS, VideoMode.OFF)  # DEGRADE_PLAN
        assert levels["room"].mode is VideoMode.OFF
        assert levels["voice"].bitrate_bps == DEFAULT_LEVELS["voice"][-1].bitrate_bps


def test_the_voices_repeat_goes_only_to_keep_the_last_picture() -> None:
    dropped = next(
        lower
        for upper, lower in itertools.pairwise(LADDER.rungs)
        if upper.levels["voice"].copies > lower.levels["voice"].copies
    )
    assert dropped.levels["exam"] == THIN_STILLS
    assert LADDER.rungs[dropped.index + 1].levels["exam"] is OFF
    repeated = LADDER.rungs[dropped.index - 1]
    assert repeated.cost_bps - dropped.cost_bps == 8_000  # the 8 kbit/s voice's repeat
    assert all(r.levels["voice"].copies == 2 for r in LADDER.rungs[: dropped.index])


def test_stills_come_before_audio_only_and_fit_a_100k_link() -> None:
    modes = [rung.levels["exam"].mode for rung in LADDER.rungs]
    assert modes.index(VideoMode.STILLS) < modes.index(VideoMode.OFF)
    assert LADDER.floor.cost_bps < 100_000
    stills = next(r for r in LADDER.rungs if r.levels["exam"].mode is VideoMode.STILLS)
    assert stills.levels["stethoscope"] == DEFAULT_LEVELS["stethoscope"][0]


def test_best_fit_fits_the_budget() -> None:
    for budget in range(50_000, 3_000_000, 25_000):
        rung = LADDER.best_fit(budget)
        assert rung is LADDER.floor or rung.cost_bps <= budget


def test_spare_budget_goes_to_the_exam_camera_first() -> None:
    rung = LADDER.rungs[1]
    allocation = LADDER.allocate(rung, rung.cost_bps + 200_000)
    exam_extra = allocation.bitrates_bps["exam"] - rung.levels["exam"].bitrate_bps
    room_extra = allocation.bitrates_bps["room"] - rung.levels["room"].bitrate_bps
    assert exam_extra > 0
    assert exam_extra >= room_extra


def test_ladder_for_a_cart_without_a_room_camera() -> None:
    ladder = QualityLadder.build(("stethoscope", "voice", "exam"))
    assert all("room" not in rung.levels for rung in ladder.rungs)


def _until_change(selector: RungSelector, budget: float, start: float) -> tuple[float, int]:
    """Feed `budget` every 0.25 s from `start` until the rung changes: (when, new index)."""
    assert selector.current is not None
    before, t = selector.current.index, start
    while selector.select(budget, t).index == before:
        t += 0.25
        assert t < start + 60, "the rung never changed"
    return t, selector.current.index


def test_selector_steps_down_at_once_and_up_after_a_hold_to_what_fitted() -> None:
    selector = RungSelector(LADDER, up_hold_s=4.0)
    last_video = LADDER.last_video
    assert last_video is not None
    assert selector.select(5_000_000, 0.0).index == 0
    # Down at once, but to the last video rung: stills only after it did not fit for 2 s.
    short = 0.9 * last_video.squeezed_cost_bps(LADDER.squeeze_of(last_video))
    assert selector.select(short, 1.0).index == last_video.index
    t, low = _until_change(selector, short, 1.25)
    assert low > last_video.index and 3.0 <= t <= 3.5
    # Up only after a hold, and from stills to the last video rung before any better one.
    path: list[tuple[float, int]] = []
    while not path or path[-1][1] > 0:
        path.append(_until_change(selector, 5_000_000, (path[-1][0] if path else t) + 0.25))
    assert path[0][0] - t >= 4.0
    first_video = next(index for _, index in path if LADDER.rungs[index].has_video)
    assert first_video == last_video.index
    # Every rung on the way up waited its plain hold: those on the way down (the start
    # rung, the last video rung) did not fail a step up.
    assert all(b - a >= 4.0 for (a, _), (b, _) in itertools.pairwise(path))
    assert all(selector.hold_s(rung) == 4.0 for rung in LADDER.rungs)
    middle = LADDER.rungs[8].cost_bps * 1.2  # down at once to what fits, squeezed
    assert selector.select(middle, path[-1][0] + 0.5) == LADDER.best_squeezed_fit(middle)


def test_selector_ignores_a_budget_hovering_at_a_rung_boundary() -> None:
    selector = RungSelector(LADDER)
    boundary = LADDER.rungs[5].cost_bps
    for step in range(200):
        budget = boundary * (1.08 if step % 2 else 0.99)
        selector.select(budget, step * 0.5)
    assert selector.changes <= 1


def test_closed_loop_on_a_stable_rural_link_settles_on_one_rung() -> None:
    estimator = BandwidthEstimator(estimate_bps=300_000)
    selector = RungSelector(LADDER)
    link = LinkModel(capacity_bps=700_000, base_rtt_s=0.6, random_loss=0.03)
    rungs = []
    for t in range(1, 301):
        rung = selector.select(estimator.estimate_bps, float(t))
        sent = LADDER.allocate(rung, estimator.estimate_bps).rung.cost_bps
        estimator.update(link.step(float(t), max(sent, estimator.estimate_bps), 1.0))
        rungs.append(rung.index)
    late = rungs[120:]
    changes = sum(1 for a, b in itertools.pairwise(late) if a != b)
    assert changes <= 6  # at most a few keyframes in three minutes
    assert LADDER.rungs[max(late)].cost_bps < 700_000


def test_quality_state_says_why_video_went_to_stills() -> None:
    stills = next(r for r in LADDER.rungs if r.levels["exam"].mode is VideoMode.STILLS)
    state = quality_state(
        LADDER.allocate(stills, stills.cost_bps),
        estimate_bps=stills.cost_bps,
        loss=0.04,
        rtt_s=0.7,
        outage=False,
        rungs=len(LADDER.rungs),
    )
    assert state.score == 2
    assert "still pictures" in state.message and "stethoscope" in state.message
    assert state.exam == "stills"


def test_quality_score_is_zero_in_an_outage_and_five_when_all_is_well() -> None:
    top = LADDER.allocate(LADDER.rungs[0], 5_000_000)
    good = quality_state(
        top, estimate_bps=5e6, loss=0.0, rtt_s=0.05, outage=False, rungs=len(LADDER.rungs)
    )
    lost = quality_state(
        top, estimate_bps=5e6, loss=0.0, rtt_s=0.05, outage=True, rungs=len(LADDER.rungs)
    )
    assert (good.score, lost.score) == (5, 0)
    assert "Connection lost" in lost.message


def test_a_step_up_that_does_not_hold_is_tried_again_only_after_a_longer_hold() -> None:
    selector = RungSelector(LADDER, up_hold_s=2.0)
    low, high = LADDER.rungs[8], LADDER.rungs[7]
    between = high.cost_bps * 1.2
    assert selector.select(low.cost_bps, 0.0) == low
    selector.select(between, 1.0)
    assert selector.select(between, 3.0) == high
    assert selector.select(low.cost_bps, 4.0) == low  # it did not hold: loss at once
    assert selector.hold_s(high) == 4.0
    selector.select(between, 5.0)
    assert selector.select(between, 8.0) == low
    assert selector.select(between, 9.0) == high


def test_rungs_passed_going_down_keep_their_hold_and_a_step_up_that_held_is_forgiven() -> None:
    selector = RungSelector(LADDER, up_hold_s=2.0)
    top, middle, low = LADDER.rungs[0], LADDER.rungs[5], LADDER.rungs[8]
    selector.select(top.cost_bps, 0.0)
    selector.select(middle.cost_bps, 20.0)  # `step`'s drop: 0 → 5 → 8 in half a second
    assert selector.select(low.cost_bps, 20.5) == low
    assert selector.hold_s(middle) == selector.hold_s(low) == 2.0
    # A failed step up doubles the hold; once a step up holds for 10 s it is plain again.
    between = LADDER.rungs[7].cost_bps * 1.05
    selector.select(between, 21.0)
    assert selector.select(between, 23.0) == LADDER.rungs[7]
    selector.select(low.cost_bps, 24.0)
    assert selector.hold_s(LADDER.rungs[7]) == 4.0
    selector.select(between, 25.0)
    assert selector.select(between, 29.0) == LADDER.rungs[7]
    assert selector.select(between, 38.0) == LADDER.rungs[7]
    assert selector.hold_s(LADDER.rungs[7]) == 4.0
    assert selector.select(between, 39.5) == LADDER.rungs[7]
    assert selector.hold_s(LADDER.rungs[7]) == 2.0


def test_a_rung_in_stills_mode_says_what_its_stills_may_send() -> None:
    stills = next(r for r in LADDER.rungs if r.levels["exam"] is STILLS)
    assert LADDER.allocate(stills, stills.cost_bps).stills_bps == STILLS.bitrate_bps
    assert LADDER.allocate(LADDER.rungs[0], 3_000_000).stills_bps == 0


def test_a_budget_a_little_under_a_rung_squeezes_video_instead_of_stepping_down() -> None:
    rung = LADDER.rungs[8]  # exam 320x180@15
    budget = (rung.cost_bps + rung.squeezed_cost_bps(LADDER.squeeze)) / 2
    assert LADDER.best_squeezed_fit(budget) is rung
    allocation = LADDER.allocate(rung, budget)
    assert allocation.bitrates_bps["exam"] < rung.levels["exam"].bitrate_bps
    assert allocation.bitrates_bps["stethoscope"] == rung.levels["stethoscope"].bitrate_bps


def test_the_last_video_rung_squeezes_deeper_before_stills() -> None:
    last_video = LADDER.last_video
    assert last_video is not None
    at_squeeze = last_video.squeezed_cost_bps(LADDER.squeeze)
    deeper = last_video.squeezed_cost_bps(LADDER.last_video_squeeze)
    assert deeper < at_squeeze < last_video.cost_bps
    budget = (deeper + at_squeeze) / 2  # would have meant stills at the usual squeeze
    assert LADDER.best_squeezed_fit(budget).index == last_video.index
    video = LADDER.allocate(last_video, budget).bitrates_bps["exam"]
    assert video >= LADDER.last_video_squeeze * last_video.levels["exam"].bitrate_bps


def test_a_budget_far_below_any_video_goes_to_stills_at_once() -> None:
    selector = RungSelector(LADDER)
    assert selector.select(5_000_000, 0.0).index == 0
    assert not selector.select(100_000, 1.0).has_video  # edge: no 2 s of video into 128k


def test_without_video_the_ladder_climbs_in_small_steps() -> None:
    selector = RungSelector(LADDER, up_hold_s=1.0)
    floor = selector.select(60_000, 0.0)
    assert floor == LADDER.floor
    climbed = [floor]
    t = 0.0
    while climbed[-1].has_video is False and t < 60:
        t += 0.5
        rung = selector.select(5_000_000, t)  # an untried budget far above the link
        if rung != climbed[-1]:
            climbed.append(rung)
    for lower, higher in itertools.pairwise(climbed):
        assert higher.cost_bps <= max(1.3 * lower.cost_bps, LADDER.rungs[lower.index - 1].cost_bps)
    assert climbed[-1] == LADDER.last_video


def test_stills_hold_through_a_dip_and_give_way_to_audio_only_after_5_s() -> None:
    thinnest = LADDER.last_stills
    assert thinnest is not None and thinnest.index == LADDER.floor.index - 1
    selector = RungSelector(LADDER)
    selector.select(thinnest.cost_bps / 0.95, 0.0)  # down from the top, at once
    assert selector.current == thinnest
    dip = 0.8 * thinnest.cost_bps  # a 15 % cut on `edge`, data channels taken off
    assert selector.select(dip, 1.0) == thinnest
    assert selector.select(dip, 5.5) == thinnest
    assert selector.select(thinnest.cost_bps, 5.8) == thinnest  # back: the clock restarts
    assert selector.select(dip, 6.0) == thinnest
    assert selector.select(dip, 10.9) == thinnest
    assert selector.select(dip, 11.1) == LADDER.floor


def test_stills_hold_5_s_however_low_the_budget() -> None:
    # A 15 % cut from a full `edge` link, data channels taken off, reads the floor budget.
    thinnest = LADDER.last_stills
    assert thinnest is not None
    selector = RungSelector(LADDER)
    selector.select(thinnest.cost_bps, 0.0)
    floor_budget = 60_000
    assert floor_budget < 0.75 * thinnest.cost_bps
    assert selector.select(floor_budget, 0.5) == thinnest
    assert selector.select(floor_budget, 5.4) == thinnest
    assert selector.select(floor_budget, 5.6) == LADDER.floor


def test_a_richer_rung_beside_stills_that_did_not_hold_is_tried_less_often() -> None:
    thinnest = LADDER.last_stills
    assert thinnest is not None
    richer = LADDER.rungs[thinnest.index - 1]  # sharper stills
    assert richer.has_stills and not richer.has_video
    selector = RungSelector(LADDER, up_hold_s=2.0)
    selector.select(thinnest.cost_bps, 0.0)
    selector.select(richer.cost_bps, 1.0)
    assert selector.select(richer.cost_bps, 3.0) == richer
    assert selector.select(thinnest.cost_bps, 4.0) == thinnest  # it did not hold
    assert selector.hold_s(richer) == 4.0
    # The thinnest stills are never backed off: audio only for long is what they avoid.
    selector.select(0.5 * thinnest.cost_bps, 5.0)
    selector.select(0.5 * thinnest.cost_bps, 10.1)
    assert selector.current == LADDER.floor
    assert selector.hold_s(thinnest) == 2.0


def test_richer_stills_step_down_to_the_thinnest_before_audio_only() -> None:
    thinnest = LADDER.last_stills
    assert thinnest is not None
    richer = LADDER.rungs[thinnest.index - 1]
    assert richer.has_stills
    selector = RungSelector(LADDER)
    selector.select(richer.cost_bps, 0.0)
    assert selector.current == richer
    assert selector.select(0.9 * thinnest.cost_bps, 0.5) == thinnest


def test_a_budget_a_probe_proved_is_climbed_to_at_once_and_only_that_far() -> None:
    selector = RungSelector(LADDER)
    start = LADDER.rungs[8]
    selector.select(start.cost_bps, 0.0)
    assert selector.current == start
    proved = LADDER.rungs[4].cost_bps * 1.02
    assert selector.select(proved, 1.0) == start  # an estimate alone waits its hold
    selector.proven(LADDER.rungs[5].cost_bps * 1.02, 1.5)  # the probe carried less than that
    assert selector.select(proved, 1.5) == LADDER.rungs[5]
    selector.proven(proved, 2.0)
    assert selector.select(proved, 2.0) == LADDER.rungs[4]
    selector.proven(LADDER.rungs[2].cost_bps, 3.0)
    assert selector.select(LADDER.rungs[2].cost_bps, 4.5) == LADDER.rungs[4]  # 1.5 s later
