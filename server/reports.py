"""Reports for clinic managers: consultations per day, specialty and cart; waiting time from
referral to consultation; no-shows. Counts only: no patient identity ever appears here.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import sqlite3
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from telecart.server.appointments import LOCAL_TZ, local_day
from telecart.server.journey_errors import JourneyError
from telecart.server.store import Store

MAX_REPORT_DAYS = 366


@dataclass
class ReportRow:
    """One (local date, clinic, cart, specialty) group."""

    date: str
    clinic: str
    cart: str
    specialty: str
    consultations: int = 0
    booked: int = 0
    on_demand: int = 0
    no_show_cart: int = 0
    no_show_specialist: int = 0
    waits_h: list[float] = field(default_factory=list)

    def as_csv(self) -> dict[str, Any]:
        row = asdict(self)
        del row["waits_h"]
        row["with_referral"] = len(self.waits_h)
        row["mean_wait_h"] = round(statistics.fmean(self.waits_h), 2) if self.waits_h else ""
        row["median_wait_h"] = round(statistics.median(self.waits_h), 2) if self.waits_h else ""
        return row


CSV_COLUMNS = (
    "date", "clinic", "cart", "specialty", "consultations", "booked", "on_demand",
    "no_show_cart", "no_show_specialist", "with_referral", "mean_wait_h", "median_wait_h",
)  # fmt: skip


def report_range(date_from: str | None, date_to: str | None, now: float) -> tuple[float, float]:
    """Local calendar days `from`..`to` inclusive (default: the last 30 days)."""
    today = dt.datetime.fromtimestamp(now, LOCAL_TZ).date()
    first = date_from or (today - dt.timedelta(days=29)).isoformat()
    last = date_to or today.isoformat()
    start, _ = local_day(first, now)
    _, end = local_day(last, now)
    if end <= start:
        raise JourneyError("invalid_range", "'from' must not be after 'to'.")
    if end - start > MAX_REPORT_DAYS * 86400:
        raise JourneyError("invalid_range", f"A report covers at most {MAX_REPORT_DAYS} days.")
    return start, end


def _collect(
    conn: sqlite3.Connection, start: float, end: float, clinic: str | None
) -> list[ReportRow]:
    rows: dict[tuple[str, str, str, str], ReportRow] = {}

    def group(at: float, clinic_name: str, cart: str, specialty: str) -> ReportRow:
        day = dt.datetime.fromtimestamp(at, LOCAL_TZ).date().isoformat()
        key = (day, clinic_name, cart, specialty)
        if key not in rows:
            rows[key] = ReportRow(day, clinic_name, cart, specialty)
        return rows[key]

    where = " AND c.clinic = ?" if clinic is not None else ""
    extra: tuple[Any, ...] = (clinic,) if clinic is not None else ()
    for accepted_at, clinic_name, cart, specialty, booked, referred_at in conn.execute(
        "SELECT s.accepted_at, c.clinic, c.name, s.specialty, "
        "EXISTS (SELECT 1 FROM appointments a WHERE a.session_id = s.id), r.created_at "
        "FROM sessions s JOIN carts c ON c.id = s.cart_id "
        "LEFT JOIN session_referrals sr ON sr.session_id = s.id "
        "LEFT JOIN referrals r ON r.id = sr.referral_id "
        "WHERE s.accepted_at >= ? AND s.accepted_at < ?" + where,
        (start, end, *extra),
    ):
        row = group(accepted_at, clinic_name, cart, specialty)
        row.consultations += 1
        if booked:
            row.booked += 1
        else:
            row.on_demand += 1
        if referred_at is not None:
            row.waits_h.append(max(0.0, accepted_at - referred_at) / 3600)
    for starts_at, clinic_name, cart, specialty, side in conn.execute(
        "SELECT a.starts_at, a.clinic, c.name, a.specialty, a.no_show_side FROM appointments a "
        "JOIN carts c ON c.id = a.cart_id WHERE a.state = 'no_show' "
        "AND a.starts_at >= ? AND a.starts_at < ?" + where,
        (start, end, *extra),
    ):
        row = group(starts_at, clinic_name, cart, specialty)
        if side == "cart":
            row.no_show_cart += 1
        else:
            row.no_show_specialist += 1
    return sorted(rows.values(), key=lambda r: (r.date, r.clinic, r.cart, r.specialty))


async def consultation_report(
    store: Store, start: float, end: float, clinic: str | None = None
) -> list[ReportRow]:
    """Rows for `[start, end)`; `clinic=None` covers every clinic (administrators)."""
    return await store.call(lambda conn: _collect(conn, start, end, clinic))


def totals(rows: list[ReportRow], dimension: str) -> dict[str, dict[str, Any]]:
    """The rows added up by `date`, `specialty` or `cart`."""
    out: dict[str, ReportRow] = {}
    for row in rows:
        key = str(getattr(row, dimension))
        total = out.setdefault(key, ReportRow(row.date, row.clinic, row.cart, row.specialty))
        total.consultations += row.consultations
        total.booked += row.booked
        total.on_demand += row.on_demand
        total.no_show_cart += row.no_show_cart
        total.no_show_specialist += row.no_show_specialist
        total.waits_h.extend(row.waits_h)
    keep = ("consultations", "booked", "on_demand", "no_show_cart", "no_show_specialist",
            "with_referral", "mean_wait_h", "median_wait_h")  # fmt: skip
    return {key: {k: v for k, v in t.as_csv().items() if k in keep} for key, t in out.items()}


def report_json(rows: list[ReportRow]) -> dict[str, Any]:
    return {
        "rows": [r.as_csv() for r in rows],
        "by_day": totals(rows, "date"),
        "by_specialty": totals(rows, "specialty"),
        "by_cart": totals(rows, "cart"),
    }


def report_csv(rows: list[ReportRow]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.as_csv())
    return out.getvalue()
