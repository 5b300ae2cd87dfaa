"""The issue's full journey in the browser, driven through both real pages: referral → booking
→ consultation at the booked time → conclusion → export. The specialist app runs against the
in-process server, the nurse screen against an in-process simulated cart agent."""

from __future__ import annotations

import base64
import datetime as dt
import io
import time
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from pypdf import PdfReader

from tests.e2e.conftest import ARTIFACTS
from tests.journey.conftest import UTC5, make_iin
from tests.webapp.conftest import login
from tests.webapp.test_two_pages import clinic

pytestmark = pytest.mark.browser

PATIENT = "Жанар Сейткали"
CONCLUSION = "Mitral regurgitation, mild"
RECOMMENDATIONS = "Echocardiography within a month"
# The smallest PDF the server takes as an attachment.
LAB_PDF = b"%PDF-1.4\n% lab results\n%%EOF\n"

# Fetch URLs with the page's own cookie; status, content type and the body in base64.
FETCH = """async (urls) => Promise.all(urls.map(async (u) => {
  const r = await fetch(u), bytes = new Uint8Array(await r.arrayBuffer());
  let s = ""; for (const b of bytes) s += String.fromCharCode(b);
  return [r.status, r.headers.get("content-type"), btoa(s)];
}))"""


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"journey-{name}.png"), full_page=True)


async def phase(nurse: Any, name: str, timeout_ms: int = 30_000) -> None:
    await nurse.wait_for_function(
        f"document.querySelector('#state-banner').dataset.phase === '{name}'", timeout=timeout_ms
    )


async def test_referral_booking_booked_consultation_conclusion_export(
    browser: Any, tmp_path: Path
) -> None:
    pdf_file = tmp_path / "lab.pdf"
    pdf_file.write_bytes(LAB_PDF)
    async with clinic(tmp_path) as site:
        doctor_ctx = await browser.new_context(viewport={"width": 1400, "height": 900})
        nurse_ctx = await browser.new_context(
            viewport={"width": 1280, "height": 900}, bypass_csp=True
        )
        page, nurse = await doctor_ctx.new_page(), await nurse_ctx.new_page()
        try:
            # The specialist publishes a slot a few minutes from now (UTC+5 on screen):
            # inside the start window, which opens 15 minutes before.
            await login(page, site.server.base, "drheart")
            await page.click("#languages button[data-lang=en]")
            await page.click("#nav [data-view=schedule]")
            start = dt.datetime.fromtimestamp(time.time() + 300, UTC5).replace(second=0)
            await page.fill("#slot-date", start.strftime("%Y-%m-%d"))
            await page.fill("#slot-time", start.strftime("%H:%M"))
            await page.click("#slot-form button[type=submit]")
            slot_card = page.locator("#slot-list li.card")
            await slot_card.wait_for()
            assert start.strftime("%H:%M") in await slot_card.inner_text()
            slot_id = await slot_card.get_attribute("data-slot")
            assert slot_id

            # The nurse records the referral with a PDF and books that slot.
            await nurse.goto(site.screen.url)
            await nurse.click("button[data-lang=en]")
            await nurse.click("#tab-journey")
            await nurse.fill("#ref-number", "KZ-2030-000123")
            await nurse.fill("#ref-doctor", "Dr Aigerim Nurpeisova")
            await nurse.select_option("#ref-specialty", "cardiology")
            await nurse.fill("#ref-reason", "Palpitations, ECG changes")
            await nurse.fill("#ref-name", PATIENT)
            await nurse.fill("#ref-birth", "1984-03-21")
            await nurse.fill("#ref-iin", make_iin(dt.date(1984, 3, 21)))
            await nurse.set_input_files("#ref-files", str(pdf_file))
            await nurse.click("#referral-form button[type=submit]")
            await nurse.click(f"button[data-slot='{slot_id}']", timeout=15_000)
            await nurse.wait_for_selector("li.appointment.booked")
            assert start.strftime("%H:%M") in await nurse.inner_text("li.appointment.booked")
            await shot(nurse, "nurse-booked")

            # The specialist's day list shows the appointment, with the referral.
            await page.fill("#day-date", start.strftime("%Y-%m-%d"))
            await page.click("#day-form button[type=submit]")
            day_card = page.locator("#day-list li.card")
            await day_card.wait_for()
            assert start.strftime("%H:%M") in await day_card.inner_text()
            await day_card.locator(".open-referral").click()
            await page.locator("#schedule-referral a:has-text('PDF')").wait_for()
            assert PATIENT in await page.inner_text("#schedule-referral")
            await shot(page, "specialist-day")

            # At the booked time the nurse starts it: straight to the booked specialist.
            await nurse.click("li.appointment.booked button[data-action=start]")
            await page.wait_for_function("window.telecart.notices.length > 0", timeout=15_000)
            assert "Aral cart 1" in await page.inner_text("#notice")
            await page.click("#notice-go")
            await page.wait_for_function("window.telecart.state === 'live'", timeout=30_000)
            await phase(nurse, "live")
            session = await page.evaluate("window.telecart.session")
            assert session["specialist_name"] == "Dr drheart"
            assert site.agent.session is not None
            assert site.agent.session.specialist_name == "Dr drheart"
            session_id = session["session_id"]
            events = await site.server.store.session_events(session_id)
            assert [state for state, _ in events][:2] == ["requested", "accepted"]
            assert "queued" not in [state for state, _ in events]
            assert await page.locator("#queue li.card").count() == 0

            # The specialist reads the referral and opens the PDF (the browser's viewer).
            link = page.locator("#call-referral a:has-text('PDF')")
            await link.wait_for(timeout=15_000)
            assert PATIENT in await page.inner_text("#call-referral")
            async with doctor_ctx.expect_page() as opened:
                await link.click()
            viewer = await opened.value
            assert viewer.url.startswith("blob:")
            await viewer.close()

            # Conclusion and recommendations, saved; then hang up.
            await page.fill("#notes-conclusion", CONCLUSION)
            await page.fill("#notes-recommendations", RECOMMENDATIONS)
            await page.click("#notes-save")
            await page.wait_for_function(
                "document.querySelector('#notes-status').textContent.startsWith('Saved')"
            )
            await shot(page, "specialist-live")
            await shot(nurse, "nurse-live")
            await page.click("#hangup")
            await page.wait_for_function("window.telecart.state === 'ended'", timeout=15_000)
            await phase(nurse, "ended", 15_000)

            # Export: the record's PDF and FHIR links, fetched with the page's cookie.
            await page.click("#nav [data-view=history]")
            await page.locator("#history .open-record").first.click()
            await page.locator("#record .record-conclusion").wait_for()
            assert CONCLUSION in await page.inner_text("#record")
            await shot(page, "specialist-record")
            pdf_url = await page.get_attribute("#record a[href$='record.pdf']", "href")
            fhir_url = await page.get_attribute("#record a[href$='record.fhir.json']", "href")
            (
                (pdf_status, pdf_type, pdf_b64),
                (fhir_status, fhir_type, fhir_b64),
            ) = await page.evaluate(FETCH, [pdf_url, fhir_url])
            assert (pdf_status, pdf_type) == (200, "application/pdf")
            pdf = base64.b64decode(pdf_b64)
            assert pdf.startswith(b"%PDF")
            text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
            assert CONCLUSION in text and PATIENT in text
            assert fhir_status == 200 and "fhir+json" in fhir_type
            bundle = Bundle.model_validate_json(base64.b64decode(fhir_b64))
            kinds = [e.resource.get_resource_type() for e in bundle.entry or []]
            assert {"Patient", "Encounter", "Practitioner", "ServiceRequest"} <= set(kinds)
        finally:
            await doctor_ctx.close()
            await nurse_ctx.close()
