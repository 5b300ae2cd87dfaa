"""The data channels' SCTP timer: RFC 9260's 1 s start and a doubling back-off capped as
WebRTC caps it, on aiortc's own association (no network: the timers are driven by hand)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection, RTCSctpTransport

from telecart.cart_agent.sctp_timers import sctp_timer_seam_present, tune_sctp_timers


@pytest.fixture
async def association() -> AsyncIterator[RTCSctpTransport]:
    pc = RTCPeerConnection()
    pc.createDataChannel("stills")
    assert pc.sctp is not None
    yield pc.sctp
    await pc.close()


async def test_aiortc_still_has_the_timer_seam(association: RTCSctpTransport) -> None:
    assert sctp_timer_seam_present(association)
    assert association._rto == 3.0  # RFC 4960's start: why this module exists


async def test_a_new_association_starts_at_one_second(association: RTCSctpTransport) -> None:
    assert tune_sctp_timers(association)
    assert association._rto == 1.0


async def test_each_expiry_doubles_the_timer_up_to_webrtcs_3_s(
    association: RTCSctpTransport,
) -> None:
    tune_sctp_timers(association)
    seen = []
    for _ in range(4):
        association._t3_expired()  # nothing outstanding: aiortc only restarts sending
        seen.append(association._rto)
    assert seen == [2.0, 3.0, 3.0, 3.0]
    await asyncio.sleep(0)  # let aiortc's transmit task run
    association._update_rto(0.3)  # a round-trip sample ends the back-off
    assert association._rto == 1.0  # aiortc's RTO.Min


async def test_a_measured_timer_over_3_s_is_kept_on_expiry(
    association: RTCSctpTransport,
) -> None:
    tune_sctp_timers(association)
    association._update_rto(1.5)  # a satellite round trip behind a full queue
    measured = association._rto
    assert measured > 3.0
    association._t3_expired()
    await asyncio.sleep(0)
    assert association._rto == measured


async def test_an_expired_init_timer_resends_with_the_doubled_timer(
    association: RTCSctpTransport,
) -> None:
    tune_sctp_timers(association)
    sent: list[object] = []

    async def keep(chunk: object) -> None:
        sent.append(chunk)

    association._send_chunk = keep  # type: ignore[method-assign]
    association._t1_chunk = object()
    association._t1_expired()
    await asyncio.sleep(0)
    assert association._rto == 2.0 and len(sent) == 1
    handle = association._t1_handle
    assert handle is not None
    loop = asyncio.get_running_loop()
    assert handle.when() - loop.time() == pytest.approx(2.0, abs=0.05)
    handle.cancel()


def test_a_changed_aiortc_is_left_alone() -> None:
    class Changed:
        _rto = 3.0  # no `_srtt`, no timers

    changed = Changed()
    assert not tune_sctp_timers(changed)  # type: ignore[arg-type]
    assert changed._rto == 3.0
