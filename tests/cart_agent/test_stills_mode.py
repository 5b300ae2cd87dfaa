"""Periodic stills fit their byte budget in one picture, not one quality step a picture,
and the first goes as soon as it can."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable

from telecart.cart_agent.stills_mode import StillsMode, StillStep, encode_fitting, encode_within
from telecart.devices.camera_sim import render_test_scene

SCENE = render_test_scene(1280, 720, "exam", 3.0)


def test_a_picture_over_its_budget_is_re_encoded_smaller_until_it_fits() -> None:
    start = StillStep(1, 1)  # 640x360 at quality 75
    first = encode_within(SCENE, start, "exam")
    target = len(first.data) / 3  # the budget fell from 24 to 8 kbit/s
    still, step = encode_fitting(SCENE, start, "exam", target)
    assert len(still.data) <= target < len(first.data)
    # The first step down that fits: the one before it does not.
    previous = start
    while previous.smaller() != step:
        previous = previous.smaller()
    assert len(encode_within(SCENE, previous, "exam").data) > target


def test_a_picture_within_its_budget_keeps_its_step() -> None:
    start = StillStep(1, 1)
    first = encode_within(SCENE, start, "exam")
    still, step = encode_fitting(SCENE, start, "exam", len(first.data) * 2)
    assert step == start and still.data == first.data


def test_the_smallest_step_is_sent_when_nothing_fits() -> None:
    smallest = StillStep(0, 0)
    while smallest.smaller() != smallest:
        smallest = smallest.smaller()
    still, step = encode_fitting(SCENE, StillStep(1, 1), "exam", 10)
    assert step == smallest and len(still.data) > 10


class OpeningChannel:
    """A data channel that opens when the test says so, and keeps what was sent."""

    def __init__(self) -> None:
        self.readyState = "connecting"
        self.bufferedAmount = 0
        self.sent: list[str | bytes] = []
        self._sent = asyncio.Event()

    def send(self, data: str | bytes) -> None:
        self.sent.append(data)
        self._sent.set()

    async def until(self, done: Callable[[list[str | bytes]], bool]) -> None:
        """Wait (at most 3 s) until what was sent so far is `done`."""
        async with asyncio.timeout(3.0):
            while not done(self.sent):
                self._sent.clear()
                await self._sent.wait()


def pictures_ended(sent: list[str | bytes]) -> int:
    return sum(isinstance(m, str) and "still_end" in m for m in sent)


@contextlib.asynccontextmanager
async def stills_on_an_open_channel(
    budget_bps: int,
) -> AsyncIterator[tuple[OpeningChannel, StillsMode]]:
    """Stills mode, a picture a second at `budget_bps`, on a channel already open."""
    channel = OpeningChannel()
    channel.readyState = "open"
    mode = StillsMode(channel, lambda: SCENE, interval_s=1.0)  # type: ignore[arg-type]
    mode.set_budget(budget_bps)
    try:
        yield channel, mode
    finally:
        await mode.close()


async def test_the_first_picture_goes_as_soon_as_the_channel_opens() -> None:
    """Stills mode often starts before the data channels are open (`edge`: a 1 s round
    trip); the first picture must not wait a whole interval after they open."""
    channel = OpeningChannel()
    mode = StillsMode(channel, lambda: SCENE, interval_s=3.0)  # type: ignore[arg-type]
    mode.set_budget(16_000)
    try:
        await asyncio.sleep(0.3)
        assert not channel.sent
        channel.readyState = "open"
        await asyncio.sleep(0.6)
        headers = [json.loads(m) for m in channel.sent if isinstance(m, str)]
        assert headers and headers[0]["type"] == "still" and headers[0]["periodic"]
    finally:
        await mode.close()


async def test_a_picture_on_its_way_is_finished_when_stills_mode_goes_off() -> None:
    """Cut off, the specialist never sees it and the link carried it for nothing."""
    # At 40 kbit/s a picture of a few kB leaves over about half a second.
    async with stills_on_an_open_channel(40_000) as (channel, mode):
        await channel.until(bool)
        mode.set_budget(0)
        assert not mode.active
        stopping = set(mode._stopping)
        assert stopping  # still on its way, not cancelled
        async with asyncio.timeout(3.0):
            await asyncio.wait(stopping)
        texts = [json.loads(m) for m in channel.sent if isinstance(m, str)]
        assert [t["type"] for t in texts] == ["still", "still_end"]
        header = texts[0]
        assert sum(len(m) for m in channel.sent if isinstance(m, bytes)) == header["size"]


async def test_stills_mode_off_between_pictures_stops_at_once() -> None:
    # At 200 kbit/s the picture is gone in a few ms.
    async with stills_on_an_open_channel(200_000) as (channel, mode):
        await channel.until(lambda sent: pictures_ended(sent) > 0)
        await asyncio.sleep(0.05)
        mode.set_budget(0)
        await asyncio.sleep(0)  # the cancellation lands
        await asyncio.sleep(0)
        assert not mode._stopping
        await asyncio.sleep(1.2)  # no second picture
        assert pictures_ended(channel.sent) == 1
