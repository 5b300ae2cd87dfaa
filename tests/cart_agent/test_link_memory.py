"""Where the next call's rate control starts: the last call's settled uplink rate, kept in
a real file in the agent's data directory."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from telecart.cart_agent import rate_controller
from telecart.cart_agent.agent import CartAgent
from telecart.cart_agent.link_memory import LinkMemory
from telecart.config import AgentConfig

from .conftest import Consult, eventually, small_cart

NOW = 1_800_000_000.0


async def test_a_remembered_rate_survives_a_new_memory_on_the_same_directory(
    tmp_path: Path,
) -> None:
    await LinkMemory.in_dir(tmp_path).remember(104_321.7, now=NOW)
    again = LinkMemory.in_dir(tmp_path)  # the agent restarted
    assert await again.recall(now=NOW + 60) == 104_322
    files = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.iterdir()))
    assert files == ["uplink.json"]  # the write went through a temporary file, renamed


async def test_an_old_memory_or_none_is_no_memory(tmp_path: Path) -> None:
    memory = LinkMemory.in_dir(tmp_path)
    assert await memory.recall(now=NOW) is None
    await memory.remember(100_000, now=NOW)
    assert await memory.recall(now=NOW + memory.max_age_s + 1) is None
    assert await memory.recall(now=NOW - 3600) is None  # the clock went back


@pytest.mark.parametrize(
    "content",
    ["{not json", '{"settled_bps": "fast", "at": 1}', '{"at": 1}', '{"settled_bps": -5, "at": 1}'],
)
async def test_a_damaged_memory_is_ignored_with_a_warning(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    memory = LinkMemory.in_dir(tmp_path)
    memory.path.write_text(content, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert await memory.recall(now=NOW) is None
    assert "ignoring the remembered uplink rate" in caplog.text
    await memory.remember(90_000, now=NOW)  # and the next call's rate replaces it
    assert await memory.recall(now=NOW) == 90_000


async def test_a_directory_that_cannot_be_written_only_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    await asyncio.to_thread(blocker.write_text, "not a directory")
    memory = LinkMemory.in_dir(blocker)  # its data directory is a file
    with caplog.at_level(logging.WARNING):
        await memory.remember(100_000, now=NOW)
    assert "could not keep the uplink rate" in caplog.text
    assert await memory.recall(now=NOW) is None


def _agent(tmp_path: Path, initial_kbps: int = 300) -> CartAgent:
    config = AgentConfig(
        server_url="ws://127.0.0.1:1/ws",
        token="t",
        data_dir=tmp_path,
        initial_uplink_kbps=initial_kbps,
    )
    return CartAgent(config, small_cart())


async def test_the_next_call_starts_at_the_lower_of_the_setting_and_the_last_call(
    tmp_path: Path,
) -> None:
    agent = _agent(tmp_path)
    assert await agent.initial_uplink_kbps() == 300  # nothing remembered yet
    await agent.link_memory.remember(112_000)  # an EDGE clinic's last call
    assert await agent.initial_uplink_kbps() == 112
    await agent.link_memory.remember(20_000)
    assert await agent.initial_uplink_kbps() == 50  # never under the config's floor
    await agent.link_memory.remember(1_800_000)  # a better link than configured
    assert await agent.initial_uplink_kbps() == 300


async def test_a_closed_consultation_leaves_its_settled_rate_for_the_next(
    live: Consult, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_controller, "SETTLED_MIN_S", 1.0)  # not 20 s of test time
    consultation = live.agent.consultation
    assert consultation is not None
    controller = consultation.rate_controller
    await eventually(lambda: controller.settled_bps is not None, what="a settled rate")
    await live.agent.hangup()
    await eventually(lambda: live.agent.consultation is None, what="the cart to close media")
    remembered = await live.agent.link_memory.recall()
    assert remembered is not None and remembered > 0
    # The live fixture starts at 2500 kbit/s: the next call starts no higher than that.
    assert await live.agent.initial_uplink_kbps() == min(2500, int(remembered / 1000))
