"""Slots and appointments: race-safe booking, local time, cancel/reschedule, day lists."""

from __future__ import annotations

import asyncio

from tests.journey.conftest import Journey, booked_appointment, referral_body, soon


async def test_two_nurses_racing_for_one_slot_get_exactly_one_booking(journey: Journey) -> None:
    spec = await journey.specialist("amir")
    slot = await spec.call(
        "POST",
        "/api/slots",
        {"specialty": "cardiology", "starts_at": soon(3600), "duration_min": 20},
        status=201,
    )
    nurses = [await journey.nurse(f"cart-{i}", clinic=f"clinic {i}") for i in range(2)]
    refs = [await n.call("POST", "/api/referrals", referral_body(), status=201) for n in nurses]

    async def attempt(nurse, ref):  # type: ignore[no-untyped-def]
        async with nurse.http.post(
            nurse.base + "/api/appointments",
            json={"slot_id": slot["slot_id"], "referral_id": ref["referral_id"]},
        ) as resp:
            return resp.status, await resp.json()

    results = await asyncio.gather(*(attempt(n, r) for n, r in zip(nurses, refs, strict=True)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 409]
    loser = next(body for status, body in results if status == 409)
    assert loser["error"] == "slot_taken"
    free = await nurses[0].call("GET", f"/api/slots?specialty=cardiology&date={soon(3600)[:10]}")
    assert slot["slot_id"] not in [s["slot_id"] for s in free["slots"]]


async def test_one_referral_cannot_hold_two_appointments(journey: Journey) -> None:
    spec = await journey.specialist("amir")
    nurse = await journey.nurse("cart-1")
    _, ref, _ = await booked_appointment(journey, nurse, spec)
    other = await spec.call(
        "POST",
        "/api/slots",
        {"specialty": "cardiology", "starts_at": soon(7200), "duration_min": 20},
        status=201,
    )
    refused = await nurse.call(
        "POST",
        "/api/appointments",
        {"slot_id": other["slot_id"], "referral_id": ref["referral_id"]},
        status=409,
    )
    assert refused["error"] == "referral_already_booked"


async def test_late_evening_slot_is_listed_under_its_kazakhstan_date(journey: Journey) -> None:
    spec = await journey.specialist("amir")
    # 23:30 local on 30 June is 18:30 UTC the same day; 02:00 local on 1 July is 21:00 UTC
    # on 30 June: each belongs to its *local* date.
    late = await spec.call(
        "POST",
        "/api/slots",
        {"specialty": "cardiology", "starts_at": "2030-06-30T23:30:00+05:00", "duration_min": 30},
        status=201,
    )
    early = await spec.call(
        "POST",
        "/api/slots",
        {"specialty": "cardiology", "starts_at": "2030-06-30T21:00:00Z", "duration_min": 30},
        status=201,
    )
    assert late["starts_at"] == "2030-06-30T18:30:00Z"
    assert late["starts_local"] == "2030-06-30T23:30:00+05:00"
    assert late["ends_local"] == "2030-07-01T00:00:00+05:00"
    assert early["starts_local"] == "2030-07-01T02:00:00+05:00"
    june30 = await spec.call("GET", "/api/slots?specialty=cardiology&date=2030-06-30")
    july1 = await spec.call("GET", "/api/slots?specialty=cardiology&date=2030-07-01")
    assert [s["slot_id"] for s in june30["slots"]] == [late["slot_id"]]
    assert [s["slot_id"] for s in july1["slots"]] == [early["slot_id"]]


async def test_times_without_offset_and_past_times_are_refused(journey: Journey) -> None:
    spec = await journey.specialist("amir")
    naive = await spec.call(
        "POST",
        "/api/slots",
        {"specialty": "cardiology", "starts_at": "2030-06-30T10:00:00", "duration_min": 30},
        status=400,
    )
    assert naive["error"] == "invalid_time" and "offset" in naive["message"]
    past = await spec.call(
        "POST",
        "/api/slots",
        {"specialty": "cardiology", "starts_at": "2020-06-30T10:00:00+05:00", "duration_min": 30},
        status=400,
    )
    assert past["error"] == "invalid_slot"


async def test_overlapping_slots_of_one_specialist_are_refused(journey: Journey) -> None:
    spec = await journey.specialist("amir")
    body = {"specialty": "cardiology", "starts_at": "2030-06-30T10:00:00+05:00", "duration_min": 30}
    await spec.call("POST", "/api/slots", body, status=201)
    clash = body | {"starts_at": "2030-06-30T05:15:00Z"}
    assert (await spec.call("POST", "/api/slots", clash, status=409))["error"] == "slot_overlap"


async def test_both_sides_see_the_booking_in_their_day_list(journey: Journey) -> None:
    spec = await journey.specialist("amir")
    nurse = await journey.nurse("cart-1")
    slot, _ref, appt = await booked_appointment(journey, nurse, spec, start_in_s=3600)
    day = slot["starts_local"][:10]
    for api in (spec, nurse):
        listed = await api.call("GET", f"/api/appointments?date={day}")
        assert [a["appointment_id"] for a in listed["appointments"]] == [appt["appointment_id"]]
        assert "patient" not in listed["appointments"][0]
    other_clinic = await journey.nurse("cart-far", clinic="Other clinic")
    assert (await other_clinic.call("GET", f"/api/appointments?date={day}"))["appointments"] == []


async def test_cancel_needs_a_reason_and_frees_the_slot(journey: Journey) -> None:
    spec = await journey.specialist("amir")
    nurse = await journey.nurse("cart-1")
    slot, _, appt = await booked_appointment(journey, nurse, spec, start_in_s=3600)
    path = f"/api/appointments/{appt['appointment_id']}/cancel"
    assert (await nurse.call("POST", path, {}, status=400))["error"] == "reason_required"
    cancelled = await spec.call("POST", path, {"reason": "Specialist ill"})
    assert cancelled["state"] == "cancelled" and cancelled["cancel_reason"] == "Specialist ill"
    free = await nurse.call(
        "GET", f"/api/slots?specialty=cardiology&date={slot['starts_local'][:10]}"
    )
    assert slot["slot_id"] in [s["slot_id"] for s in free["slots"]]


async def test_reschedule_moves_the_appointment_and_records_why(journey: Journey) -> None:
    spec = await journey.specialist("amir")
    nurse = await journey.nurse("cart-1")
    old_slot, _, appt = await booked_appointment(journey, nurse, spec, start_in_s=3600)
    new_slot = await spec.call(
        "POST",
        "/api/slots",
        {"specialty": "cardiology", "starts_at": soon(7200), "duration_min": 30},
        status=201,
    )
    moved = await nurse.call(
        "POST",
        f"/api/appointments/{appt['appointment_id']}/reschedule",
        {"slot_id": new_slot["slot_id"], "reason": "Road closed by snow"},
    )
    assert moved["slot_id"] == new_slot["slot_id"]
    assert moved["starts_at"] == new_slot["starts_at"]
    detail = await spec.call("GET", f"/api/appointments/{appt['appointment_id']}")
    assert [e["action"] for e in detail["events"]] == ["booked", "rescheduled"]
    assert detail["events"][1]["reason"] == "Road closed by snow"
    free = await nurse.call(
        "GET", f"/api/slots?specialty=cardiology&date={old_slot['starts_local'][:10]}"
    )
    assert old_slot["slot_id"] in [s["slot_id"] for s in free["slots"]]


async def test_unattended_appointment_becomes_a_cart_no_show(journey: Journey) -> None:
    spec = await journey.specialist("amir")
    nurse = await journey.nurse("cart-1")
    _slot, _, appt = await booked_appointment(journey, nurse, spec, start_in_s=600)
    start = journey.book.clock()
    journey.book.clock = lambda: start + 600 + journey.book.grace_s + 1
    detail = await spec.call("GET", f"/api/appointments/{appt['appointment_id']}")
    assert detail["state"] == "no_show" and detail["no_show_side"] == "cart"
    audit = await journey.server.store.audit_entries()
    assert any(e.action == "appointment_no_show" and e.detail["side"] == "cart" for e in audit)
