"""HTTP API of the patient journey (docs/journey.md): referrals and attachments, slots and
appointments, vitals, conclusion, the consultation record (JSON, PDF, FHIR) and reports.

Carts authenticate with their bearer token (the nurse screen calls through the cart agent),
specialists with the login cookie. Errors are JSON `{"error": code, "message": text}`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from telecart.server import journey_store as js
from telecart.server.app_keys import CONFIG, STORE
from telecart.server.appointments import (
    AppointmentBook,
    appointment_json,
    parse_instant,
    slot_json,
)
from telecart.server.content_types import EXTENSIONS, claimed_type_agrees, detect_content_type
from telecart.server.http_auth import cart_from_bearer, specialist_from_cookie
from telecart.server.journey_errors import JourneyError
from telecart.server.record_fhir import record_bundle
from telecart.server.record_pdf import record_pdf
from telecart.server.records import read_record, record_json
from telecart.server.referrals import (
    ATTACHMENT_KINDS,
    Reader,
    attachment_json,
    parse_referral,
    readable_referral,
    reader_id,
    referral_json,
)
from telecart.server.reports import consultation_report, report_csv, report_json, report_range
from telecart.server.store import CartRecord, SessionRecord, SpecialistRecord

APPOINTMENT_BOOK = web.AppKey("appointment_book", AppointmentBook)
MAX_VITAL_READINGS = 1000
MAX_CONCLUSION_CHARS = 10_000
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

routes = web.RouteTableDef()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _journey(handler: Handler) -> Handler:
    """Turn a `JourneyError` into its JSON answer."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except JourneyError as exc:
            return web.json_response({"error": exc.code, "message": exc.message}, status=exc.status)

    return wrapped


async def _reader(request: web.Request) -> Reader:
    cart = await cart_from_bearer(request)
    if cart is not None:
        return cart
    specialist = await specialist_from_cookie(request)
    if specialist is not None:
        return specialist
    raise JourneyError("auth_required", "Log in (specialists) or use the cart's token.", 401)


async def _cart(request: web.Request) -> CartRecord:
    reader = await _reader(request)
    if not isinstance(reader, CartRecord):
        raise JourneyError("forbidden", "Only the nurse's cart does this.", 403)
    return reader


async def _specialist(request: web.Request) -> SpecialistRecord:
    reader = await _reader(request)
    if not isinstance(reader, SpecialistRecord):
        raise JourneyError("forbidden", "Only a specialist does this.", 403)
    return reader


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise JourneyError("invalid_json", "Send a JSON object.") from None
    if not isinstance(body, dict):
        raise JourneyError("invalid_json", "Send a JSON object.")
    return body


async def _session(request: web.Request) -> SessionRecord:
    record = await request.app[STORE].session(request.match_info["session_id"])
    if record is None:
        raise JourneyError("unknown_session", "No such consultation.", 404)
    return record


# --- referrals and attachments ---------------------------------------------------------------


@routes.post("/api/referrals")
@_journey
async def create_referral(request: web.Request) -> web.Response:
    cart = await _cart(request)
    store = request.app[STORE]
    ref = parse_referral(await _body(request), cart, request.app[CONFIG].specialties, time.time())
    await store.call(lambda c: js.insert_referral(c, ref))
    await store.audit(f"cart:{cart.id}", "referral_created", referral=ref.id)
    return web.json_response(referral_json(ref, []), status=201)


@routes.get("/api/referrals")
@_journey
async def list_referrals(request: web.Request) -> web.Response:
    """The clinic's latest referrals, with patient identity (the clinic's own patients)."""
    cart = await _cart(request)
    store = request.app[STORE]
    refs = await store.call(lambda c: js.referrals_of_clinic(c, cart.clinic, 200))
    await store.audit(f"cart:{cart.id}", "referrals_listed", count=len(refs))
    return web.json_response({"referrals": [referral_json(r, []) for r in refs]})


@routes.get("/api/referrals/{referral_id}")
@_journey
async def get_referral(request: web.Request) -> web.Response:
    store = request.app[STORE]
    ref = await readable_referral(store, await _reader(request), request.match_info["referral_id"])
    files = await store.call(lambda c: js.attachments(c, ref.id))
    return web.json_response(referral_json(ref, files))


@routes.post("/api/referrals/{referral_id}/attachments")
@_journey
async def upload_attachment(request: web.Request) -> web.Response:
    """The body is the file itself; its type is decided by its content."""
    cart = await _cart(request)
    store = request.app[STORE]
    ref = await readable_referral(store, cart, request.match_info["referral_id"])
    kind = request.query.get("kind", "other")
    if kind not in ATTACHMENT_KINDS:
        raise JourneyError("invalid_kind", "'kind' is one of: " + ", ".join(ATTACHMENT_KINDS))
    limit = request.app[CONFIG].max_attachment_bytes
    body = await _read_limited(request, limit)
    media_type = detect_content_type(body)
    if media_type is None:
        raise JourneyError(
            "unsupported_type",
            "Attach lab results as PDF, images as JPEG or PNG, or DICOM files; this file "
            "is none of these.",
            415,
        )
    if not claimed_type_agrees(request.headers.get("Content-Type"), media_type):
        raise JourneyError(
            "type_mismatch",
            f"The file says it is {request.headers.get('Content-Type')} but its content is "
            f"{media_type}: re-export or re-scan it.",
            415,
        )
    attachment_id = js.new_id()
    path = (
        request.app[CONFIG].data_dir
        / "attachments"
        / ref.id
        / (attachment_id + EXTENSIONS[media_type])
    )
    await _write_file(path, body)
    item = js.Attachment(
        attachment_id, ref.id, kind, media_type, len(body), hashlib.sha256(body).hexdigest(),
        str(path), time.time(),
    )  # fmt: skip
    await store.call(lambda c: js.insert_attachment(c, item))
    await store.audit(
        f"cart:{cart.id}", "attachment_stored", referral=ref.id, attachment=item.id, size=item.size
    )
    return web.json_response(attachment_json(item), status=201)


@routes.get("/api/attachments/{attachment_id}")
@_journey
async def get_attachment(request: web.Request) -> web.StreamResponse:
    reader = await _reader(request)
    store = request.app[STORE]
    attachment_id = request.match_info["attachment_id"]
    item = await store.call(lambda c: js.attachment(c, attachment_id))
    if item is None:
        await store.audit(reader_id(reader), "attachment_read_refused", attachment=attachment_id)
        raise JourneyError("forbidden", "No such attachment of yours.", 403)
    await readable_referral(store, reader, item.referral_id)
    await store.audit(reader_id(reader), "attachment_read", attachment=item.id)
    name = item.id + EXTENSIONS.get(item.media_type, "")
    return web.FileResponse(
        Path(item.path),
        headers={
            "Content-Type": item.media_type,
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


# --- slots and appointments ------------------------------------------------------------------


@routes.post("/api/slots")
@_journey
async def publish_slot(request: web.Request) -> web.Response:
    specialist = await _specialist(request)
    body = await _body(request)
    slot = await request.app[APPOINTMENT_BOOK].publish_slot(
        specialist, body.get("specialty"), body.get("starts_at"), body.get("duration_min")
    )
    return web.json_response(slot_json(slot), status=201)


@routes.get("/api/slots")
@_journey
async def free_slots(request: web.Request) -> web.Response:
    await _reader(request)
    specialty = request.query.get("specialty", "")
    if specialty not in request.app[CONFIG].specialties:
        raise JourneyError("unknown_specialty", "Give ?specialty= one of the offered ones.")
    slots = await request.app[APPOINTMENT_BOOK].free_slots(specialty, request.query.get("date"))
    return web.json_response({"slots": [slot_json(s) for s in slots]})


@routes.delete("/api/slots/{slot_id}")
@_journey
async def withdraw_slot(request: web.Request) -> web.Response:
    specialist = await _specialist(request)
    await request.app[APPOINTMENT_BOOK].withdraw_slot(specialist, request.match_info["slot_id"])
    return web.json_response({"ok": True})


@routes.post("/api/appointments")
@_journey
async def book_appointment(request: web.Request) -> web.Response:
    cart = await _cart(request)
    body = await _body(request)
    referral_id = body.get("referral_id")
    if not isinstance(referral_id, str):
        raise JourneyError("invalid_booking", "Send 'slot_id' and 'referral_id'.")
    ref = await readable_referral(request.app[STORE], cart, referral_id)
    booked = await request.app[APPOINTMENT_BOOK].book(cart, body.get("slot_id"), ref)
    return web.json_response(appointment_json(booked), status=201)


@routes.get("/api/appointments")
@_journey
async def day_list(request: web.Request) -> web.Response:
    reader = await _reader(request)
    items = await request.app[APPOINTMENT_BOOK].day_list(reader, request.query.get("date"))
    return web.json_response({"appointments": [appointment_json(a) for a in items]})


@routes.get("/api/appointments/{appointment_id}")
@_journey
async def get_appointment(request: web.Request) -> web.Response:
    book = request.app[APPOINTMENT_BOOK]
    found = await book.readable(await _reader(request), request.match_info["appointment_id"])
    return web.json_response(appointment_json(found) | {"events": await book.events(found.id)})


@routes.post("/api/appointments/{appointment_id}/cancel")
@_journey
async def cancel_appointment(request: web.Request) -> web.Response:
    reader = await _reader(request)
    body = await _body(request)
    found = await request.app[APPOINTMENT_BOOK].cancel(
        reader, request.match_info["appointment_id"], body.get("reason")
    )
    return web.json_response(appointment_json(found))


@routes.post("/api/appointments/{appointment_id}/reschedule")
@_journey
async def reschedule_appointment(request: web.Request) -> web.Response:
    reader = await _reader(request)
    body = await _body(request)
    found = await request.app[APPOINTMENT_BOOK].reschedule(
        reader, request.match_info["appointment_id"], body.get("slot_id"), body.get("reason")
    )
    return web.json_response(appointment_json(found))


# --- during and after the consultation -------------------------------------------------------


@routes.put("/api/sessions/{session_id}/referral")
@_journey
async def link_referral(request: web.Request) -> web.Response:
    """An on-demand (urgent) consultation gets its referral, so the specialist sees it."""
    cart = await _cart(request)
    session = await _session(request)
    if session.cart_id != cart.id:
        raise JourneyError("not_in_session", "Not this cart's consultation.", 403)
    body = await _body(request)
    referral_id = body.get("referral_id")
    if not isinstance(referral_id, str):
        raise JourneyError("invalid_json", "Send 'referral_id'.")
    store = request.app[STORE]
    ref = await readable_referral(store, cart, referral_id)
    if await store.call(lambda c: js.appointment_of_session(c, session.id)) is not None:
        raise JourneyError("already_linked", "A booked consultation keeps its referral.", 409)
    await store.call(lambda c: js.link_session_referral(c, session.id, ref.id))
    await store.audit(f"cart:{cart.id}", "referral_linked", session.id, referral=ref.id)
    return web.json_response({"session_id": session.id, "referral_id": ref.id})


@routes.post("/api/sessions/{session_id}/vitals")
@_journey
async def post_vitals(request: web.Request) -> web.Response:
    """The cart's vitals summary; posting again replaces it (safe to retry)."""
    cart = await _cart(request)
    session = await _session(request)
    if session.cart_id != cart.id:
        raise JourneyError("not_in_session", "Not this cart's consultation.", 403)
    readings = _readings((await _body(request)).get("readings"))
    store = request.app[STORE]
    await store.call(lambda c: js.replace_vitals(c, session.id, readings))
    await store.audit(f"cart:{cart.id}", "vitals_stored", session.id, count=len(readings))
    return web.json_response({"session_id": session.id, "stored": len(readings)})


@routes.put("/api/sessions/{session_id}/conclusion")
@_journey
async def put_conclusion(request: web.Request) -> web.Response:
    specialist = await _specialist(request)
    session = await _session(request)
    if session.specialist_id != specialist.id:
        raise JourneyError("not_in_session", "Only this consultation's specialist concludes.", 403)
    body = await _body(request)
    texts = {k: _long_text(body, k, required=k == "conclusion") for k in
             ("conclusion", "recommendations", "notes")}  # fmt: skip
    item = js.Conclusion(
        session.id, specialist.id, texts["conclusion"], texts["recommendations"], texts["notes"],
        time.time(),
    )  # fmt: skip
    store = request.app[STORE]
    await store.call(lambda c: js.save_conclusion(c, item))
    await store.audit(f"specialist:{specialist.id}", "conclusion_saved", session.id)
    return web.json_response({"session_id": session.id, "updated_at": item.updated_at})


@routes.get("/api/sessions/{session_id}/record")
@_journey
async def get_record(request: web.Request) -> web.Response:
    await request.app[APPOINTMENT_BOOK].settle()
    record = await read_record(
        request.app[STORE], await _reader(request), request.match_info["session_id"]
    )
    return web.json_response(record_json(record))


@routes.get("/api/sessions/{session_id}/record.pdf")
@_journey
async def get_record_pdf(request: web.Request) -> web.Response:
    record = await read_record(
        request.app[STORE], await _reader(request), request.match_info["session_id"]
    )
    return web.Response(
        body=await record_pdf(record),
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="record-{record.session.id}.pdf"',
            "Cache-Control": "no-store",
        },
    )


@routes.get("/api/sessions/{session_id}/record.fhir.json")
@_journey
async def get_record_fhir(request: web.Request) -> web.Response:
    record = await read_record(
        request.app[STORE], await _reader(request), request.match_info["session_id"]
    )
    return web.json_response(
        record_bundle(record),
        content_type="application/fhir+json",
        headers={"Cache-Control": "no-store"},
    )


# --- reports -----------------------------------------------------------------------------------


@routes.get("/api/reports/consultations")
@_journey
async def get_report(request: web.Request) -> web.Response:
    """A clinic's report, asked through one of its carts (all clinics: `telecart admin`)."""
    cart = await _cart(request)
    await request.app[APPOINTMENT_BOOK].settle()
    start, end = report_range(request.query.get("from"), request.query.get("to"), time.time())
    rows = await consultation_report(request.app[STORE], start, end, cart.clinic)
    if request.query.get("format") == "csv":
        return web.Response(
            text=report_csv(rows),
            content_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="consultations.csv"'},
        )
    return web.json_response(report_json(rows))


# --- helpers ---------------------------------------------------------------------------------


def _long_text(body: dict[str, Any], key: str, *, required: bool) -> str:
    value = body.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise JourneyError("invalid_conclusion", f"'{key}' must be text" +
                           (" and is required." if required else "."))  # fmt: skip
    if len(value) > MAX_CONCLUSION_CHARS:
        raise JourneyError(
            "invalid_conclusion", f"'{key}' is longer than {MAX_CONCLUSION_CHARS} characters."
        )
    return value.strip()


def _readings(raw: object) -> list[js.VitalReading]:
    if not isinstance(raw, list) or len(raw) > MAX_VITAL_READINGS:
        raise JourneyError(
            "invalid_vitals", f"'readings' must be a list of at most {MAX_VITAL_READINGS}."
        )
    readings = []
    for index, item in enumerate(raw):
        where = f"readings[{index}]"
        if not isinstance(item, dict):
            raise JourneyError("invalid_vitals", f"{where} must be an object.")
        kind, value, unit = item.get("kind"), item.get("value"), item.get("unit")
        if not isinstance(kind, str) or not _KIND.match(kind):
            raise JourneyError("invalid_vitals", f"{where}.kind must be like 'heart_rate'.")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise JourneyError("invalid_vitals", f"{where}.value must be a number.")
        if not isinstance(unit, str) or len(unit) > 20:
            raise JourneyError("invalid_vitals", f"{where}.unit must be text (≤ 20).")
        captured = item.get("captured_at")
        if isinstance(captured, int | float) and not isinstance(captured, bool):
            captured_at = float(captured)
        else:
            captured_at = parse_instant(captured, f"{where}.captured_at")
        readings.append(js.VitalReading(kind, float(value), unit, captured_at))
    return readings


async def _read_limited(request: web.Request, limit: int) -> bytes:
    too_large = JourneyError(
        "too_large", f"Attachments are limited to {limit // (1024 * 1024)} MiB: scan at a lower "
        "resolution or split the file.", 413
    )  # fmt: skip
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _write_file(path: Path, data: bytes) -> None:
    def work() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)

    await asyncio.to_thread(work)
