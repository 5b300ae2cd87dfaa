"""The specialist reloads the page in the middle of a consultation: the page rejoins the same
session, reports its media failed, and the cart's new offer brings the video back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from telecart.cart_agent.agent import CartAgent, ConsultationRequest
from telecart.config import AgentConfig
from tests.cart_agent.conftest import small_cart
from tests.server.harness import running_server, server_config
from tests.webapp.conftest import login, screenshot
from tests.webapp.test_two_pages import specialist_decoding

pytestmark = pytest.mark.browser


async def test_reload_rejoins_the_session_and_video_decodes_again(
    browser: Any, tmp_path: Path
) -> None:
    async with running_server(server_config(tmp_path / "server")) as server:
        await server.add_specialist("drheart", "cardiology")
        token = await server.add_cart("Aral cart 1", "Aral district hospital")
        config = AgentConfig(server_url=server.ws_url, token=token, data_dir=tmp_path / "agent")
        agent = CartAgent(config, small_cart(), ConsultationRequest("cardiology", "Rash"))
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        page = await context.new_page()
        try:
            await login(page, server.base, "drheart")
            await page.click("#languages button[data-lang=en]")
            await agent.start()
            await page.locator("#queue li.card").wait_for(timeout=20_000)
            await page.click("button.accept")
            await page.wait_for_function("window.telecart.state === 'live'", timeout=30_000)
            await specialist_decoding(page)
            session_id = await page.evaluate("window.telecart.session.session_id")
            first_pc = agent.consultation

            await page.reload()
            # The login cookie survives the reload: straight back into the consultation
            # screen, told the media is being restored.
            await page.locator("#call-view").wait_for(state="visible", timeout=15_000)
            await page.locator("#call-reconnecting").wait_for(state="visible", timeout=15_000)
            assert "Reconnecting" in await page.inner_text("#call-reconnecting")
            await screenshot(page, "reconnecting")

            # The cart offers again on a new peer connection; the same session decodes again.
            await page.wait_for_function("window.telecart.pc !== null", timeout=30_000)
            await specialist_decoding(page)
            await page.wait_for_function("window.telecart.state === 'live'", timeout=15_000)
            assert await page.evaluate("window.telecart.session.session_id") == session_id
            assert await page.locator("#call-reconnecting").is_hidden()
            assert agent.session is not None and agent.session.session_id == session_id
            assert agent.consultation is not first_pc
            await page.wait_for_function(
                "[...document.querySelectorAll('#vitals canvas')]"
                ".some(c => Number(c.dataset.points) >= 2)",
                timeout=20_000,
            )
            await screenshot(page, "rejoined")
        finally:
            await context.close()
            await agent.close()
