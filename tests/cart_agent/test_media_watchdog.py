"""The media watchdog on a real (unconnected) aiortc peer connection, its clock driven by
the test: what arrives is the agent's count of transport feedback (`extra_activity`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiortc import RTCPeerConnection

from telecart.cart_agent.media_watchdog import LinkState, MediaWatchdog, WatchdogPolicy
from tests.cart_agent.conftest import eventually

POLICY = WatchdogPolicy(poll_s=0.01)


@dataclass
class Watched:
    watchdog: MediaWatchdog
    verdicts: list[LinkState] = field(default_factory=list)
    now: float = 0.0
    arrived: int = 0

    async def at(self, now: float) -> None:
        """Move the clock to `now` and let the watchdog poll a few times."""
        self.now = now
        await asyncio.sleep(10 * POLICY.poll_s)


@pytest.fixture
async def watched() -> AsyncIterator[Watched]:
    pc = RTCPeerConnection()
    state: list[Watched] = []
    watchdog = MediaWatchdog(
        pc,
        lambda verdict: state[0].verdicts.append(verdict),
        POLICY,
        clock=lambda: state[0].now,
        extra_activity=lambda: state[0].arrived,
    )
    state.append(Watched(watchdog))
    watchdog.start()
    await asyncio.sleep(5 * POLICY.poll_s)  # its first look at the statistics
    yield state[0]
    await watchdog.close()
    await pc.close()


async def test_a_call_start_waits_longer_for_its_first_answer(watched: Watched) -> None:
    await watched.at(POLICY.silence_s + 0.5)  # edge: the first feedback after 1.2-1.6 s
    assert watched.verdicts == []
    watched.arrived += 1
    await watched.at(POLICY.silence_s + 0.6)
    assert watched.verdicts == []  # nothing was lost, so nothing comes back
    assert watched.watchdog.state == "connected"


async def test_a_call_that_never_hears_anything_is_called_lost(watched: Watched) -> None:
    await watched.at(POLICY.first_silence_s + 0.1)
    await eventually(lambda: watched.verdicts == ["disconnected"], 2.0, "the verdict")


async def test_once_heard_a_second_of_silence_is_a_loss(watched: Watched) -> None:
    watched.arrived += 1
    await watched.at(0.5)
    await watched.at(0.5 + POLICY.silence_s + 0.05)
    await eventually(lambda: watched.verdicts == ["disconnected"], 2.0, "the loss")
    watched.arrived += 1
    await watched.at(2.0)
    await eventually(lambda: watched.verdicts == ["disconnected", "connected"], 2.0, "the return")
