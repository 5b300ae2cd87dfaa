"""The link's loss over a window of transport-wide feedback (`loss_window.py`)."""

from __future__ import annotations

import pytest

from telecart.cart_agent.loss_window import LossWindow
from telecart.cart_agent.transport_cc import PacketResult


def batch(first: int, count: int, lost_every: int, at: float) -> list[PacketResult]:
    """`count` packets from `first`, every `lost_every`-th one lost."""
    return [
        PacketResult(n, at, 1000, None if (n - first) % lost_every == 0 else at + 0.3)
        for n in range(first, first + count)
    ]


def test_the_loss_is_lost_over_reported_once_enough_packets_are_in_the_window() -> None:
    window = LossWindow(window_s=20.0, min_packets=200)
    window.add(0.0, batch(0, 100, 50, 0.0))
    assert window.loss(0.1) is None  # 100 packets: too few to tell 1 % from 0
    window.add(1.0, batch(100, 900, 100, 1.0))
    assert window.loss(1.0) == pytest.approx((2 + 9) / 1000)


def test_a_packet_reported_again_counts_once() -> None:
    window = LossWindow(min_packets=10)
    window.add(0.0, batch(0, 100, 10, 0.0))
    window.add(0.1, batch(50, 100, 10, 0.1))  # 50-99 again, then 50 new
    assert window.loss(0.2) == pytest.approx((10 + 5) / 150)


def test_reports_older_than_the_window_leave_it() -> None:
    window = LossWindow(window_s=20.0, min_packets=100)
    window.add(0.0, batch(0, 500, 5, 0.0))  # 20 % lost at the start
    window.add(15.0, batch(500, 500, 1000, 15.0))  # 1 lost of 500 later
    assert window.loss(15.0) == pytest.approx(101 / 1000)
    assert window.loss(20.5) == pytest.approx(1 / 500)
    assert window.loss(40.0) is None
