"""Tables and SQL of the patient journey: referrals, attachments, slots, appointments, vitals,
conclusions. Every function takes the sqlite3 connection and runs on the store's DB thread
(through `Store.call`), so each one is a single transaction.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from telecart.server.journey_errors import JourneyError
from telecart.server.store import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS referrals (
    id TEXT PRIMARY KEY,
    cart_id TEXT NOT NULL REFERENCES carts(id),
    clinic TEXT NOT NULL,
    referral_number TEXT NOT NULL,
    referring_doctor TEXT NOT NULL,
    specialty TEXT NOT NULL,
    reason TEXT NOT NULL,
    urgency TEXT NOT NULL,
    patient_name TEXT NOT NULL,
    patient_birth_date TEXT NOT NULL,
    patient_iin TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS referrals_clinic ON referrals(clinic, created_at);
CREATE TABLE IF NOT EXISTS referral_attachments (
    id TEXT PRIMARY KEY,
    referral_id TEXT NOT NULL REFERENCES referrals(id),
    kind TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS slots (
    id TEXT PRIMARY KEY,
    specialist_id TEXT NOT NULL REFERENCES specialists(id),
    specialty TEXT NOT NULL,
    starts_at REAL NOT NULL,
    ends_at REAL NOT NULL,
    appointment_id TEXT UNIQUE,
    withdrawn INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS slots_specialty ON slots(specialty, starts_at);
CREATE TABLE IF NOT EXISTS appointments (
    id TEXT PRIMARY KEY,
    slot_id TEXT NOT NULL REFERENCES slots(id),
    referral_id TEXT NOT NULL REFERENCES referrals(id),
    cart_id TEXT NOT NULL REFERENCES carts(id),
    clinic TEXT NOT NULL,
    specialist_id TEXT NOT NULL REFERENCES specialists(id),
    specialty TEXT NOT NULL,
    starts_at REAL NOT NULL,
    ends_at REAL NOT NULL,
    state TEXT NOT NULL,
    session_id TEXT UNIQUE REFERENCES sessions(id),
    no_show_side TEXT,
    cancel_reason TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS appointments_one_active_per_referral
    ON appointments(referral_id) WHERE state IN ('booked', 'started');
CREATE INDEX IF NOT EXISTS appointments_start ON appointments(starts_at);
CREATE TABLE IF NOT EXISTS appointment_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    appointment_id TEXT NOT NULL REFERENCES appointments(id),
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS session_referrals (
    session_id TEXT PRIMARY KEY REFERENCES sessions(id),
    referral_id TEXT NOT NULL REFERENCES referrals(id)
);
CREATE TABLE IF NOT EXISTS vitals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    kind TEXT NOT NULL,
    value REAL NOT NULL,
    unit TEXT NOT NULL,
    captured_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS vitals_session ON vitals(session_id);
CREATE TABLE IF NOT EXISTS conclusions (
    session_id TEXT PRIMARY KEY REFERENCES sessions(id),
    specialist_id TEXT NOT NULL REFERENCES specialists(id),
    conclusion TEXT NOT NULL,
    recommendations TEXT NOT NULL,
    notes TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""

ACTIVE_STATES = ("booked", "started")


async def ensure_schema(store: Store) -> None:
    """Create the journey's tables (idempotent); called once at server start."""
    await store.call(lambda conn: conn.executescript(_SCHEMA))


def new_id() -> str:
    return uuid.uuid4().hex


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Patient:
    """The minimum identity: never logged, never in metrics or audit details."""

    name: str
    birth_date: str
    iin: str


@dataclass(frozen=True)
class Referral:
    id: str
    cart_id: str
    clinic: str
    referral_number: str
    referring_doctor: str
    specialty: str
    reason: str
    urgency: str
    patient: Patient
    created_at: float


@dataclass(frozen=True)
class Attachment:
    id: str
    referral_id: str
    kind: str
    media_type: str
    size: int
    sha256: str
    path: str
    created_at: float


@dataclass(frozen=True)
class Slot:
    id: str
    specialist_id: str
    specialty: str
    starts_at: float
    ends_at: float
    appointment_id: str | None


@dataclass(frozen=True)
class Appointment:
    id: str
    slot_id: str
    referral_id: str
    cart_id: str
    clinic: str
    specialist_id: str
    specialty: str
    starts_at: float
    ends_at: float
    state: str
    session_id: str | None
    no_show_side: str | None
    cancel_reason: str | None
    created_at: float


@dataclass(frozen=True)
class VitalReading:
    kind: str
    value: float
    unit: str
    captured_at: float


@dataclass(frozen=True)
class Conclusion:
    session_id: str
    specialist_id: str
    conclusion: str
    recommendations: str
    notes: str
    updated_at: float


# --- referrals and attachments ---------------------------------------------------------------

_REFERRAL_SELECT = (
    "SELECT id, cart_id, clinic, referral_number, referring_doctor, specialty, reason, urgency, "
    "patient_name, patient_birth_date, patient_iin, created_at FROM referrals"
)


def _referral(row: Sequence[Any]) -> Referral:
    return Referral(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
        Patient(row[8], row[9], row[10]), row[11],
    )  # fmt: skip


def insert_referral(conn: sqlite3.Connection, r: Referral) -> None:
    with conn:
        conn.execute(
            "INSERT INTO referrals (id, cart_id, clinic, referral_number, referring_doctor, "
            "specialty, reason, urgency, patient_name, patient_birth_date, patient_iin, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                r.id, r.cart_id, r.clinic, r.referral_number, r.referring_doctor, r.specialty,
                r.reason, r.urgency, r.patient.name, r.patient.birth_date, r.patient.iin,
                r.created_at,
            ),
        )  # fmt: skip


def referral(conn: sqlite3.Connection, referral_id: str) -> Referral | None:
    row = conn.execute(_REFERRAL_SELECT + " WHERE id = ?", (referral_id,)).fetchone()
    return _referral(row) if row else None


def referrals_of_clinic(conn: sqlite3.Connection, clinic: str, limit: int) -> list[Referral]:
    rows = conn.execute(
        _REFERRAL_SELECT + " WHERE clinic = ? ORDER BY created_at DESC LIMIT ?", (clinic, limit)
    ).fetchall()
    return [_referral(r) for r in rows]


_ATTACHMENT_SELECT = (
    "SELECT id, referral_id, kind, media_type, size, sha256, path, created_at "
    "FROM referral_attachments"
)


def insert_attachment(conn: sqlite3.Connection, a: Attachment) -> None:
    with conn:
        conn.execute(
            "INSERT INTO referral_attachments (id, referral_id, kind, media_type, size, sha256, "
            "path, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (a.id, a.referral_id, a.kind, a.media_type, a.size, a.sha256, a.path, a.created_at),
        )


def attachments(conn: sqlite3.Connection, referral_id: str) -> list[Attachment]:
    rows = conn.execute(
        _ATTACHMENT_SELECT + " WHERE referral_id = ? ORDER BY created_at", (referral_id,)
    ).fetchall()
    return [Attachment(*r) for r in rows]


def attachment(conn: sqlite3.Connection, attachment_id: str) -> Attachment | None:
    row = conn.execute(_ATTACHMENT_SELECT + " WHERE id = ?", (attachment_id,)).fetchone()
    return Attachment(*row) if row else None


def specialist_sees_referral(
    conn: sqlite3.Connection, specialist_id: str, referral_id: str
) -> bool:
    """Booked on it (any appointment state) or took a consultation linked to it."""
    row = conn.execute(
        "SELECT 1 FROM appointments WHERE referral_id = ? AND specialist_id = ? "
        "UNION SELECT 1 FROM session_referrals sr JOIN sessions s ON s.id = sr.session_id "
        "WHERE sr.referral_id = ? AND s.specialist_id = ?",
        (referral_id, specialist_id, referral_id, specialist_id),
    ).fetchone()
    return row is not None


def link_session_referral(conn: sqlite3.Connection, session_id: str, referral_id: str) -> None:
    with conn:
        conn.execute(
            "INSERT INTO session_referrals (session_id, referral_id) VALUES (?, ?) "
            "ON CONFLICT(session_id) DO UPDATE SET referral_id = excluded.referral_id",
            (session_id, referral_id),
        )


def referral_of_session(conn: sqlite3.Connection, session_id: str) -> str | None:
    row = conn.execute(
        "SELECT referral_id FROM session_referrals WHERE session_id = ?", (session_id,)
    ).fetchone()
    return str(row[0]) if row else None


# --- slots -----------------------------------------------------------------------------------

_SLOT_SELECT = "SELECT id, specialist_id, specialty, starts_at, ends_at, appointment_id FROM slots"


def insert_slot(conn: sqlite3.Connection, slot: Slot, now: float) -> None:
    """Add a slot unless it overlaps another live slot of the same specialist."""
    with conn:
        clash = conn.execute(
            "SELECT 1 FROM slots WHERE specialist_id = ? AND withdrawn = 0 "
            "AND starts_at < ? AND ends_at > ?",
            (slot.specialist_id, slot.ends_at, slot.starts_at),
        ).fetchone()
        if clash:
            raise JourneyError(
                "slot_overlap", "This time overlaps one of your published slots.", 409
            )
        conn.execute(
            "INSERT INTO slots (id, specialist_id, specialty, starts_at, ends_at, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (slot.id, slot.specialist_id, slot.specialty, slot.starts_at, slot.ends_at, now),
        )


def slot(conn: sqlite3.Connection, slot_id: str) -> Slot | None:
    row = conn.execute(_SLOT_SELECT + " WHERE id = ? AND withdrawn = 0", (slot_id,)).fetchone()
    return Slot(*row) if row else None


def free_slots(
    conn: sqlite3.Connection, specialty: str, start: float, end: float, now: float
) -> list[Slot]:
    rows = conn.execute(
        _SLOT_SELECT + " WHERE specialty = ? AND withdrawn = 0 AND appointment_id IS NULL "
        "AND starts_at >= ? AND starts_at < ? AND starts_at > ? ORDER BY starts_at",
        (specialty, start, end, now),
    ).fetchall()
    return [Slot(*r) for r in rows]


def withdraw_slot(conn: sqlite3.Connection, slot_id: str, specialist_id: str) -> bool:
    with conn:
        cur = conn.execute(
            "UPDATE slots SET withdrawn = 1 WHERE id = ? AND specialist_id = ? "
            "AND appointment_id IS NULL AND withdrawn = 0",
            (slot_id, specialist_id),
        )
    return cur.rowcount == 1


# --- appointments ----------------------------------------------------------------------------

_APPOINTMENT_SELECT = (
    "SELECT id, slot_id, referral_id, cart_id, clinic, specialist_id, specialty, starts_at, "
    "ends_at, state, session_id, no_show_side, cancel_reason, created_at FROM appointments"
)


def _take_slot(conn: sqlite3.Connection, slot_id: str, appointment_id: str, now: float) -> Slot:
    """The race-safe step: only one conditional UPDATE can claim a free slot."""
    cur = conn.execute(
        "UPDATE slots SET appointment_id = ? WHERE id = ? AND appointment_id IS NULL "
        "AND withdrawn = 0 AND starts_at > ?",
        (appointment_id, slot_id, now),
    )
    taken = slot(conn, slot_id)
    if cur.rowcount != 1 or taken is None:
        raise JourneyError(
            "slot_taken", "This slot has just been booked or withdrawn; choose another.", 409
        )
    return taken


def book(
    conn: sqlite3.Connection,
    slot_id: str,
    ref: Referral,
    cart_id: str,
    now: float,
) -> Appointment:
    appointment_id = new_id()
    try:
        with conn:
            taken = _take_slot(conn, slot_id, appointment_id, now)
            if taken.specialty != ref.specialty:
                raise JourneyError(
                    "specialty_mismatch",
                    f"The referral is for {ref.specialty}; this slot is {taken.specialty}.",
                    409,
                )
            conn.execute(
                "INSERT INTO appointments (id, slot_id, referral_id, cart_id, clinic, "
                "specialist_id, specialty, starts_at, ends_at, state, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'booked', ?, ?)",
                (
                    appointment_id, slot_id, ref.id, cart_id, ref.clinic, taken.specialist_id,
                    taken.specialty, taken.starts_at, taken.ends_at, now, now,
                ),
            )  # fmt: skip
            _event(conn, appointment_id, "booked", f"cart:{cart_id}", "", now)
    except sqlite3.IntegrityError:
        raise JourneyError(
            "referral_already_booked",
            "This referral already has an appointment; reschedule or cancel it instead.",
            409,
        ) from None
    found = appointment(conn, appointment_id)
    assert found is not None
    return found


def cancel(
    conn: sqlite3.Connection, appointment_id: str, actor: str, reason: str, now: float
) -> None:
    with conn:
        cur = conn.execute(
            "UPDATE appointments SET state = 'cancelled', cancel_reason = ?, updated_at = ? "
            "WHERE id = ? AND state = 'booked'",
            (reason, now, appointment_id),
        )
        if cur.rowcount != 1:
            raise _not_booked()
        conn.execute("UPDATE slots SET appointment_id = NULL WHERE appointment_id = ?",
                     (appointment_id,))  # fmt: skip
        _event(conn, appointment_id, "cancelled", actor, reason, now)


def reschedule(
    conn: sqlite3.Connection,
    current: Appointment,
    new_slot_id: str,
    actor: str,
    reason: str,
    now: float,
) -> None:
    with conn:
        conn.execute(
            "UPDATE slots SET appointment_id = NULL WHERE appointment_id = ?", (current.id,)
        )
        taken = _take_slot(conn, new_slot_id, current.id, now)
        if taken.specialty != current.specialty:
            raise JourneyError(
                "specialty_mismatch",
                f"The appointment is for {current.specialty}; this slot is {taken.specialty}.",
                409,
            )
        cur = conn.execute(
            "UPDATE appointments SET slot_id = ?, specialist_id = ?, starts_at = ?, ends_at = ?, "
            "updated_at = ? WHERE id = ? AND state = 'booked'",
            (taken.id, taken.specialist_id, taken.starts_at, taken.ends_at, now, current.id),
        )
        if cur.rowcount != 1:
            raise _not_booked()
        _event(conn, current.id, "rescheduled", actor, reason, now)


def _not_booked() -> JourneyError:
    return JourneyError(
        "appointment_not_booked",
        "Only an appointment that is still booked (not started, cancelled or missed) "
        "can be changed.",
        409,
    )


def _event(
    conn: sqlite3.Connection, appointment_id: str, action: str, actor: str, reason: str, at: float
) -> None:
    conn.execute(
        "INSERT INTO appointment_events (appointment_id, action, actor, reason, at) "
        "VALUES (?, ?, ?, ?, ?)",
        (appointment_id, action, actor, reason, at),
    )


def appointment(conn: sqlite3.Connection, appointment_id: str) -> Appointment | None:
    row = conn.execute(_APPOINTMENT_SELECT + " WHERE id = ?", (appointment_id,)).fetchone()
    return Appointment(*row) if row else None


def appointment_of_session(conn: sqlite3.Connection, session_id: str) -> Appointment | None:
    row = conn.execute(_APPOINTMENT_SELECT + " WHERE session_id = ?", (session_id,)).fetchone()
    return Appointment(*row) if row else None


def appointments_between(
    conn: sqlite3.Connection,
    start: float,
    end: float,
    *,
    specialist_id: str | None = None,
    clinic: str | None = None,
) -> list[Appointment]:
    sql = _APPOINTMENT_SELECT + " WHERE starts_at >= ? AND starts_at < ?"
    args: list[Any] = [start, end]
    if specialist_id is not None:
        sql += " AND specialist_id = ?"
        args.append(specialist_id)
    if clinic is not None:
        sql += " AND clinic = ?"
        args.append(clinic)
    rows = conn.execute(sql + " ORDER BY starts_at", args).fetchall()
    return [Appointment(*r) for r in rows]


def appointment_events(conn: sqlite3.Connection, appointment_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT action, actor, reason, at FROM appointment_events WHERE appointment_id = ? "
        "ORDER BY id",
        (appointment_id,),
    ).fetchall()
    return [{"action": r[0], "actor": r[1], "reason": r[2], "at": r[3]} for r in rows]


def settle(conn: sqlite3.Connection, now: float, grace_s: float) -> list[tuple[str, str]]:
    """Record what the clock has decided: no-shows and completed visits.

    Booked and never started by min(slot end, start + grace): the cart did not come.
    Started, then ended without the call ever going live: the specialist did not come.
    Returns the no-shows.
    """
    missed: list[tuple[str, str]] = []
    with conn:
        for (appointment_id,) in conn.execute(
            "SELECT id FROM appointments WHERE state = 'booked' "
            "AND MIN(ends_at, starts_at + ?) < ?",
            (grace_s, now),
        ).fetchall():
            missed.append((appointment_id, "cart"))
        rows = conn.execute(
            "SELECT a.id, EXISTS (SELECT 1 FROM session_events e WHERE e.session_id = s.id "
            "AND e.state = 'live') FROM appointments a JOIN sessions s ON s.id = a.session_id "
            "WHERE a.state = 'started' AND s.state = 'ended'"
        ).fetchall()
        for appointment_id, went_live in rows:
            if went_live:
                conn.execute(
                    "UPDATE appointments SET state = 'completed', updated_at = ? WHERE id = ?",
                    (now, appointment_id),
                )
                _event(conn, appointment_id, "completed", "system", "", now)
            else:
                missed.append((appointment_id, "specialist"))
        for appointment_id, side in missed:
            conn.execute(
                "UPDATE appointments SET state = 'no_show', no_show_side = ?, updated_at = ? "
                "WHERE id = ?",
                (side, now, appointment_id),
            )
            _event(conn, appointment_id, "no_show", "system", side, now)
    return missed


def start_booked_session(
    conn: sqlite3.Connection, booked: Appointment, ref: Referral, now: float
) -> str:
    """Create the session already accepted by the booked specialist, and link it."""
    session_id = new_id()
    with conn:
        conn.execute(
            "INSERT INTO sessions (id, cart_id, specialist_id, specialty, priority, reason, "
            "state, created_at, accepted_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'accepted', ?, ?, ?)",
            (
                session_id, booked.cart_id, booked.specialist_id, booked.specialty,
                ref.urgency, ref.reason[:500], now, now, now,
            ),
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO session_events (session_id, state, at) VALUES (?, ?, ?)",
            [(session_id, "requested", now), (session_id, "accepted", now)],
        )
        cur = conn.execute(
            "UPDATE appointments SET state = 'started', session_id = ?, updated_at = ? "
            "WHERE id = ? AND state = 'booked'",
            (session_id, now, booked.id),
        )
        if cur.rowcount != 1:
            raise _not_booked()
        conn.execute(
            "INSERT INTO session_referrals (session_id, referral_id) VALUES (?, ?)",
            (session_id, ref.id),
        )
        _event(conn, booked.id, "started", f"cart:{booked.cart_id}", "", now)
    return session_id


# --- vitals and conclusions ------------------------------------------------------------------


def replace_vitals(
    conn: sqlite3.Connection, session_id: str, readings: Sequence[VitalReading]
) -> None:
    with conn:
        conn.execute("DELETE FROM vitals WHERE session_id = ?", (session_id,))
        conn.executemany(
            "INSERT INTO vitals (session_id, kind, value, unit, captured_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(session_id, r.kind, r.value, r.unit, r.captured_at) for r in readings],
        )


def vitals(conn: sqlite3.Connection, session_id: str) -> list[VitalReading]:
    rows = conn.execute(
        "SELECT kind, value, unit, captured_at FROM vitals WHERE session_id = ? "
        "ORDER BY captured_at, id",
        (session_id,),
    ).fetchall()
    return [VitalReading(*r) for r in rows]


def save_conclusion(conn: sqlite3.Connection, c: Conclusion) -> None:
    with conn:
        conn.execute(
            "INSERT INTO conclusions (session_id, specialist_id, conclusion, recommendations, "
            "notes, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(session_id) DO UPDATE SET "
            "conclusion = excluded.conclusion, recommendations = excluded.recommendations, "
            "notes = excluded.notes, updated_at = excluded.updated_at",
            (c.session_id, c.specialist_id, c.conclusion, c.recommendations, c.notes,
             c.updated_at),
        )  # fmt: skip


def conclusion(conn: sqlite3.Connection, session_id: str) -> Conclusion | None:
    row = conn.execute(
        "SELECT session_id, specialist_id, conclusion, recommendations, notes, updated_at "
        "FROM conclusions WHERE session_id = ?",
        (session_id,),
    ).fetchone()
    return Conclusion(*row) if row else None
