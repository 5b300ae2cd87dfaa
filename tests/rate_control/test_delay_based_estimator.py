"""The delay-based estimator on a packet-level link model (no network)."""

from __future__ import annotations

import random

import pytest

from telecart.cart_agent.delay_based_estimator import DelayBasedEstimator, Usage
from telecart.cart_agent.transport_cc import PacketResult

from .packet_link import PacketLink, simulate


def constant(bps: float):  # type: ignore[no-untyped-def]
    return lambda t: bps


def steps(*changes: tuple[float, float]):  # type: ignore[no-untyped-def]
    def capacity(t: float) -> float:
        rate = changes[0][1]
        for start, bps in changes:
            if t >= start:
                rate = bps
        return rate

    return capacity


def test_uses_most_of_a_rural_3g_uplink_despite_jitter_and_random_loss() -> None:
    link = PacketLink(constant(384_000), delay_s=0.075, jitter_s=0.015, loss=0.02, queue_s=0.3)
    run = simulate(link, 60)
    mean = run.mean_target(15, 60)
    assert 0.7 * 384_000 <= mean <= 1.05 * 384_000, mean


def test_a_queue_building_is_seen_before_the_queue_overflows() -> None:
    estimator = DelayBasedEstimator()
    link = PacketLink(constant(500_000), delay_s=0.05, queue_s=10.0)  # a queue that never drops
    simulate(link, 20, estimator)
    assert estimator.detector.usage in (Usage.NORMAL, Usage.UNDERUSING, Usage.OVERUSING)
    # With no loss at all, only the delay trend can have held the target near capacity.
    assert estimator.estimate_bps < 1.3 * 500_000
    assert estimator.loss == 0.0


def test_steps_down_within_a_second_of_a_capacity_drop_and_back_up_within_ten() -> None:
    link = PacketLink(steps((0, 2_000_000), (20, 300_000), (40, 1_000_000)), delay_s=0.05)
    run = simulate(link, 60)
    assert run.target_at(21.0) < 450_000
    assert run.mean_target(25, 40) <= 330_000
    assert run.target_at(50.0) >= 0.8 * 1_000_000


def test_a_steady_satellite_round_trip_is_not_congestion() -> None:
    link = PacketLink(constant(1_000_000), delay_s=0.3, jitter_s=0.01, loss=0.01, queue_s=0.5)
    run = simulate(link, 60)
    assert run.mean_target(20, 60) >= 0.7 * 1_000_000


def test_random_edge_loss_alone_does_not_collapse_the_estimate() -> None:
    link = PacketLink(constant(128_000), delay_s=0.1, jitter_s=0.02, loss=0.05, queue_s=0.5)
    run = simulate(link, 60)
    assert run.mean_target(20, 60) >= 0.6 * 128_000


def test_heavy_loss_steps_down_by_half_the_loss() -> None:
    estimator = DelayBasedEstimator(estimate_bps=400_000)
    packets = [
        PacketResult(i, i * 0.02, 1200, None if i % 4 == 0 else 0.05 + i * 0.02) for i in range(100)
    ]
    estimator.on_feedback(packets, 1.0)
    assert estimator.loss == 0.25
    assert estimator.estimate_bps == 400_000 * (1 - 0.125)
    assert estimator.reason == "loss 25%"


def test_a_quarter_lost_cuts_to_what_got_through() -> None:
    """`edge`'s start: 300 kbit/s into 128 k read 25 % lost, with a full queue and so no
    delay trend. Cut to 7/8 of the estimate, the link stayed overrun 2.4 s more."""
    estimator = DelayBasedEstimator(estimate_bps=600_000)
    packets = [  # 480 kbit/s sent, a quarter lost, a steady delay
        PacketResult(i, i * 0.02, 1200, None if i % 4 == 0 else 0.05 + i * 0.02) for i in range(100)
    ]
    estimator.on_feedback(packets, 2.1)
    assert estimator.loss == 0.25
    assert estimator.reason == "loss 25%"
    # What got through (360-384 kbit/s as the 0.5 s window reads it), not 7/8 of 600 k.
    assert estimator.estimate_bps <= 0.8 * 480_000 + 1


def test_feedback_after_a_long_gap_restarts_the_trend_and_is_not_overuse() -> None:
    estimator = DelayBasedEstimator()
    first = [PacketResult(i, i * 0.02, 1200, 0.05 + i * 0.02) for i in range(50)]
    estimator.on_feedback(first, 1.0)
    # The link was down for 5 s: the next packets arrive with a very different offset.
    later = [PacketResult(50 + i, 6.0 + i * 0.02, 1200, 9.0 + i * 0.02) for i in range(50)]
    estimator.on_feedback(later, 7.0)
    assert estimator.detector.usage is not Usage.OVERUSING
    assert estimator.fresh(7.5) and not estimator.fresh(9.0)


def test_old_or_repeated_packets_are_ignored() -> None:
    estimator = DelayBasedEstimator()
    packets = [PacketResult(i, i * 0.02, 1200, 0.05 + i * 0.02) for i in range(40)]
    estimator.on_feedback(packets, 1.0)
    before = (estimator.estimate_bps, estimator.acked_bps)
    estimator.on_feedback(packets[:20], 1.05)
    assert (estimator.estimate_bps, estimator.acked_bps) == before


def _rising_delay(rate_bps: float, seconds: float) -> list[PacketResult]:
    """Packets at `rate_bps` whose one-way delay grows 100 ms every second."""
    gap = 1200 * 8 / rate_bps
    count = int(seconds / gap)
    return [PacketResult(i, i * gap, 1200, 0.05 + i * gap * 1.1) for i in range(count)]


def _feed(estimator: DelayBasedEstimator, rate_bps: float) -> tuple[float, bool]:
    """Lowest target and whether overuse was seen, over 3 s of feedback every 100 ms."""
    packets = _rising_delay(rate_bps, 3)
    lowest, overused = estimator.estimate_bps, False
    for step in range(30):
        batch = [r for r in packets if step * 0.1 <= r.send_s < (step + 1) * 0.1]
        estimator.on_feedback(batch, (step + 1) * 0.1 + 0.05)
        lowest = min(lowest, estimator.estimate_bps)
        overused |= estimator.reason == "delay rising"
    return lowest, overused


def test_a_rising_delay_while_sending_far_below_the_target_costs_a_step_not_the_video() -> None:
    trickle = DelayBasedEstimator(estimate_bps=300_000)
    lowest, overused = _feed(trickle, 100_000)
    assert overused
    assert lowest >= 0.85**3 * 300_000  # 15 % steps, not straight to 85 % of 100 kbit/s
    full = DelayBasedEstimator(estimate_bps=300_000)
    lowest, overused = _feed(full, 300_000)
    assert overused
    assert lowest <= 0.85 * 300_000


def test_an_overuse_cut_keeps_the_data_channels_share_of_the_link() -> None:
    bare = DelayBasedEstimator(estimate_bps=300_000)
    lowest_bare, _ = _feed(bare, 300_000)
    with_data = DelayBasedEstimator(estimate_bps=300_000, untracked_bps=60_000)
    lowest, overused = _feed(with_data, 300_000)
    assert overused
    # 85 % of what the link carried: the RTP acknowledged plus the data channels.
    assert lowest == pytest.approx(lowest_bare + 0.85 * 60_000, rel=0.05)


def _with_a_data_channel_burst(burst_packets: int) -> tuple[float, bool]:
    """RTP at 80 kbit/s and data channels at 20 kbit/s (unnumbered, known to the
    estimator only as rates, as the rate controller gives them) on a 128 kbit/s link; at
    3 s a still's packets go out on the data channel at once. Lowest target, and whether
    overuse was seen."""
    link = PacketLink(constant(128_000), delay_s=0.1, queue_s=1.0)
    estimator = DelayBasedEstimator(estimate_bps=110_000, untracked_bps=20_000)
    sends = [(i * 0.04, True, 400) for i in range(150)]
    sends += [(0.013 + i * 0.1, False, 250) for i in range(60)]
    sends += [(3.0 + i * 1e-4, False, 1100) for i in range(burst_packets)]
    pending: list[PacketResult] = []
    lowest, overused, sequence, feedback_at = estimator.estimate_bps, False, 0, 0.05
    for at, numbered, size in sorted(sends):
        while feedback_at <= at:
            # The controller's raw rate of the last second has the burst in it.
            burst_bps = burst_packets * 1100 * 8 if 3.0 <= feedback_at < 4.0 else 0
            estimator.untracked_recent_bps = 20_000 + burst_bps
            arrived = [p.sequence for p in pending if p.arrival_s and p.arrival_s <= feedback_at]
            if arrived:
                report = [p for p in pending if p.sequence <= max(arrived)]
                pending = pending[len(report) :]
                estimator.on_feedback(report, feedback_at + 0.1)
                lowest = min(lowest, estimator.estimate_bps)
                overused |= estimator.reason == "delay rising"
            feedback_at += 0.05
        arrival = link.send(at, size)
        if numbered:
            pending.append(PacketResult(sequence, at, size, arrival))
            sequence += 1
    return lowest, overused


def test_a_data_channel_burst_costs_a_step_from_what_the_link_carried_not_from_the_dip() -> None:
    # The still holds the RTP back for a moment: 47 kbit/s acknowledged over 0.5 s of a
    # steady 80. A cut from that plus the smoothed data channels took `edge` to the
    # floor and the stills off for 6 s; the link carried the burst too.
    lowest, overused = _with_a_data_channel_burst(4)
    assert overused
    assert lowest >= 0.7 * (80_000 + 20_000)


def test_a_link_overrun_for_seconds_is_not_its_usual_loss() -> None:
    """`bursty` overrun by a rung past its 512 kbit/s: 20 % of each report lost for 20 s.
    Learned as the link's usual loss, such readings held off every loss cut."""
    estimator = DelayBasedEstimator(estimate_bps=600_000)
    for step in range(40):  # a reading every 0.5 s
        estimator._outcomes.extend((step / 2 + i / 60, i % 5 == 0) for i in range(30))
        estimator._update_loss(step / 2 + 0.5)
    assert estimator.loss == pytest.approx(0.2, abs=0.01)
    assert estimator.usual_loss == pytest.approx(0.1)  # no more than `decrease_loss`
    assert estimator.loss > estimator.usual_loss + estimator._loss_noise  # it counts


def test_a_thin_links_usual_random_loss_does_not_hold_the_estimate() -> None:
    # Stills mode on `edge`: ~30 packets a second, 5 % of them lost at random, no queue.
    rng = random.Random(3)
    estimator = DelayBasedEstimator(estimate_bps=100_000)
    estimator.rtt_s = 0.25
    packets = [
        PacketResult(i, i / 30, 300, None if rng.random() < 0.05 else 0.1 + i / 30)
        for i in range(30 * 60)
    ]
    reasons = []
    for start in range(0, len(packets), 5):  # feedback every 5 packets (~170 ms)
        batch = packets[start : start + 5]
        estimator.on_feedback(batch, batch[-1].send_s + 0.1)
        reasons.append(estimator.reason)
    later = reasons[len(reasons) // 3 :]  # once the usual loss is known (20 s)
    holds = sum(reason.startswith("holding") for reason in later)
    # A 2 s reading of 60 packets wanders 2-10 % around 5 %: only its excess over that
    # noise holds (2 points over the median held 20 % of this feedback, 11-24 % over 15
    # seeds; now 0-11 %).
    assert holds < 0.1 * len(later), holds
    assert estimator.usual_loss == pytest.approx(0.05, abs=0.02)
    assert estimator.reason != "loss"  # never cut either
