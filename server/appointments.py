"""Booking: published slots, race-safe appointments, the start window, no-shows, local time.

Times are stored as UTC epoch seconds and shown in Kazakhstan time (UTC+5 since March 2024).
`LOCAL_TZ` is the tz database's Asia/Almaty when it already knows the single UTC+5 zone,
else a fixed UTC+05:00, so an out-of-date tzdata cannot show times an hour off.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Collection
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telecart.server import journey_store as js
from telecart.server.journey_errors import JourneyError
from telecart.server.referrals import Reader, reader_id
from telecart.server.store import CartRecord, SessionRecord, SpecialistRecord, Store
from telecart.signalling.errors import ErrorCode, ProtocolError

log = logging.getLogger(__name__)

FIXED_UTC5 = dt.timezone(dt.timedelta(hours=5), "UTC+05")
MIN_SLOT_MIN = 5
MAX_SLOT_MIN = 240


def _kazakhstan_zone() -> dt.tzinfo:
    try:
        zone = ZoneInfo("Asia/Almaty")
    except ZoneInfoNotFoundError:
        return FIXED_UTC5
    if dt.datetime(2025, 1, 15, tzinfo=zone).utcoffset() == dt.timedelta(hours=5):
        return zone
    return FIXED_UTC5


LOCAL_TZ = _kazakhstan_zone()


def parse_instant(text: object, field: str) -> float:
    """An ISO-8601 time *with* an offset (`2030-06-30T10:00+05:00`, `...Z`) as epoch seconds."""
    if not isinstance(text, str):
        raise JourneyError("invalid_time", f"'{field}' must be an ISO-8601 time text.")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise JourneyError(
            "invalid_time", f"'{field}' is not a time like 2030-06-30T10:00+05:00."
        ) from None
    if moment.tzinfo is None:
        raise JourneyError(
            "invalid_time", f"'{field}' needs its UTC offset, e.g. 2030-06-30T10:00+05:00."
        )
    return moment.timestamp()


def local_day(date_text: str | None, now: float) -> tuple[float, float]:
    """Start and end (epoch seconds) of a calendar day in Kazakhstan time; default today."""
    if date_text:
        try:
            day = dt.date.fromisoformat(date_text)
        except ValueError:
            raise JourneyError("invalid_time", "'date' must be a date like 2030-06-30.") from None
    else:
        day = dt.datetime.fromtimestamp(now, LOCAL_TZ).date()
    start = dt.datetime.combine(day, dt.time(0), LOCAL_TZ)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), LOCAL_TZ)
    return start.timestamp(), end.timestamp()


def iso_utc(ts: float) -> str:
    return (
        dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def iso_local(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, LOCAL_TZ).isoformat(timespec="seconds")


def local_clock(ts: float) -> str:
    """`14:30` in Kazakhstan time, for messages a nurse reads."""
    return dt.datetime.fromtimestamp(ts, LOCAL_TZ).strftime("%H:%M")


def times_json(starts_at: float, ends_at: float) -> dict[str, Any]:
    return {
        "starts_at": iso_utc(starts_at),
        "ends_at": iso_utc(ends_at),
        "starts_local": iso_local(starts_at),
        "ends_local": iso_local(ends_at),
    }


def slot_json(slot: js.Slot) -> dict[str, Any]:
    return {
        "slot_id": slot.id,
        "specialist_id": slot.specialist_id,
        "specialty": slot.specialty,
        "booked": slot.appointment_id is not None,
    } | times_json(slot.starts_at, slot.ends_at)


def appointment_json(a: js.Appointment) -> dict[str, Any]:
    """No patient identity here: day lists show ids; the referral itself is a separate read."""
    return {
        "appointment_id": a.id,
        "slot_id": a.slot_id,
        "referral_id": a.referral_id,
        "cart_id": a.cart_id,
        "clinic": a.clinic,
        "specialist_id": a.specialist_id,
        "specialty": a.specialty,
        "state": a.state,
        "session_id": a.session_id,
        "no_show_side": a.no_show_side,
        "cancel_reason": a.cancel_reason,
        "created_at": a.created_at,
    } | times_json(a.starts_at, a.ends_at)


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise JourneyError("reason_required", "Give a reason (the other side will see it).")
    if len(reason) > 500:
        raise JourneyError("reason_required", "The reason is longer than 500 characters.")
    return reason.strip()


class AppointmentBook:
    """Slots and appointments over the store; `clock` is the one source of 'now' for both."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.time,
        grace_s: float = 15 * 60,
        early_s: float = 15 * 60,
    ) -> None:
        self._store = store
        self.clock = clock
        self.grace_s = grace_s
        self.early_s = early_s

    # --- slots -------------------------------------------------------------------------

    async def publish_slot(
        self, specialist: SpecialistRecord, specialty: object, starts_at: object, minutes: object
    ) -> js.Slot:
        if not isinstance(specialty, str) or specialty not in specialist.specialties:
            raise JourneyError(
                "unknown_specialty",
                "Publish slots only for your specialties: " + ", ".join(specialist.specialties),
            )
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise JourneyError("invalid_slot", "'duration_min' must be a whole number.")
        if not MIN_SLOT_MIN <= minutes <= MAX_SLOT_MIN:
            raise JourneyError(
                "invalid_slot", f"A slot lasts {MIN_SLOT_MIN} to {MAX_SLOT_MIN} minutes."
            )
        start = parse_instant(starts_at, "starts_at")
        now = self.clock()
        if start <= now:
            raise JourneyError("invalid_slot", "This time has already passed.")
        slot = js.Slot(js.new_id(), specialist.id, specialty, start, start + minutes * 60, None)
        await self._store.call(lambda c: js.insert_slot(c, slot, now))
        await self._store.audit(f"specialist:{specialist.id}", "slot_published", slot=slot.id)
        return slot

    async def withdraw_slot(self, specialist: SpecialistRecord, slot_id: str) -> None:
        if not await self._store.call(lambda c: js.withdraw_slot(c, slot_id, specialist.id)):
            raise JourneyError(
                "slot_not_free", "Only your own free slots can be withdrawn; cancel a booking.", 409
            )
        await self._store.audit(f"specialist:{specialist.id}", "slot_withdrawn", slot=slot_id)

    async def free_slots(self, specialty: str, date_text: str | None) -> list[js.Slot]:
        now = self.clock()
        start, end = local_day(date_text, now)
        return await self._store.call(lambda c: js.free_slots(c, specialty, start, end, now))

    # --- appointments --------------------------------------------------------------------

    async def book(self, cart: CartRecord, slot_id: object, ref: js.Referral) -> js.Appointment:
        if not isinstance(slot_id, str):
            raise JourneyError("invalid_booking", "Send 'slot_id' and 'referral_id'.")
        if ref.clinic != cart.clinic:
            raise JourneyError("forbidden", "This referral belongs to another clinic.", 403)
        now = self.clock()
        booked = await self._store.call(lambda c: js.book(c, slot_id, ref, cart.id, now))
        await self._store.audit(
            f"cart:{cart.id}", "appointment_booked", appointment=booked.id, referral=ref.id
        )
        return booked

    async def readable(self, reader: Reader, appointment_id: str) -> js.Appointment:
        await self.settle()
        found = await self._store.call(lambda c: js.appointment(c, appointment_id))
        if found is None or not _may_see(reader, found):
            raise JourneyError("unknown_appointment", "No such appointment of yours.", 404)
        return found

    async def cancel(self, reader: Reader, appointment_id: str, reason: object) -> js.Appointment:
        found = await self.readable(reader, appointment_id)
        why = _reason(reason)
        actor = reader_id(reader)
        await self._store.call(lambda c: js.cancel(c, found.id, actor, why, self.clock()))
        await self._store.audit(actor, "appointment_cancelled", appointment=found.id)
        return await self.readable(reader, appointment_id)

    async def reschedule(
        self, reader: Reader, appointment_id: str, slot_id: object, reason: object
    ) -> js.Appointment:
        found = await self.readable(reader, appointment_id)
        why = _reason(reason)
        if not isinstance(slot_id, str):
            raise JourneyError("invalid_booking", "Send the new 'slot_id' and a 'reason'.")
        actor = reader_id(reader)
        now = self.clock()
        await self._store.call(lambda c: js.reschedule(c, found, slot_id, actor, why, now))
        await self._store.audit(actor, "appointment_rescheduled", appointment=found.id)
        return await self.readable(reader, appointment_id)

    async def day_list(self, reader: Reader, date_text: str | None) -> list[js.Appointment]:
        await self.settle()
        start, end = local_day(date_text, self.clock())
        if isinstance(reader, CartRecord):
            return await self._store.call(
                lambda c: js.appointments_between(c, start, end, clinic=reader.clinic)
            )
        return await self._store.call(
            lambda c: js.appointments_between(c, start, end, specialist_id=reader.id)
        )

    async def events(self, appointment_id: str) -> list[dict[str, Any]]:
        return await self._store.call(lambda c: js.appointment_events(c, appointment_id))

    async def settle(self) -> None:
        """Record no-shows and completed visits that the clock has decided (evaluated lazily)."""
        now = self.clock()
        missed = await self._store.call(lambda c: js.settle(c, now, self.grace_s))
        for appointment_id, side in missed:
            await self._store.audit("system", "appointment_no_show", appointment=appointment_id,
                                    side=side)  # fmt: skip
            log.info("appointment %s: no-show of the %s", appointment_id, side)

    # --- the consultation at the booked time (called by ConsultationRouter) ---------------

    async def start(
        self, appointment_id: str, cart_id: str, clinic: str, busy: Collection[str]
    ) -> SessionRecord:
        """Open the booked consultation, already accepted by the booked specialist."""
        await self.settle()
        found = await self._store.call(lambda c: js.appointment(c, appointment_id))
        if found is None or found.clinic != clinic:
            raise ProtocolError(
                ErrorCode.UNKNOWN_APPOINTMENT,
                "No such appointment for this clinic: check the day list.",
            )
        if found.state != "booked":
            raise ProtocolError(ErrorCode.INVALID_STATE, _not_startable(found.state))
        now = self.clock()
        opens_at = found.starts_at - self.early_s
        if now < opens_at:
            raise ProtocolError(
                ErrorCode.OUTSIDE_BOOKING_WINDOW,
                f"The appointment is at {local_clock(found.starts_at)} (UTC+5); "
                f"start it from {local_clock(opens_at)}.",
            )
        if found.specialist_id in busy:
            raise ProtocolError(
                ErrorCode.SESSION_OPEN,
                "The specialist is finishing another consultation; try again in a few minutes.",
            )
        ref = await self._store.call(lambda c: js.referral(c, found.referral_id))
        assert ref is not None
        booked = dataclasses.replace(found, cart_id=cart_id)
        session_id = await self._store.call(lambda c: js.start_booked_session(c, booked, ref, now))
        record = await self._store.session(session_id)
        assert record is not None
        return record


def _may_see(reader: Reader, a: js.Appointment) -> bool:
    if isinstance(reader, CartRecord):
        return reader.clinic == a.clinic
    return reader.id == a.specialist_id


def _not_startable(state: str) -> str:
    return {
        "started": "This appointment's consultation has already started.",
        "completed": "This appointment has already taken place.",
        "cancelled": "This appointment was cancelled; book a new slot.",
        "no_show": "The time for this appointment has passed; book a new slot, or use the "
        "on-demand queue if it is urgent.",
    }.get(state, "This appointment cannot be started.")
