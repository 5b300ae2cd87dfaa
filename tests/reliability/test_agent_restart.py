"""An agent restarted mid-consultation: it rejoins its open session, or, when it cannot,
ends it with a reason the specialist is shown."""

from __future__ import annotations

import asyncio
from pathlib import Path

from telecart.cart_agent.agent import CartAgent
from telecart.cart_agent.main import EXIT_CONFIG, run_agent
from telecart.config import AgentConfig
from tests.cart_agent.conftest import Consult, eventually, live, server, small_cart

__all__ = ["live", "server"]


async def _restart(live: Consult, data_dir: Path) -> CartAgent:
    """The running agent dies (no hangup); a new one starts with the same token."""
    old = live.agent
    config = AgentConfig(
        server_url=live.server.ws_url,
        token=old._token,
        data_dir=data_dir,
        initial_uplink_kbps=2500,
    )
    await old.close()
    agent = CartAgent(config, small_cart())
    await agent.start()
    return agent


async def test_a_restarted_agent_rejoins_its_open_session(live: Consult, tmp_path: Path) -> None:
    specialist = live.specialist
    assert specialist.session is not None
    session_id = specialist.session.session_id
    agent = await _restart(live, tmp_path / "agent")
    try:
        await eventually(
            lambda: agent.consultation is not None and agent.consultation.link_state == "connected",
            timeout_s=30,
            what="media from the restarted agent",
        )
        assert agent.consultation is not None
        assert agent.consultation.session_id == session_id
        await specialist.wait_state("live", timeout_s=30)
    finally:
        await agent.close()


async def test_an_agent_that_cannot_resume_ends_the_session_with_a_reason(
    live: Consult, tmp_path: Path
) -> None:
    specialist = live.specialist
    broken = tmp_path / "not-a-folder"
    broken.write_text("the cart's data partition came back read-only or full")
    agent = await _restart(live, broken / "agent")
    try:
        ended = await specialist.wait_state("ended", timeout_s=30)
        assert ended.end_reason == "cart_restarted"
        assert agent.consultation is None
    finally:
        await agent.close()


async def test_an_agent_whose_devices_are_misconfigured_ends_its_open_session(
    live: Consult, tmp_path: Path
) -> None:
    specialist = live.specialist
    old = live.agent
    await old.close()  # the cart reboots ...
    config = AgentConfig(  # ... with a device configuration it cannot use
        server_url=live.server.ws_url,
        token=old._token,
        data_dir=tmp_path / "agent",
        devices={"camera": [{"role": "exam", "source": "/dev/video9", "fps": "fast"}]},
    )
    code = await asyncio.to_thread(run_agent, config, False, False)
    assert code == EXIT_CONFIG
    ended = await specialist.wait_state("ended", timeout_s=30)
    assert ended.end_reason == "cart_restarted"


async def test_a_still_taken_before_the_agent_died_reaches_the_specialist(
    live: Consult, tmp_path: Path
) -> None:
    specialist = live.specialist
    first = live.agent.consultation
    assert first is not None and specialist.pc is not None
    await specialist.pc.close()  # nothing reaches the specialist now
    await eventually(lambda: first.link_state != "connected", what="loss detected")
    still = await first.take_still("exam")
    agent = await _restart(live, tmp_path / "agent")  # same data folder: the spool
    try:
        await eventually(
            lambda: any(s.header["still_id"] == still.still_id for s in specialist.received.stills),
            timeout_s=30,
            what="the still from before the restart",
        )
        got = next(s for s in specialist.received.stills if s.header["still_id"] == still.still_id)
        assert got.sha256 == still.sha256
    finally:
        await agent.close()
