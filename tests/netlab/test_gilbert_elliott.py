from __future__ import annotations

import random

import pytest

from bench.netlab.gilbert_elliott import GilbertElliott, GilbertElliottParams


def test_average_loss_formula() -> None:
    params = GilbertElliottParams(p=0.0125, r=0.3, loss_good=0.0, loss_bad=0.75)
    assert params.average_loss == pytest.approx(0.03)


def test_from_average_gives_that_average_and_burst() -> None:
    params = GilbertElliottParams.from_average(0.03, mean_burst_packets=4)
    assert params.average_loss == pytest.approx(0.03)
    assert params.r == pytest.approx(0.25)


def test_chain_loses_the_average_share() -> None:
    params = GilbertElliottParams(p=0.01, r=0.2, loss_good=0.001, loss_bad=0.5)
    chain = GilbertElliott(params, random.Random(3))
    n = 300_000
    lost = sum(chain.lost() for _ in range(n))
    assert lost / n == pytest.approx(params.average_loss, rel=0.08)


def test_invalid_probability_is_refused() -> None:
    with pytest.raises(ValueError):
        GilbertElliottParams(p=1.5, r=0.1)
