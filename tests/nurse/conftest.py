"""A real server, a simulated cart agent with its nurse screen, and a Python specialist."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from telecart.cart_agent.agent import CartAgent
from telecart.cart_agent.nurse_screen import NurseScreen
from telecart.config import AgentConfig
from telecart.signalling.messages import Chat, Message
from tests.cart_agent.conftest import small_cart
from tests.cart_agent.specialist_peer import PythonSpecialist
from tests.e2e.conftest import browser  # noqa: F401 - the Chromium fixture
from tests.server.harness import RunningServer, running_server, server_config

AXE_PATHS = (
    Path(__file__).resolve().parents[2] / "server" / "web" / "vendor" / "axe.min.js",
    Path(__file__).with_name("vendor") / "axe.min.js",
)


class ChattingSpecialist(PythonSpecialist):
    """The Python specialist, also keeping the chat it receives."""

    def __init__(self, server: RunningServer, username: str) -> None:
        super().__init__(server, username)
        self.chat: list[Chat] = []

    async def _handle(self, message: Message) -> None:
        if isinstance(message, Chat):
            self.chat.append(message)
        await super()._handle(message)

    async def say(self, text: str) -> None:
        assert self.client is not None and self.session is not None
        await self.client.send(Chat(session_id=self.session.session_id, text=text))


@dataclass
class CartScreen:
    server: RunningServer
    agent: CartAgent
    screen: NurseScreen
    specialist: ChattingSpecialist

    @property
    def url(self) -> str:
        return self.screen.url


@pytest.fixture
async def cart_screen(tmp_path: Path) -> AsyncIterator[CartScreen]:
    async with running_server(server_config(tmp_path / "server")) as server:
        await server.add_specialist("drheart", "cardiology")
        token = await server.add_cart("Aral cart 1")
        config = AgentConfig(server_url=server.ws_url, token=token, data_dir=tmp_path / "agent")
        agent = CartAgent(config, small_cart())
        screen = NurseScreen(agent, "127.0.0.1", 0)
        specialist = ChattingSpecialist(server, "drheart")
        await agent.start()
        await screen.start()
        await specialist.connect()
        try:
            await agent.signalling.connected.wait()
            yield CartScreen(server, agent, screen, specialist)
        finally:
            await specialist.close()
            await screen.close()
            await agent.close()


def axe_source() -> str:
    for path in AXE_PATHS:
        if path.exists():
            return path.read_text(encoding="utf-8")
    pytest.skip("axe-core is not vendored")


async def axe_serious(page: Any) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations on the page as it is now."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(axe_source())
    result = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]
