"""A whole consultation and the journey in the specialist app, in headless Chromium."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from telecart.cart_agent.agent import CartAgent, ConsultationRequest
from telecart.config import AgentConfig
from telecart.signalling.messages import Chat, Message
from tests.cart_agent.conftest import eventually, small_cart
from tests.journey.conftest import Api, referral_body
from tests.server.harness import running_server, server_config
from tests.webapp.conftest import login, screenshot, serious_axe_violations, unlabeled_controls

pytestmark = pytest.mark.browser
UTC5 = dt.timezone(dt.timedelta(hours=5))

FRAMES = """async () => {
  const out = {}, order = ["room", "exam"], pc = window.telecart.pc;
  if (!pc) return out;
  for (const [i, t] of pc.getTransceivers().entries()) {
    const role = window.telecart.roles[t.mid] || order[i] || t.mid;
    for (const s of (await t.receiver.getStats()).values())
      if (s.type === "inbound-rtp" && s.kind === "video") out[role] = s.framesDecoded || 0;
  }
  return out;
}"""

FOCUSED = "(e => e.dataset.lang || e.id || e.type)(document.activeElement)"

# A 1x1 PNG, the smallest image the server takes as an attachment.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2c6d8a60000000049454e44ae426082"
)


async def test_full_consultation_in_the_specialist_app(browser: Any, tmp_path: Path) -> None:
    async with running_server(server_config(tmp_path / "server")) as server:
        await server.add_specialist("drheart", "cardiology")
        await server.add_specialist("drsecond", "cardiology")
        token = await server.add_cart("Aral cart 1", "Aral district hospital")
        config = AgentConfig(server_url=server.ws_url, token=token, data_dir=tmp_path / "agent")
        agent = CartAgent(
            config, small_cart(), ConsultationRequest("cardiology", "Chest pain", "urgent")
        )
        heard: list[Message] = []
        agent.observe(heard.append)
        first = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB")
        second = await browser.new_context(viewport={"width": 1400, "height": 900})
        page, other = await first.new_page(), await second.new_page()
        try:
            await login(page, server.base, "drheart")
            await login(other, server.base, "drsecond")
            await page.click("#languages button[data-lang=en]")
            await agent.start()
            card = page.locator("#queue li.card")
            await card.wait_for(timeout=20_000)
            text = await card.inner_text()
            assert "Aral cart 1" in text and "Aral district hospital" in text
            assert "URGENT" in text and "Chest pain" in text and "waiting" in text
            await other.locator("#queue li.card").wait_for()
            await screenshot(page, "queue")
            assert await serious_axe_violations(page) == []

            await page.click("button.accept")
            await page.wait_for_function("window.telecart.state === 'live'", timeout=30_000)
            await other.wait_for_function("window.telecart.notices.length > 0")
            assert "no longer waiting" in (await other.inner_text("#notice"))
            assert await other.locator("#queue li.card").count() == 0

            async def videos_decoding() -> bool:
                frames = await page.evaluate(FRAMES)
                return frames.get("room", 0) >= 10 and frames.get("exam", 0) >= 10

            await _until(videos_decoding, "room and exam frames decoding")
            await page.wait_for_function("document.querySelectorAll('#vitals .vital').length >= 2")
            await page.wait_for_function(
                "[...document.querySelectorAll('#vitals canvas')]"
                ".some(c => Number(c.dataset.points) >= 3)",
                timeout=20_000,
            )

            await page.click("#still")
            await page.wait_for_function(
                "window.telecart.stills.length === 1 && window.telecart.stills[0].serverUrl",
                timeout=30_000,
            )
            await page.locator("#stills .thumb").first.click()
            await page.click("#viewer-zoom-in")
            await page.locator("#viewer-stage").press("+")
            assert float(await page.get_attribute("#viewer", "data-scale") or 0) > 1.5
            await page.click("#viewer-close")

            await page.fill("#chat-text", "Move the stethoscope to the apex")
            await page.press("#chat-text", "Enter")
            await eventually(
                lambda: any(isinstance(m, Chat) and "apex" in m.text for m in heard),
                what="the specialist's chat at the cart",
            )
            await agent.send_chat("Done, at the apex now")
            await page.locator("#chat-log li.theirs").wait_for()
            assert "Done, at the apex now" in await page.inner_text("#chat-log")

            await page.click("#swap")
            assert await page.evaluate("window.telecart.mainTile") == "exam"
            await page.click("[data-mode=lung]")
            await page.wait_for_function(
                "window.telecart.cartState && window.telecart.cartState.stethoscope_mode === 'lung'"
            )
            await page.wait_for_function("document.querySelector('#quality-score').textContent")
            await page.fill("#notes-notes", "Murmur at the apex, grade 2/6")
            await page.fill("#notes-conclusion", "Mitral regurgitation, mild")
            await page.fill("#notes-recommendations", "Echocardiography within a month")
            await page.click("#notes-save")
            await page.wait_for_function(
                "document.querySelector('#notes-status').textContent.startsWith('Saved')"
            )
            # The stethoscope's waveform and spectrogram are drawn from a signal (Web Audio).
            await page.wait_for_function("window.telecart.stethoscope.frames > 10")
            assert await unlabeled_controls(page) == []
            await screenshot(page, "live")
            assert await serious_axe_violations(page) == []

            await page.click("#hangup")
            await page.wait_for_function("window.telecart.state === 'ended'", timeout=15_000)
            await eventually(lambda: agent.consultation is None, what="the cart to close media")
            await page.click("#nav [data-view=history]")
            await page.locator("#history .open-record").first.click()
            await page.locator("#record .record-conclusion").wait_for()
            record = await page.inner_text("#record")
            assert "Mitral regurgitation, mild" in record and "Murmur at the apex" in record
            assert await page.locator("#record .thumb").count() == 1
            await screenshot(page, "history")
            assert await serious_axe_violations(page) == []
            await other.click("#nav [data-view=history]")
            await other.locator("#history-empty").wait_for()  # only one's own sessions
        finally:
            await first.close()
            await second.close()
            await agent.close()


async def test_language_is_chosen_and_remembered(browser: Any, tmp_path: Path) -> None:
    async with running_server(server_config(tmp_path / "server")) as server:
        await server.add_specialist("drheart", "cardiology")
        page = await browser.new_page()
        try:
            await page.goto(server.base + "/")
            await page.click("#languages button[data-lang=kk]")
            assert await page.inner_text("#login-title") == "Маманның кіруі"
            assert await page.get_attribute("html", "lang") == "kk"
            await page.reload()
            assert await page.inner_text("#login-title") == "Маманның кіруі"
            assert await page.evaluate("Object.keys(localStorage)") == ["telecart.lang"]
            order = []
            for _ in range(6):
                await page.keyboard.press("Tab")
                order.append(await page.evaluate(FOCUSED))
            # Language first, then the form in reading order.
            assert order == ["ru", "kk", "en", "login-username", "login-password", "submit"], order
            await page.click("#languages button[data-lang=ru]")
            assert await page.inner_text("#login-title") == "Вход для специалиста"
            await screenshot(page, "login-ru")
            assert await serious_axe_violations(page) == []
            await page.click("#languages button[data-lang=en]")
            await page.fill("#login-username", "drheart")
            await page.fill("#login-password", "wrong")
            await page.press("#login-password", "Enter")
            await page.locator("#login-error:has-text('Wrong')").wait_for()
        finally:
            await page.close()


async def test_schedule_referral_booked_start_and_record(browser: Any, tmp_path: Path) -> None:
    async with running_server(server_config(tmp_path / "server")) as server:
        await server.add_specialist("drheart", "cardiology")
        token = await server.add_cart("Aral cart 1", "Aral district hospital")
        nurse = Api(server.base, token=token)
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        page = await context.new_page()
        try:
            await login(page, server.base, "drheart")
            await page.click("#languages button[data-lang=ru]")
            await page.click("#nav [data-view=schedule]")
            start = dt.datetime.fromtimestamp(time.time() + 300, UTC5).replace(second=0)
            await page.fill("#slot-date", start.strftime("%Y-%m-%d"))
            await page.fill("#slot-time", start.strftime("%H:%M"))
            await page.click("#slot-form button[type=submit]")
            slot_card = page.locator("#slot-list li.card")
            await slot_card.wait_for()
            assert start.strftime("%H:%M") in await slot_card.inner_text()  # UTC+5 on screen

            referral = await nurse.call("POST", "/api/referrals", referral_body(), status=201)
            await nurse.call(
                "POST",
                f"/api/referrals/{referral['referral_id']}/attachments?kind=xray",
                data=PNG,
                status=201,
            )
            slot_id = await slot_card.get_attribute("data-slot")
            appointment = await nurse.call(
                "POST",
                "/api/appointments",
                {"slot_id": slot_id, "referral_id": referral["referral_id"]},
                status=201,
            )
            await page.click("#day-form button[type=submit]")
            day_card = page.locator("#day-list li.card")
            await day_card.wait_for()
            assert start.strftime("%H:%M") in await day_card.inner_text()
            await day_card.locator(".open-referral").click()
            await page.locator("#schedule-referral .thumb").wait_for()
            assert "Жанар Сейткали" in await page.inner_text("#schedule-referral")
            await page.locator("#schedule-referral .thumb").click()
            await page.locator("#viewer-stage").press("+")
            await page.click("#viewer-invert")
            await screenshot(page, "xray-viewer")
            await page.click("#viewer-close")
            await screenshot(page, "schedule")
            assert await serious_axe_violations(page) == []

            config = AgentConfig(server_url=server.ws_url, token=token, data_dir=tmp_path / "a")
            agent = CartAgent(config, small_cart())
            await agent.start()
            try:
                await eventually(lambda: agent.specialties, what="the cart online")
                await agent.request_consultation(
                    ConsultationRequest("cardiology"), appointment["appointment_id"]
                )
                await page.wait_for_function("window.telecart.notices.length > 0")
                assert "Aral cart 1" in await page.inner_text("#notice")
                await page.click("#notice-go")
                await page.wait_for_function("window.telecart.state === 'live'", timeout=30_000)
                await page.locator("#call-referral .thumb").wait_for()
                await page.fill("#notes-conclusion", "Здоров")
                await page.click("#notes-save")
                await page.wait_for_function(
                    "document.querySelector('#notes-status').textContent.startsWith('Сохранено')"
                )
                await screenshot(page, "booked-live")
                await page.click("#hangup")
                await page.wait_for_function("window.telecart.state === 'ended'")
            finally:
                await agent.close()
            await page.click("#nav [data-view=history]")
            await page.locator("#history .open-record").first.click()
            pdf = await page.get_attribute("#record a[href$='record.pdf']", "href")
            fhir = await page.get_attribute("#record a[href$='record.fhir.json']", "href")
            fetched = await page.evaluate(
                "async (urls) => Promise.all(urls.map(async u => { const r = await fetch(u);"
                " return [r.status, r.headers.get('content-type')]; }))",
                [pdf, fhir],
            )
            assert fetched[0] == [200, "application/pdf"]
            assert fetched[1][0] == 200 and "fhir+json" in fetched[1][1]
        finally:
            await context.close()
            await nurse.close()


async def _until(check: Any, what: str, timeout_s: float = 30.0) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():  # noqa: ASYNC110 - polls the browser
                await asyncio.sleep(0.25)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
