"""Consent freshness on a 1.2 s round trip: aioice's own check dies, ours holds the call.

Two aioice connections talk over real UDP sockets in-process; the answering side delays
(or drops) its STUN responses once connected. Intervals are shortened to keep the test
quick; the ratio of round trip to timeout is what matters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import aioice
import aioice.ice
import aioice.stun
import pytest

from telecart.cart_agent import ice_consent
from telecart.cart_agent.ice_consent import (
    ConsentPolicy,
    install_consent_fix,
    uninstall_consent_fix,
)

FAST = ConsentPolicy(interval_s=0.5, expiry_s=4.0, rto_s=0.5, transaction_s=4.0)


async def connected_pair() -> tuple[aioice.Connection, aioice.Connection]:
    a = aioice.Connection(ice_controlling=True, components=1)
    b = aioice.Connection(ice_controlling=False, components=1)
    await asyncio.gather(a.gather_candidates(), b.gather_candidates())
    for one, other in ((a, b), (b, a)):
        for candidate in other.local_candidates:
            await one.add_remote_candidate(candidate)
        await one.add_remote_candidate(None)
        one.remote_username, one.remote_password = other.local_username, other.local_password
    await asyncio.gather(a.connect(), b.connect())
    return a, b


def slow_responses(conn: aioice.Connection, delay: float | None) -> None:
    """From now on, `conn` answers STUN requests `delay` s late (None: never)."""
    loop = asyncio.get_running_loop()
    for protocol in conn._protocols:
        send: Callable[..., None] = protocol.send_stun

        def delayed(message: aioice.stun.Message, addr: Any, send: Any = send) -> None:
            if message.message_class != aioice.stun.Class.RESPONSE:
                send(message, addr)
            elif delay is not None:
                loop.call_later(delay, send, message, addr)

        protocol.send_stun = delayed  # type: ignore[method-assign]


def is_closed(conn: aioice.Connection) -> bool:
    return bool(conn._closing)  # aioice sets this first thing in close()


def test_aioice_still_has_the_consent_seam() -> None:
    assert aioice.__version__.startswith(ice_consent.TESTED_AIOICE)
    assert ice_consent.consent_seam_present()
    assert aioice.ice.CONSENT_FAILURES == 6  # the stock behaviour this module replaces


def test_default_policy_tolerates_a_15_s_round_trip() -> None:
    policy = ConsentPolicy()
    retransmissions = ice_consent._retransmissions(policy)
    lasts = policy.rto_s * (2 ** (retransmissions + 1) - 1)
    assert 1.5 * 3 < lasts <= policy.transaction_s
    assert policy.expiry_s == 30.0


@pytest.fixture
def fixed() -> Iterator[None]:
    assert install_consent_fix(FAST)
    yield
    uninstall_consent_fix()


async def test_fixed_consent_survives_12_s_responses(fixed: None) -> None:
    a, b = await connected_pair()
    try:
        slow_responses(b, 1.2)
        await asyncio.sleep(7.0)
        assert not is_closed(a)
        await a.send(b"still here")
        assert await asyncio.wait_for(b.recv(), 2.0) == b"still here"
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_fixed_consent_expires_when_nothing_answers(fixed: None) -> None:
    a, b = await connected_pair()
    try:
        slow_responses(b, None)
        for _ in range(40):
            if is_closed(a):
                break
            await asyncio.sleep(0.25)
        assert is_closed(a)
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_stock_consent_closes_on_12_s_responses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.3)
    a, b = await connected_pair()
    try:
        slow_responses(b, 1.2)
        for _ in range(48):
            if is_closed(a):
                break
            await asyncio.sleep(0.25)
        assert is_closed(a)
    finally:
        await asyncio.gather(a.close(), b.close())
