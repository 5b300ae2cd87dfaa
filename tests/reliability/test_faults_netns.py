"""A 5 s link outage and a 1.5 s round trip mid-consultation, over the link lab: agent in
the cart namespace, server and specialist in the clinic namespace, each its own process
(bench/faults.py; the 60 s outage, restarts and flapping run there)."""

from __future__ import annotations

import pytest

from bench.faults import run_fault
from bench.netlab.namespaces import netns_supported

_reason = netns_supported()
pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
]


async def test_five_second_outage_is_detected_and_nothing_is_lost() -> None:
    result = await run_fault("outage-5")
    assert result.detect_s is not None and result.detect_s < 5
    assert result.media_back_s is not None and result.media_back_s < 3
    assert result.vitals_sent == result.vitals_received > 0
    assert result.stills_taken == 1 and result.stills_intact


async def test_a_one_and_a_half_second_round_trip_is_not_an_outage() -> None:
    result = await run_fault("long-rtt")
    assert result.note.startswith("call held: yes"), result.note
    assert result.vitals_sent == result.vitals_received > 0
    assert result.stills_taken == 1 and result.stills_intact
