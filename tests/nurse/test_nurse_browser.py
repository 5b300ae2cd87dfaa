"""The nurse screen in headless Chromium against a simulated cart, a real server and a
Python specialist: request → waiting → live → video → device unplug → chat → end; language;
keyboard; axe-core; referral, booking and the booked start."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, cast

import pytest

from telecart.cart_agent.reconnect import ReconnectPolicy
from telecart.devices.camera_sim import SimulatedCamera
from telecart.server.app_keys import ROUTER
from tests.cart_agent.conftest import eventually
from tests.e2e.conftest import ARTIFACTS
from tests.journey.conftest import UTC5, make_iin
from tests.nurse.conftest import CartScreen, axe_serious

pytestmark = pytest.mark.browser


async def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"nurse-{name}.png"), full_page=True)


async def _phase(page: Any, phase: str, timeout_ms: int = 30_000) -> None:
    await page.wait_for_function(
        f"document.querySelector('#state-banner').dataset.phase === '{phase}'", timeout=timeout_ms
    )


async def test_nurse_runs_a_consultation_by_keyboard_in_kazakh(
    browser: Any, cart_screen: CartScreen
) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    await page.goto(cart_screen.url)
    await page.wait_for_selector("#specialties input[value=cardiology]")
    assert await axe_serious(page) == []
    await _shot(page, "request")

    # Language: chosen by the nurse, remembered across a reload.
    await page.click("button[data-lang=kk]")
    assert await page.text_content("#request-title") == "Маман шақыру"
    await page.reload()
    await page.wait_for_selector("#specialties input[value=cardiology]")
    assert await page.evaluate("document.documentElement.lang") == "kk"
    assert await page.text_content("#request-button") == "Маман шақыру"

    # Keyboard only: tab to the specialty, choose it, type a reason, submit.
    await page.focus("#specialties input[value=cardiology]")
    await page.keyboard.press("Space")
    await page.keyboard.press("Tab")  # to the urgency radio group
    await page.keyboard.press("ArrowRight")  # urgent
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "reason"
    await page.keyboard.type("Кеудедегі ауырсыну")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "request-button"
    await page.keyboard.press("Enter")

    await _phase(page, "waiting")
    assert "Күту уақыты" in (await page.text_content("#state-text") or "")
    await _shot(page, "waiting")
    specialist = cart_screen.specialist
    session_id = await specialist.wait_queue()
    assert cart_screen.agent.session is not None
    assert cart_screen.agent.session.priority == "urgent"
    await specialist.accept(session_id)
    await _phase(page, "live")

    # Self-view and the specialist's video, frames updating.
    await page.wait_for_function(
        "window.nurse.frames.self >= 5 && window.nurse.frames.remote >= 5", timeout=30_000
    )
    before = await page.evaluate("({...window.nurse.frames})")
    await page.wait_for_function(
        f"window.nurse.frames.remote > {before['remote']} + 3", timeout=10_000
    )
    remote = await page.evaluate(
        "(() => { const i = document.querySelector('#remote-video');"
        " return [i.naturalWidth, i.naturalHeight]; })()"
    )
    # The specialist's 320x240 camera, possibly scaled down by their sender: same shape.
    assert 0 < remote[0] <= 320 and remote[0] * 3 == remote[1] * 4

    # A camera unplugged: red, in a plain sentence.
    camera = cast(SimulatedCamera, cart_screen.agent.devices.cameras["exam"])
    camera.connected = False
    unplugged = "#call-devices li[data-device='exam camera'].disconnected"
    await page.wait_for_selector(unplugged, timeout=10_000)
    assert "USB" in (await page.text_content(unplugged) or "")

    # Chat both ways.
    await specialist.say("Стетоскопты жүрекке қойыңыз")
    await page.wait_for_selector("#chat-log li.theirs", timeout=10_000)
    await page.focus("#chat-text")
    await page.keyboard.type("Дайын")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#chat-log li.mine", timeout=10_000)
    await eventually(lambda: any(c.text == "Дайын" for c in specialist.chat), what="nurse chat")
    await _shot(page, "live-kk")
    assert await axe_serious(page) == []

    await page.click("button[data-lang=en]")
    await _shot(page, "live-en")
    camera.connected = True

    await page.focus("#hangup-button")
    await page.keyboard.press("Enter")
    await _phase(page, "ended", 15_000)
    await specialist.wait_state("ended")
    await _shot(page, "ended")
    await page.click("#new-button")
    await page.wait_for_selector("#screen-request:not([hidden])")


async def _slot_soon(cart_screen: CartScreen, minutes: int) -> dict[str, Any]:
    http = cart_screen.specialist
    import aiohttp

    starts = dt.datetime.fromtimestamp(time.time() + minutes * 60, UTC5)
    body = {
        "specialty": "cardiology",
        "starts_at": starts.isoformat(timespec="seconds"),
        "duration_min": 30,
    }
    async with aiohttp.ClientSession(cookies=http.cookies) as session:
        async with session.post(cart_screen.server.base + "/api/slots", json=body) as resp:
            assert resp.status == 201, await resp.text()
            return cast(dict[str, Any], await resp.json())


async def test_nurse_records_a_referral_books_and_starts_at_the_booked_time(
    browser: Any, cart_screen: CartScreen, tmp_path: Any
) -> None:
    first = await _slot_soon(cart_screen, 5)
    second = await _slot_soon(cart_screen, 40)
    pdf = tmp_path / "lab.pdf"
    pdf.write_bytes(b"%PDF-1.4\n% lab results\n%%EOF\n")

    page = await browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    await page.goto(cart_screen.url)
    await page.click("button[data-lang=ru]")
    await page.click("#tab-journey")
    await page.fill("#ref-number", "KZ-2030-000123")
    await page.fill("#ref-doctor", "Др. Айгерим Нурпеисова")
    await page.select_option("#ref-specialty", "cardiology")
    await page.fill("#ref-reason", "Сердцебиение, изменения на ЭКГ")
    await page.fill("#ref-name", "Жанар Сейткали")
    await page.fill("#ref-birth", "1984-03-21")
    await page.fill("#ref-iin", make_iin(dt.date(1984, 3, 21)))
    await page.set_input_files("#ref-files", str(pdf))
    await _shot(page, "referral")
    assert await axe_serious(page) == []
    await page.click("#referral-form button[type=submit]")

    # Free slots in local time; book the later one, then move it to the sooner one.
    await page.wait_for_selector(f"button[data-slot='{second['slot_id']}']")
    assert second["starts_local"][11:16] in (await page.text_content("#slots") or "")
    await _shot(page, "slots")
    await page.click(f"button[data-slot='{second['slot_id']}']")
    await page.wait_for_selector("li.appointment.booked")
    journey = cart_screen.agent.journey
    assert journey is not None
    referral = await journey.referral((await journey.referrals())[0]["referral_id"])
    assert [a["media_type"] for a in referral["attachments"]] == ["application/pdf"]
    await page.click("li.appointment.booked button[data-action=reschedule]")
    await page.wait_for_selector(f"button[data-slot='{first['slot_id']}']")
    await page.click(f"button[data-slot='{first['slot_id']}']")
    assert "причину" in (await page.text_content("#booking-error") or "")
    await page.fill("#book-reason", "Пациент приехал раньше")
    await page.click(f"button[data-slot='{first['slot_id']}']")
    await page.wait_for_function(
        "document.querySelector('li.appointment.booked p')"
        f".textContent.startsWith('{first['starts_local'][11:16]}')"
    )
    await _shot(page, "day-list")
    assert await axe_serious(page) == []

    # At the booked time: straight to the booked specialist, no queue.
    await page.click("li.appointment.booked button[data-action=start]")
    await _phase(page, "live")
    session = cart_screen.agent.session
    assert session is not None and session.specialist_name == "Dr drheart"
    await page.click("#hangup-button")
    await _phase(page, "ended", 15_000)


async def test_nurse_is_told_when_nobody_answers_and_why_a_request_ended(
    browser: Any, cart_screen: CartScreen
) -> None:
    agent, specialist = cart_screen.agent, cart_screen.specialist
    agent.reconnector.policy = ReconnectPolicy(answer_timeout_s=2.0, retry_base_s=30.0)

    async def never_answer(session_id: str, sdp: str, offer_id: int | None = None) -> None:
        return None  # a specialist's screen that hangs on the offer

    specialist._answer = never_answer  # type: ignore[method-assign]
    page = await browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    await page.goto(cart_screen.url)
    await page.click("button[data-lang=en]")
    await page.check("#specialties input[value=cardiology]")
    await page.click("#request-button")
    await _phase(page, "waiting")
    await specialist.accept(await specialist.wait_queue())
    await page.wait_for_function(
        "document.querySelector('#state-text').textContent.includes('has not answered')",
        timeout=20_000,
    )
    await _shot(page, "no-answer")
    await page.click("#hangup-button")
    await _phase(page, "ended")

    # A request nobody accepts ends with a reason the nurse can act on.
    await page.click("#new-button")
    await page.check("#specialties input[value=cardiology]")
    await page.click("#request-button")
    await _phase(page, "waiting")
    await eventually(lambda: agent.session is not None and agent.session.state.value == "queued")
    assert await cart_screen.server.app[ROUTER].expire_requests(0) == 1  # the server's sweep
    await _phase(page, "ended")
    text = await page.text_content("#state-text") or ""
    assert "No specialist accepted the request in time" in text
    assert await axe_serious(page) == []
