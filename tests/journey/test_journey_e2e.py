"""The whole patient journey over HTTP + WebSocket, and who may read its record."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from fhir.resources.R4B.bundle import Bundle
from pypdf import PdfReader

from telecart.server.admin import AdminError
from telecart.server.journey_admin import export_record, write_report
from telecart.signalling.client import SignallingClient
from telecart.signalling.errors import ErrorCode
from telecart.signalling.messages import (
    Error,
    Hangup,
    MediaState,
    QueueUpdate,
    RequestConsultation,
    SessionUpdate,
)
from telecart.signalling.session_state import SessionState
from tests.journey.conftest import (
    BIRTH_DATE,
    PATIENT_IIN,
    PATIENT_NAME,
    Api,
    Journey,
    booked_appointment,
)
from tests.server.harness import next_of

LAB_PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _jpeg() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
    assert ok
    return bytes(data)


async def _connect(journey: Journey, api: Api, role: str) -> SignallingClient:
    client = SignallingClient(
        journey.server.ws_url,
        role=role,
        token=api.token,
        cookies=api.cookies,
    )
    journey.server.clients.append(client)
    await client.connect()
    return client


async def _until_state(client: SignallingClient, state: SessionState) -> SessionUpdate:
    while True:
        update = await next_of(client, SessionUpdate)
        assert isinstance(update, SessionUpdate)
        if update.session.state is state:
            return update


async def test_referral_to_booking_to_consultation_to_conclusion_to_export(
    journey: Journey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    nurse = await journey.nurse("aral-cart-1")
    spec = await journey.specialist("amir", "cardiology")

    # Referral with a lab result, booked on the specialist's slot.
    _slot, ref, appt = await booked_appointment(journey, nurse, spec, start_in_s=300)
    await nurse.call(
        "POST",
        f"/api/referrals/{ref['referral_id']}/attachments?kind=lab",
        data=LAB_PDF,
        status=201,
    )

    # Before the consultation the booked specialist sees the referral and its attachment.
    seen = await spec.call("GET", f"/api/referrals/{ref['referral_id']}")
    assert seen["patient"]["name"] == PATIENT_NAME and len(seen["attachments"]) == 1
    assert await spec.call("GET", seen["attachments"][0]["url"]) == LAB_PDF

    # At the booked time the cart starts it straight to the booked specialist: no queue.
    doctor = await _connect(journey, spec, "specialist")
    await next_of(doctor, QueueUpdate)
    cart = await _connect(journey, nurse, "cart")
    await cart.send(
        RequestConsultation(specialty="cardiology", appointment_id=appt["appointment_id"])
    )
    started = await _until_state(cart, SessionState.ACCEPTED)
    notified = await _until_state(doctor, SessionState.ACCEPTED)
    session_id = started.session.session_id
    assert notified.session.session_id == session_id
    assert started.session.specialist_name == "Dr amir"
    events = await journey.server.store.session_events(session_id)
    assert [state for state, _ in events] == ["requested", "accepted"]

    # The call goes live, a still is taken, the call ends, the cart posts its vitals.
    await cart.send(MediaState(session_id=session_id, state="connecting"))
    await _until_state(doctor, SessionState.CONNECTING)
    await cart.send(MediaState(session_id=session_id, state="connected"))
    await _until_state(doctor, SessionState.LIVE)
    await nurse.call("POST", f"/api/sessions/{session_id}/stills", data=_jpeg(), status=201)
    await doctor.send(Hangup(session_id=session_id))
    await _until_state(cart, SessionState.ENDED)
    now = time.time()
    readings = [
        {"kind": "heart_rate", "value": 88, "unit": "/min", "captured_at": now - 120},
        {"kind": "heart_rate", "value": 92, "unit": "/min", "captured_at": now - 60},
        {"kind": "spo2", "value": 97, "unit": "%", "captured_at": "2030-01-01T10:00:00+05:00"},
    ]
    await nurse.call("POST", f"/api/sessions/{session_id}/vitals", {"readings": readings})

    # The specialist writes the conclusion.
    await spec.call(
        "PUT",
        f"/api/sessions/{session_id}/conclusion",
        {
            "conclusion": "Пароксизмальная тахикардия",
            "recommendations": "Holter ECG, bisoprolol",
            "notes": "Review in 2 weeks",
        },
    )
    await nurse.call(
        "PUT", f"/api/sessions/{session_id}/conclusion", {"conclusion": "x"}, status=403
    )

    # The record, for the family doctor (PDF) and the national repository (FHIR).
    record = await nurse.call("GET", f"/api/sessions/{session_id}/record")
    assert record["referral"]["referral_id"] == ref["referral_id"]
    assert record["appointment"]["state"] == "completed"
    assert record["vitals"][0] == record["vitals"][0] | {
        "kind": "heart_rate",
        "count": 2,
        "last": 92.0,
    }
    assert len(record["stills"]) == 1 and record["conclusion"]["notes"] == "Review in 2 weeks"

    pdf = await nurse.call("GET", f"/api/sessions/{session_id}/record.pdf")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    for expected in (PATIENT_NAME, PATIENT_IIN, "Пароксизмальная тахикардия", "KZ-2030-000123"):
        assert expected in text

    bundle = await spec.call("GET", f"/api/sessions/{session_id}/record.fhir.json")
    parsed = Bundle.model_validate(bundle)
    kinds = [entry.resource.get_resource_type() for entry in parsed.entry or []]
    assert kinds.count("Observation") == 3 and kinds.count("DocumentReference") == 2
    assert {"Patient", "Encounter", "Practitioner", "ServiceRequest"} <= set(kinds)
    encounter = next(
        e.resource for e in parsed.entry or [] if e.resource.get_resource_type() == "Encounter"
    )
    assert encounter.status == "finished" and encounter.class_fhir.code == "VR"

    # The manager's report counts it as a booked consultation with its waiting time.
    csv_text = (await nurse.call("GET", "/api/reports/consultations?format=csv")).decode()
    header, row = csv_text.splitlines()
    values = dict(zip(header.split(","), row.split(","), strict=True))
    assert values["consultations"] == "1" and values["booked"] == "1"
    assert values["with_referral"] == "1"

    # Patient identity never reached the logs, the metrics or the audit log.
    metrics = (await nurse.call("GET", "/metrics")).decode()
    audit = [repr(e) for e in await journey.server.store.audit_entries()]
    for secret in (PATIENT_NAME, PATIENT_IIN, BIRTH_DATE.isoformat()):
        assert secret not in caplog.text
        assert secret not in metrics
        assert not any(secret in line for line in audit)
    assert any("record_read" in line for line in audit)


async def test_other_clinics_record_read_is_refused_and_audited(journey: Journey) -> None:
    nurse = await journey.nurse("aral-cart-1")
    spec = await journey.specialist("amir", "cardiology")
    _, _, appt = await booked_appointment(journey, nurse, spec, start_in_s=300)
    cart = await _connect(journey, nurse, "cart")
    await cart.send(
        RequestConsultation(specialty="cardiology", appointment_id=appt["appointment_id"])
    )
    session_id = (await _until_state(cart, SessionState.ACCEPTED)).session.session_id

    stranger = await journey.nurse("far-cart", clinic="Kyzylorda clinic")
    other_doctor = await journey.specialist("dana", "cardiology")
    for api in (stranger, other_doctor):
        for suffix in ("", ".pdf", ".fhir.json"):
            refused = await api.call(
                "GET", f"/api/sessions/{session_id}/record{suffix}", status=403
            )
            assert refused["error"] == "forbidden"
    same_clinic = await journey.nurse("aral-cart-2")
    await same_clinic.call("GET", f"/api/sessions/{session_id}/record")
    entries = await journey.server.store.audit_entries()
    refusals = [e for e in entries if e.action == "record_read_refused"]
    assert len(refusals) == 6 and all(e.detail["record"] == session_id for e in refusals)
    assert sorted(e.actor.split(":")[0] for e in refusals) == ["cart"] * 3 + ["specialist"] * 3
    assert [e.action for e in entries].count("record_read") == 1


async def test_booked_consultation_started_too_early_is_refused_with_the_time(
    journey: Journey,
) -> None:
    nurse = await journey.nurse("aral-cart-1")
    spec = await journey.specialist("amir", "cardiology")
    _, _, appt = await booked_appointment(journey, nurse, spec, start_in_s=2 * 3600)
    cart = await _connect(journey, nurse, "cart")
    await cart.send(
        RequestConsultation(specialty="cardiology", appointment_id=appt["appointment_id"])
    )
    refused = await next_of(cart, Error)
    assert isinstance(refused, Error)
    assert refused.code is ErrorCode.OUTSIDE_BOOKING_WINDOW
    assert "UTC+5" in refused.message and "start it from" in refused.message
    stranger_cart = await _connect(journey, await journey.nurse("far", clinic="Other"), "cart")
    await stranger_cart.send(
        RequestConsultation(specialty="cardiology", appointment_id=appt["appointment_id"])
    )
    assert (await next_of(stranger_cart, Error)).code is ErrorCode.UNKNOWN_APPOINTMENT


async def test_admin_exports_any_record_and_the_all_clinics_report(
    journey: Journey, tmp_path: Path
) -> None:
    nurse = await journey.nurse("aral-cart-1")
    spec = await journey.specialist("amir", "cardiology")
    _, _, appt = await booked_appointment(journey, nurse, spec, start_in_s=300)
    cart = await _connect(journey, nurse, "cart")
    await cart.send(
        RequestConsultation(specialty="cardiology", appointment_id=appt["appointment_id"])
    )
    session_id = (await _until_state(cart, SessionState.ACCEPTED)).session.session_id
    config = journey.server.config
    pdf, fhir = tmp_path / "record.pdf", tmp_path / "record.json"
    await export_record(config, session_id, pdf, fhir)
    assert PdfReader(pdf).pages and Bundle.model_validate_json(fhir.read_text()).entry
    report = await write_report(config, None, None, None)
    assert report.splitlines()[1].startswith(time.strftime("%Y-"))
    with pytest.raises(AdminError):
        await export_record(config, "no-such-session", pdf, None)
    actions = [e.action for e in await journey.server.store.audit_entries()]
    assert {"record_read", "record_read_refused", "report_exported"} <= set(actions)
