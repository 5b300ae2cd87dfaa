"""One live call for browser tests: a server, a simulated cart and the specialist page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telecart.cart_agent.agent import CartAgent
from tests.cart_agent.conftest import loopback_agent
from tests.server.harness import PASSWORD, RunningServer, running_server, server_config


@dataclass
class LiveCall:
    server: RunningServer
    agent: CartAgent
    page: Any


@asynccontextmanager
async def live_call(browser: Any, tmp_path: Path) -> AsyncIterator[LiveCall]:
    """A specialist (drheart, cardiology) has accepted the cart's request in Chromium."""
    async with running_server(server_config(tmp_path / "server")) as server:
        await server.add_specialist("drheart", "cardiology")
        agent = await loopback_agent(server, tmp_path)
        page = await browser.new_page()
        try:
            await open_and_accept(page, server)
            yield LiveCall(server, agent, page)
        finally:
            await page.close()
            await agent.close()


async def open_and_accept(page: Any, server: RunningServer) -> None:
    await page.goto(server.base + "/")
    await page.fill("input[name=username]", "drheart")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.click("button.accept", timeout=20_000)
    await page.wait_for_function("window.telecart.state === 'live'", timeout=30_000)


async def eventually_async(check: Any, what: str, timeout_s: float = 30.0) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():  # noqa: ASYNC110 - polls the browser's getStats
                await asyncio.sleep(0.25)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
