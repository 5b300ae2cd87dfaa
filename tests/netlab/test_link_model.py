"""The link model on a fake clock: no network, no sleeping."""

from __future__ import annotations

import random
import statistics

import pytest

from bench.netlab.gilbert_elliott import GilbertElliottParams
from bench.netlab.link_model import DirectionParams, LinkDirection


def make_link(**params: object) -> LinkDirection[int]:
    return LinkDirection(DirectionParams(**params), epoch=0.0, rng=random.Random(7))  # type: ignore[arg-type]


def run(
    link: LinkDirection[int], arrivals: list[tuple[float, int]], size: int = 1000
) -> list[tuple[float, int]]:
    """Offer (time, id) packets and return (delivery time, id), driven by next_wakeup."""
    delivered: list[tuple[float, int]] = []
    pending = sorted(arrivals)
    while True:
        wake = link.next_wakeup()
        if pending and (wake is None or pending[0][0] <= wake):
            t, packet = pending.pop(0)
            delivered += [(t, p) for p in link.pop_delivered(t)]
            link.enqueue(packet, size, t)
        elif wake is not None:
            delivered += [(wake, p) for p in link.pop_delivered(wake)]
        else:
            return delivered


def test_rate_serialises_packets_back_to_back() -> None:
    link = make_link(rate_kbps=800, queue_ms=10_000)
    delivered = run(link, [(0.0, i) for i in range(100)])
    # 1000 B at 800 kbit/s is 10 ms a packet.
    assert [p for _, p in delivered] == list(range(100))
    assert delivered[0][0] == pytest.approx(0.010)
    assert delivered[-1][0] == pytest.approx(1.0)


def test_overhead_counts_on_the_wire() -> None:
    link = make_link(rate_kbps=800, overhead_bytes=1000)
    assert run(link, [(0.0, 1)])[0][0] == pytest.approx(0.020)


def test_queue_limit_is_milliseconds_at_the_current_rate() -> None:
    link = make_link(rate_kbps=800, queue_ms=100)  # 10 000 bytes
    accepted = [link.enqueue(i, 1000, 0.0) for i in range(20)]
    assert accepted.count(True) == 10
    assert link.stats(0.0).queue_drops == 10
    link.set(0.0, rate_kbps=1600)  # the same 100 ms now hold twice the bytes
    assert [link.enqueue(i, 1000, 0.0) for i in range(20)].count(True) == 10


def test_a_packet_always_enters_an_empty_queue() -> None:
    link = make_link(rate_kbps=8, queue_ms=1)
    assert link.enqueue(1, 1500, 0.0)


def test_delay_and_jitter_mean_and_spread() -> None:
    link = make_link(rate_kbps=100_000, delay_ms=80, jitter_ms=15, queue_ms=1000)
    sent = {i: i * 0.1 for i in range(3000)}  # wider than the jitter's ±26 ms spread
    delivered = run(link, [(t, i) for i, t in sent.items()], size=100)
    delays_ms = [(t - sent[i]) * 1000 - 0.008 for t, i in delivered]
    assert statistics.fmean(delays_ms) == pytest.approx(80, abs=1.0)
    assert statistics.pstdev(delays_ms) == pytest.approx(15, rel=0.05)


def test_jitter_never_reorders_packets() -> None:
    link = make_link(rate_kbps=100_000, delay_ms=50, jitter_ms=20, queue_ms=1000)
    delivered = run(link, [(i * 0.001, i) for i in range(2000)], size=100)
    times = [t for t, _ in delivered]
    assert [p for _, p in delivered] == list(range(2000))
    assert times == sorted(times)


def test_bernoulli_loss_average() -> None:
    link = make_link(rate_kbps=1_000_000, loss=0.02, queue_ms=1000)
    n = 100_000
    delivered = run(link, [(i * 1e-5, i) for i in range(n)], size=100)
    assert 1 - len(delivered) / n == pytest.approx(0.02, rel=0.05)
    assert link.stats(1.0).model_losses == n - len(delivered)


def test_gilbert_elliott_loss_average_and_bursts() -> None:
    ge = GilbertElliottParams(p=0.0125, r=0.3, loss_good=0.0, loss_bad=0.75)
    link = make_link(rate_kbps=1_000_000, gilbert_elliott=ge, queue_ms=1000)
    n = 200_000
    got = {p for _, p in run(link, [(i * 1e-5, i) for i in range(n)], size=100)}
    lost = [i not in got for i in range(n)]
    assert sum(lost) / n == pytest.approx(0.03, rel=0.08)
    # A loss is followed by another far more often than the 3 % of independent loss.
    after_loss = [lost[i + 1] for i in range(n - 1) if lost[i]]
    assert sum(after_loss) / len(after_loss) > 0.3


def test_rate_trace_steps_at_its_times() -> None:
    link = make_link(rate_kbps=800, rate_trace=((1.0, 400.0), (2.0, 1600.0)), queue_ms=10_000)
    delivered = run(link, [(0.0, i) for i in range(300)])
    count = [sum(1 for t, _ in delivered if a < t - 0.005 <= a + 1) for a in (0.0, 1.0, 2.0)]
    assert count == [100, 50, 150]
    assert link.rate_now(1.5) == 400


def test_outage_drops_arrivals_and_delivers_nothing() -> None:
    link = make_link(rate_kbps=800, delay_ms=20, outages=((1.0, 2.0),), queue_ms=100)
    arrivals = [(i * 0.02, i) for i in range(150)]  # 400 kbit/s for 3 s
    delivered = run(link, arrivals)
    assert not [t for t, _ in delivered if 1.021 < t < 2.0]
    assert link.stats(3.0).down_drops == 50
    assert len(delivered) == 100


def test_manual_down_holds_the_queue_until_up() -> None:
    link = make_link(rate_kbps=800)
    link.enqueue(1, 1000, 0.0)
    link.set(0.0, down=True)
    assert link.next_wakeup() is None
    assert not link.enqueue(2, 1000, 0.5)
    link.set(1.0, down=False)
    [(t, packet)] = run(link, [])
    assert packet == 1
    assert t == pytest.approx(1.01)


def test_parameters_change_while_running() -> None:
    link = make_link(rate_kbps=8000, delay_ms=10)
    first = run(link, [(0.0, 1)])
    link.set(1.0, delay_ms=100, rate_kbps=800)
    second = run(link, [(1.0, 2)])
    assert first[0][0] == pytest.approx(0.001 + 0.010)
    assert second[0][0] == pytest.approx(1.0 + 0.010 + 0.100)


def test_setting_a_rate_ends_the_trace() -> None:
    link = make_link(rate_kbps=800, rate_trace=((1.0, 400.0),))
    link.set(0.0, rate_kbps=1000)
    assert link.rate_now(5.0) == 1000


def test_restart_clock_replays_the_trace_from_now() -> None:
    link = make_link(rate_kbps=800, rate_trace=((1.0, 400.0),))
    assert link.rate_now(10.0) == 400
    link.restart_clock(10.0)
    assert link.rate_now(10.5) == 800
    assert link.rate_now(11.5) == 400


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="loss"):
        DirectionParams(loss=2.0)
    with pytest.raises(ValueError, match="increasing"):
        DirectionParams(rate_trace=((2.0, 1.0), (1.0, 1.0)))
