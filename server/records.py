"""The consultation record: referral, times, participants, stills, vitals, conclusion.

Who may read one: the session's specialist (booked or accepting), any cart of the cart's
clinic, and administrators through `telecart admin` (server/journey_admin.py). Every read
and every refused read is audited with the session id, never with patient identity.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from telecart.server import journey_store as js
from telecart.server.appointments import appointment_json, iso_local, iso_utc
from telecart.server.journey_errors import JourneyError
from telecart.server.referrals import Reader, attachment_json, reader_id, referral_json
from telecart.server.store import CartRecord, SessionRecord, StillRecord, Store


@dataclass(frozen=True)
class ConsultationRecord:
    session: SessionRecord
    cart_name: str
    clinic: str
    specialist_name: str | None
    events: list[tuple[str, float]]
    referral: js.Referral | None
    attachments: list[js.Attachment]
    appointment: js.Appointment | None
    stills: list[StillRecord]
    vitals: list[js.VitalReading]
    conclusion: js.Conclusion | None


async def assemble_record(store: Store, session_id: str) -> ConsultationRecord | None:
    session = await store.session(session_id)
    if session is None:
        return None
    cart = await store.cart(session.cart_id)
    specialist = await store.specialist(session.specialist_id) if session.specialist_id else None

    def journey_part(
        conn: Any,
    ) -> tuple[
        js.Referral | None,
        list[js.Attachment],
        js.Appointment | None,
        list[js.VitalReading],
        js.Conclusion | None,
    ]:
        referral_id = js.referral_of_session(conn, session_id)
        ref = js.referral(conn, referral_id) if referral_id else None
        files = js.attachments(conn, ref.id) if ref else []
        return (
            ref,
            files,
            js.appointment_of_session(conn, session_id),
            js.vitals(conn, session_id),
            js.conclusion(conn, session_id),
        )

    ref, files, booked, readings, concluded = await store.call(journey_part)
    return ConsultationRecord(
        session=session,
        cart_name=cart.name if cart else "?",
        clinic=cart.clinic if cart else "?",
        specialist_name=specialist.display_name if specialist else None,
        events=await store.session_events(session_id),
        referral=ref,
        attachments=files,
        appointment=booked,
        stills=await store.stills(session_id),
        vitals=readings,
        conclusion=concluded,
    )


def may_read(reader: Reader, record: ConsultationRecord) -> bool:
    if isinstance(reader, CartRecord):
        return reader.clinic == record.clinic
    return reader.id == record.session.specialist_id


async def read_record(store: Store, reader: Reader, session_id: str) -> ConsultationRecord:
    """The record if `reader` may read it; the read or the refusal is audited."""
    record = await assemble_record(store, session_id)
    actor = reader_id(reader)
    if record is None or not may_read(reader, record):
        await store.audit(actor, "record_read_refused", record=session_id)
        raise JourneyError(
            "forbidden", "This consultation record belongs to another clinic or doctor.", 403
        )
    await store.audit(actor, "record_read", session_id, record=session_id)
    return record


def vitals_summary(readings: list[js.VitalReading]) -> list[dict[str, Any]]:
    """Per kind: count, min, max, mean and the last reading, in capture order."""
    by_kind: dict[tuple[str, str], list[js.VitalReading]] = {}
    for reading in readings:
        by_kind.setdefault((reading.kind, reading.unit), []).append(reading)
    summary = []
    for (kind, unit), items in by_kind.items():
        values = [r.value for r in items]
        summary.append(
            {
                "kind": kind,
                "unit": unit,
                "count": len(values),
                "min": min(values),
                "max": max(values),
                "mean": round(statistics.fmean(values), 2),
                "last": values[-1],
                "last_at": iso_utc(items[-1].captured_at),
            }
        )
    return summary


def record_json(record: ConsultationRecord) -> dict[str, Any]:
    s = record.session
    return {
        "session_id": s.id,
        "state": s.state.value,
        "specialty": s.specialty,
        "priority": s.priority,
        "reason": s.reason,
        "cart": {"cart_id": s.cart_id, "name": record.cart_name, "clinic": record.clinic},
        "specialist": (
            {"specialist_id": s.specialist_id, "name": record.specialist_name}
            if s.specialist_id
            else None
        ),
        "times": {
            "requested_at": iso_utc(s.created_at),
            "accepted_at": iso_utc(s.accepted_at) if s.accepted_at else None,
            "ended_at": iso_utc(s.ended_at) if s.ended_at else None,
            "requested_local": iso_local(s.created_at),
        },
        "end_reason": s.end_reason,
        "events": [{"state": state, "at": iso_utc(at)} for state, at in record.events],
        "referral": referral_json(record.referral, []) if record.referral else None,
        "attachments": [attachment_json(a) for a in record.attachments],
        "appointment": appointment_json(record.appointment) if record.appointment else None,
        "stills": [
            {
                "still_id": still.id,
                "media_type": still.media_type,
                "sha256": still.sha256,
                "size": still.size,
                "url": f"/api/stills/{still.id}",
                "taken_at": iso_utc(still.created_at),
            }
            for still in record.stills
        ],
        "vitals": vitals_summary(record.vitals),
        "conclusion": (
            {
                "conclusion": record.conclusion.conclusion,
                "recommendations": record.conclusion.recommendations,
                "notes": record.conclusion.notes,
                "updated_at": iso_utc(record.conclusion.updated_at),
            }
            if record.conclusion
            else None
        ),
    }
