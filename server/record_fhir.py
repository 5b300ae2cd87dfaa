"""The consultation record as a FHIR R4 `collection` Bundle for a national repository.

Resources: Patient, Practitioner, Organization (the clinic), ServiceRequest (the referral),
Encounter (class VR, virtual), one Observation per vital reading (LOINC-coded where the
kind is known), one DocumentReference per still and one for the written conclusion.
Ids are UUIDv5 of the session, so exporting a record twice gives the same resource ids.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from telecart.server.appointments import iso_utc
from telecart.server.records import ConsultationRecord

IIN_SYSTEM = "urn:telecart:kz:iin"
REFERRAL_SYSTEM = "urn:telecart:kz:referral-number"
SPECIALIST_SYSTEM = "urn:telecart:specialist"
SHA256_SYSTEM = "urn:telecart:sha256"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

# kind -> (LOINC code, display, UCUM unit the value must be in to carry the UCUM code)
VITAL_CODES: dict[str, tuple[str, str, str]] = {
    "heart_rate": ("8867-4", "Heart rate", "/min"),
    "spo2": ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%"),
    "temperature": ("8310-5", "Body temperature", "Cel"),
    "respiratory_rate": ("9279-1", "Respiratory rate", "/min"),
    "systolic_bp": ("8480-6", "Systolic blood pressure", "mm[Hg]"),
    "diastolic_bp": ("8462-4", "Diastolic blood pressure", "mm[Hg]"),
    "weight": ("29463-7", "Body weight", "kg"),
}
_UNIT_ALIASES = {"bpm": "/min", "°C": "Cel", "C": "Cel", "mmHg": "mm[Hg]", "breaths/min": "/min"}


def _uid(record: ConsultationRecord, *parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "telecart:" + ":".join((record.session.id, *parts))))


def _ref(resource_id: str) -> dict[str, str]:
    return {"reference": f"urn:uuid:{resource_id}"}


def record_bundle(record: ConsultationRecord) -> dict[str, Any]:
    """Plain JSON (dict) of the Bundle; structure checked by the tests with fhir.resources."""
    s = record.session
    ids = {k: _uid(record, k) for k in ("patient", "practitioner", "org", "referral", "enc")}
    resources: list[dict[str, Any]] = []
    ref = record.referral
    subject: dict[str, str] | None = None
    if ref is not None:
        subject = _ref(ids["patient"])
        resources.append(
            {
                "resourceType": "Patient",
                "id": ids["patient"],
                "identifier": [{"system": IIN_SYSTEM, "value": ref.patient.iin}],
                "name": [{"text": ref.patient.name}],
                "birthDate": ref.patient.birth_date,
            }
        )
    resources.append(
        {
            "resourceType": "Organization",
            "id": ids["org"],
            "name": record.clinic,
        }
    )
    if s.specialist_id is not None:
        resources.append(
            {
                "resourceType": "Practitioner",
                "id": ids["practitioner"],
                "identifier": [{"system": SPECIALIST_SYSTEM, "value": s.specialist_id}],
                "name": [{"text": record.specialist_name or s.specialist_id}],
            }
        )
    if ref is not None and subject is not None:
        resources.append(
            {
                "resourceType": "ServiceRequest",
                "id": ids["referral"],
                "identifier": [{"system": REFERRAL_SYSTEM, "value": ref.referral_number}],
                "status": "completed" if record.conclusion else "active",
                "intent": "order",
                "priority": "urgent" if ref.urgency == "urgent" else "routine",
                "category": [{"text": ref.specialty}],
                "subject": subject,
                "authoredOn": iso_utc(ref.created_at),
                "requester": {"display": ref.referring_doctor},
                "reasonCode": [{"text": ref.reason}],
            }
        )
    resources.append(_encounter(record, ids, subject))
    encounter = _ref(ids["enc"])
    for index, reading in enumerate(record.vitals):
        resources.append(_observation(record, index, reading, subject, encounter))
    for still in record.stills:
        resources.append(
            _document(
                _uid(record, "still", still.id),
                "Still image from the consultation",
                {
                    "contentType": still.media_type,
                    "url": f"/api/stills/{still.id}",
                    "size": still.size,
                    "creation": iso_utc(still.created_at),
                    "title": f"still {still.id}",
                },
                still.created_at,
                subject,
                encounter,
                {"system": SHA256_SYSTEM, "value": still.sha256},
            )
        )
    if record.conclusion is not None:
        c = record.conclusion
        text = f"Conclusion:\n{c.conclusion}\n\nRecommendations:\n{c.recommendations}\n"
        resources.append(
            _document(
                _uid(record, "conclusion"),
                "Specialist's conclusion",
                {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(text.encode()).decode(),
                    "creation": iso_utc(c.updated_at),
                    "title": "Conclusion and recommendations",
                },
                c.updated_at,
                subject,
                encounter,
                None,
            )
        )
    return {
        "resourceType": "Bundle",
        "id": _uid(record, "bundle"),
        "type": "collection",
        "timestamp": iso_utc(s.ended_at or s.created_at),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


def _encounter(
    record: ConsultationRecord, ids: dict[str, str], subject: dict[str, str] | None
) -> dict[str, Any]:
    s = record.session
    period: dict[str, str] = {"start": iso_utc(s.accepted_at or s.created_at)}
    if s.ended_at is not None:
        period["end"] = iso_utc(s.ended_at)
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": ids["enc"],
        "status": "finished" if s.ended_at is not None else "in-progress",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "VR",
            "display": "virtual",
        },
        "serviceType": {"text": s.specialty},
        "period": period,
        "reasonCode": [{"text": s.reason}] if s.reason else [],
        "serviceProvider": _ref(ids["org"]),
    }
    if subject is not None:
        encounter["subject"] = subject
        encounter["basedOn"] = [_ref(ids["referral"])]
    if s.specialist_id is not None:
        encounter["participant"] = [{"individual": _ref(ids["practitioner"])}]
    if not encounter["reasonCode"]:
        del encounter["reasonCode"]
    return encounter


def _observation(
    record: ConsultationRecord,
    index: int,
    reading: Any,
    subject: dict[str, str] | None,
    encounter: dict[str, str],
) -> dict[str, Any]:
    known = VITAL_CODES.get(reading.kind)
    unit = _UNIT_ALIASES.get(reading.unit, reading.unit)
    code: dict[str, Any] = {"text": reading.kind.replace("_", " ")}
    quantity: dict[str, Any] = {"value": reading.value, "unit": reading.unit}
    if known is not None:
        code["coding"] = [{"system": LOINC, "code": known[0], "display": known[1]}]
        if unit == known[2]:
            quantity |= {"system": UCUM, "code": unit}
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": _uid(record, "vital", str(index)),
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                        "display": "Vital Signs",
                    }
                ]
            }
        ],
        "code": code,
        "encounter": encounter,
        "effectiveDateTime": iso_utc(reading.captured_at),
        "valueQuantity": quantity,
    }
    if subject is not None:
        observation["subject"] = subject
    return observation


def _document(
    resource_id: str,
    kind: str,
    attachment: dict[str, Any],
    at: float,
    subject: dict[str, str] | None,
    encounter: dict[str, str],
    master: dict[str, str] | None,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": resource_id,
        "status": "current",
        "type": {"text": kind},
        "date": iso_utc(at),
        "content": [{"attachment": attachment}],
        "context": {"encounter": [encounter]},
    }
    if master is not None:
        document["masterIdentifier"] = master
    if subject is not None:
        document["subject"] = subject
    return document
