"""A full consultation driven by two browser pages: the specialist app against the server
and the nurse screen against a simulated cart agent, both in one headless Chromium."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from telecart.cart_agent.agent import CartAgent
from telecart.cart_agent.nurse_screen import NurseScreen
from telecart.config import AgentConfig
from tests.cart_agent.conftest import small_cart
from tests.e2e.conftest import ARTIFACTS
from tests.server.harness import RunningServer, running_server, server_config
from tests.webapp.conftest import login

pytestmark = pytest.mark.browser

# framesDecoded per inbound video stream of the specialist's peer connection.
DECODED = """async () => {
  const pc = window.telecart.pc, out = [];
  if (!pc) return out;
  for (const s of (await pc.getStats()).values())
    if (s.type === "inbound-rtp" && s.kind === "video") out.push(s.framesDecoded || 0);
  return out;
}"""


@dataclass
class Clinic:
    server: RunningServer
    agent: CartAgent
    screen: NurseScreen


@asynccontextmanager
async def clinic(tmp_path: Path) -> AsyncIterator[Clinic]:
    """A server with one cardiologist, a simulated cart online and its nurse screen."""
    async with running_server(server_config(tmp_path / "server")) as server:
        await server.add_specialist("drheart", "cardiology")
        token = await server.add_cart("Aral cart 1", "Aral district hospital")
        config = AgentConfig(server_url=server.ws_url, token=token, data_dir=tmp_path / "agent")
        agent = CartAgent(config, small_cart())
        screen = NurseScreen(agent, "127.0.0.1", 0)
        await agent.start()
        await screen.start()
        try:
            await agent.signalling.connected.wait()
            yield Clinic(server, agent, screen)
        finally:
            await screen.close()
            await agent.close()


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"two-pages-{name}.png"), full_page=True)


async def until(check: Any, what: str, timeout_s: float = 20.0) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():  # noqa: ASYNC110 - polls the browser
                await asyncio.sleep(0.25)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def specialist_decoding(page: Any, more_than: list[int] | None = None) -> list[int]:
    """Wait until both cart cameras decode (beyond `more_than` if given); the counts."""
    seen: list[int] = []

    async def decoding() -> bool:
        nonlocal seen
        seen = await page.evaluate(DECODED)
        if len(seen) < 2:
            return False
        if more_than is None:
            return all(n >= 10 for n in seen[:2])
        return all(n > old + 5 for n, old in zip(seen, more_than, strict=False))

    await until(decoding, "video frames decoding in the specialist's page", 30.0)
    return seen


async def nurse_request(nurse: Any, reason: str) -> None:
    await nurse.wait_for_selector("#specialties input[value=cardiology]", timeout=15_000)
    await nurse.click("button[data-lang=en]")
    await nurse.check("#specialties input[value=cardiology]")
    await nurse.fill("#reason", reason)
    await nurse.click("#request-button")
    await nurse.wait_for_function(
        "document.querySelector('#state-banner').dataset.phase === 'waiting'", timeout=15_000
    )


async def specialist_accepts(page: Any, reason: str) -> None:
    card = page.locator("#queue li.card")
    await card.wait_for(timeout=20_000)
    assert reason in await card.inner_text()
    await page.click("button.accept")
    await page.wait_for_function("window.telecart.state === 'live'", timeout=30_000)


async def test_consultation_driven_by_two_pages(browser: Any, tmp_path: Path) -> None:
    async with clinic(tmp_path) as site:
        doctor_ctx = await browser.new_context(viewport={"width": 1400, "height": 900})
        nurse_ctx = await browser.new_context(
            viewport={"width": 1280, "height": 800}, bypass_csp=True
        )
        page, nurse = await doctor_ctx.new_page(), await nurse_ctx.new_page()
        try:
            await login(page, site.server.base, "drheart")
            await page.click("#languages button[data-lang=en]")
            await nurse.goto(site.screen.url)

            # The nurse requests; the specialist's queue shows it; the specialist accepts.
            await nurse_request(nurse, "Chest pain since morning")
            await specialist_accepts(page, "Chest pain since morning")
            await nurse.wait_for_function(
                "document.querySelector('#state-banner').dataset.phase === 'live'",
                timeout=30_000,
            )

            # Video both ways: the specialist decodes both cameras, the nurse's remote
            # picture (the specialist's fake camera) keeps changing.
            first = await specialist_decoding(page)
            await specialist_decoding(page, first)
            await nurse.wait_for_function("window.nurse.frames.remote >= 3", timeout=30_000)
            before = await nurse.evaluate("window.nurse.frames.remote")
            await nurse.wait_for_function(
                f"window.nurse.frames.remote > {before} + 2", timeout=15_000
            )

            # Vitals chart grows.
            await page.wait_for_function(
                "[...document.querySelectorAll('#vitals canvas')]"
                ".some(c => Number(c.dataset.points) >= 3)",
                timeout=20_000,
            )

            # Still captured from the specialist's button, shown in the gallery.
            await page.click("#still")
            await page.wait_for_function(
                "window.telecart.stills.length === 1 && window.telecart.stills[0].serverUrl",
                timeout=30_000,
            )
            await page.wait_for_function(
                "document.querySelector('#stills .thumb img')?.naturalWidth > 0", timeout=10_000
            )

            # Chat both ways.
            await page.fill("#chat-text", "Please move the stethoscope to the apex")
            await page.press("#chat-text", "Enter")
            await nurse.wait_for_selector("#chat-log li.theirs", timeout=10_000)
            assert "apex" in (await nurse.text_content("#chat-log") or "")
            await nurse.fill("#chat-text", "Done, at the apex now")
            await nurse.press("#chat-text", "Enter")
            await page.locator("#chat-log li.theirs").wait_for(timeout=10_000)
            assert "Done, at the apex now" in await page.inner_text("#chat-log")

            # Notes saved during the call.
            await page.fill("#notes-notes", "Murmur at the apex, grade 2/6")
            await page.fill("#notes-conclusion", "Mitral regurgitation, mild")
            await page.click("#notes-save")
            await page.wait_for_function(
                "document.querySelector('#notes-status').textContent.startsWith('Saved')"
            )
            await shot(page, "specialist-live")
            await shot(nurse, "nurse-live")

            # The nurse hangs up; the specialist sees it ended; history has the notes.
            await nurse.click("#hangup-button")
            await nurse.wait_for_function(
                "document.querySelector('#state-banner').dataset.phase === 'ended'",
                timeout=15_000,
            )
            await page.wait_for_function("window.telecart.state === 'ended'", timeout=15_000)
            await page.click("#nav [data-view=history]")
            await page.locator("#history .open-record").first.click()
            await page.locator("#record .record-conclusion").wait_for()
            record = await page.inner_text("#record")
            assert "Murmur at the apex" in record and "Mitral regurgitation, mild" in record
            await shot(page, "specialist-history")
            await shot(nurse, "nurse-ended")
        finally:
            await doctor_ctx.close()
            await nurse_ctx.close()
