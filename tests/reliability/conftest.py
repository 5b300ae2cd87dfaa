from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from telecart.cart_agent.agent import CartAgent, ConsultationRequest
from telecart.cart_agent.reconnect import ReconnectPolicy
from telecart.config import AgentConfig
from tests.cart_agent.conftest import Consult, server, small_cart
from tests.reliability.specialist import ReliableSpecialist
from tests.server.harness import RunningServer

__all__ = ["server"]


@pytest.fixture
async def reliable(server: RunningServer, tmp_path: Path) -> AsyncIterator[Consult]:
    """A live consultation whose specialist acknowledges, dedupes and follows new offers."""
    await server.add_specialist("drheart", "cardiology")
    token = await server.add_cart("cart-1")
    config = AgentConfig(server_url=server.ws_url, token=token, data_dir=tmp_path / "agent")
    agent = CartAgent(config, small_cart(), request=ConsultationRequest("cardiology"))
    agent.reconnector.policy = ReconnectPolicy(renegotiate_after_s=2.0)
    specialist = ReliableSpecialist(server, "drheart")
    await agent.start()
    await specialist.connect()
    try:
        session_id = await specialist.wait_queue()
        await specialist.accept(session_id)
        await specialist.wait_state("live", timeout_s=30)
        yield Consult(server, agent, specialist)
    finally:
        await specialist.close()
        await agent.close()
