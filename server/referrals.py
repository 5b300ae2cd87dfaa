"""Referrals as the nurse records them: validation (including the IIN) and who may read one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from telecart.server import journey_store as js
from telecart.server.journey_errors import JourneyError
from telecart.server.store import CartRecord, SpecialistRecord, Store

URGENCIES = ("routine", "urgent")
ATTACHMENT_KINDS = ("lab", "image", "xray", "other")

Reader = CartRecord | SpecialistRecord

_WEIGHTS_FIRST = tuple(range(1, 12))
_WEIGHTS_SECOND = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)
_CENTURY = {"1": 1800, "2": 1800, "3": 1900, "4": 1900, "5": 2000, "6": 2000}


def iin_check_digit(first_eleven: str) -> int | None:
    """The 12th digit of an IIN (public algorithm), or None when no digit can be valid."""
    digits = [int(c) for c in first_eleven]
    total = sum(d * w for d, w in zip(digits, _WEIGHTS_FIRST, strict=True)) % 11
    if total == 10:
        total = sum(d * w for d, w in zip(digits, _WEIGHTS_SECOND, strict=True)) % 11
    return None if total == 10 else total


def iin_birth_date(iin: str) -> dt.date | None:
    """The birth date coded in the IIN (YYMMDD + century digit), or None if it codes none."""
    century = _CENTURY.get(iin[6])
    if century is None:
        return None
    try:
        return dt.date(century + int(iin[0:2]), int(iin[2:4]), int(iin[4:6]))
    except ValueError:
        return None


def validate_iin(iin: str, birth_date: dt.date) -> None:
    """Twelve digits, a correct check digit, and the date it codes is the patient's."""
    if len(iin) != 12 or not iin.isascii() or not iin.isdigit():
        raise JourneyError("invalid_iin", "The IIN must be exactly 12 digits.")
    if iin_check_digit(iin[:11]) != int(iin[11]):
        raise JourneyError(
            "invalid_iin", "The IIN's check digit is wrong: re-read it from the ID card."
        )
    if iin_birth_date(iin) != birth_date:
        raise JourneyError(
            "invalid_iin", "The IIN does not match the date of birth: check both on the ID card."
        )


def _text(body: Mapping[str, Any], key: str, limit: int, *, required: bool = True) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise JourneyError("invalid_referral", f"'{key}' must be text.")
    value = value.strip()
    if required and not value:
        raise JourneyError("invalid_referral", f"'{key}' is required.")
    if len(value) > limit:
        raise JourneyError("invalid_referral", f"'{key}' is longer than {limit} characters.")
    return value


def parse_referral(
    body: object, cart: CartRecord, specialties: tuple[str, ...], now: float
) -> js.Referral:
    """A new referral from the nurse's JSON, or `JourneyError` naming the field to fix."""
    if not isinstance(body, dict):
        raise JourneyError("invalid_referral", "Send the referral as a JSON object.")
    specialty = _text(body, "specialty", 60)
    if specialty not in specialties:
        raise JourneyError(
            "unknown_specialty",
            f"'{specialty}' is not offered here; choose one of: {', '.join(specialties)}.",
        )
    urgency = body.get("urgency", "routine")
    if urgency not in URGENCIES:
        raise JourneyError("invalid_referral", "'urgency' must be 'routine' or 'urgent'.")
    patient = body.get("patient")
    if not isinstance(patient, dict):
        raise JourneyError("invalid_referral", "'patient' with name, birth_date, iin is required.")
    try:
        birth_date = dt.date.fromisoformat(_text(patient, "birth_date", 10))
    except ValueError:
        raise JourneyError(
            "invalid_referral", "'patient.birth_date' must be a date like 1984-03-21."
        ) from None
    if birth_date > dt.datetime.fromtimestamp(now, dt.UTC).date():
        raise JourneyError("invalid_referral", "'patient.birth_date' is in the future.")
    iin = _text(patient, "iin", 12)
    validate_iin(iin, birth_date)
    return js.Referral(
        id=js.new_id(),
        cart_id=cart.id,
        clinic=cart.clinic,
        referral_number=_text(body, "referral_number", 40),
        referring_doctor=_text(body, "referring_doctor", 120),
        specialty=specialty,
        reason=_text(body, "reason", 2000),
        urgency=str(urgency),
        patient=js.Patient(_text(patient, "name", 200), birth_date.isoformat(), iin),
        created_at=now,
    )


def reader_id(reader: Reader) -> str:
    return f"cart:{reader.id}" if isinstance(reader, CartRecord) else f"specialist:{reader.id}"


async def may_read_referral(store: Store, reader: Reader, ref: js.Referral) -> bool:
    """Carts of the referral's clinic, and the specialist booked on it or consulting on it."""
    if isinstance(reader, CartRecord):
        return reader.clinic == ref.clinic
    return await store.call(lambda c: js.specialist_sees_referral(c, reader.id, ref.id))


async def readable_referral(store: Store, reader: Reader, referral_id: str) -> js.Referral:
    """The referral if `reader` may see it; every attempt is audited by referral id only."""
    ref = await store.call(lambda c: js.referral(c, referral_id))
    if ref is None or not await may_read_referral(store, reader, ref):
        await store.audit(reader_id(reader), "referral_read_refused", referral=referral_id)
        raise JourneyError("forbidden", "This referral belongs to another clinic or doctor.", 403)
    await store.audit(reader_id(reader), "referral_read", referral=ref.id)
    return ref


def referral_json(ref: js.Referral, attachments: list[js.Attachment]) -> dict[str, Any]:
    return {
        "referral_id": ref.id,
        "referral_number": ref.referral_number,
        "referring_doctor": ref.referring_doctor,
        "specialty": ref.specialty,
        "reason": ref.reason,
        "urgency": ref.urgency,
        "clinic": ref.clinic,
        "cart_id": ref.cart_id,
        "patient": {
            "name": ref.patient.name,
            "birth_date": ref.patient.birth_date,
            "iin": ref.patient.iin,
        },
        "created_at": ref.created_at,
        "attachments": [attachment_json(a) for a in attachments],
    }


def attachment_json(a: js.Attachment) -> dict[str, Any]:
    return {
        "attachment_id": a.id,
        "kind": a.kind,
        "media_type": a.media_type,
        "size": a.size,
        "sha256": a.sha256,
        "url": f"/api/attachments/{a.id}",
        "created_at": a.created_at,
    }
