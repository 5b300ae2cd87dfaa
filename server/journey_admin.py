"""Administrator access to records and reports (`telecart admin export-record|report`).

Administrators have no web role: they work on the server itself, and every record they
export is audited like any other read (actor `admin:<login name>`).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from telecart.config import ServerConfig
from telecart.server.admin import AdminError, admin_actor
from telecart.server.appointments import AppointmentBook
from telecart.server.journey_store import ensure_schema
from telecart.server.record_fhir import record_bundle
from telecart.server.record_pdf import record_pdf
from telecart.server.records import assemble_record
from telecart.server.reports import consultation_report, report_csv, report_range
from telecart.server.store import Store


async def _open(config: ServerConfig) -> Store:
    store = await Store.open(config.database_path)
    await ensure_schema(store)
    await AppointmentBook(store).settle()
    return store


async def export_record(
    config: ServerConfig, session_id: str, pdf: Path | None, fhir: Path | None
) -> str:
    """Write the record of `session_id` as PDF and/or FHIR JSON; returns what was written."""
    if pdf is None and fhir is None:
        raise AdminError("Give --pdf FILE and/or --fhir FILE.")
    store = await _open(config)
    try:
        record = await assemble_record(store, session_id)
        if record is None:
            await store.audit(admin_actor(), "record_read_refused", record=session_id)
            raise AdminError(f"No consultation {session_id!r}.")
        await store.audit(admin_actor(), "record_read", session_id, record=session_id)
        written = []
        if pdf is not None:
            await asyncio.to_thread(pdf.write_bytes, await record_pdf(record))
            written.append(str(pdf))
        if fhir is not None:
            text = json.dumps(record_bundle(record), ensure_ascii=False, indent=2)
            await asyncio.to_thread(fhir.write_text, text, "utf-8")
            written.append(str(fhir))
        return "Record written to " + ", ".join(written)
    finally:
        await store.close()


async def write_report(
    config: ServerConfig, date_from: str | None, date_to: str | None, csv_path: Path | None
) -> str:
    """The all-clinics consultation report as CSV: to `csv_path`, or returned as text."""
    store = await _open(config)
    try:
        start, end = report_range(date_from, date_to, time.time())
        text = report_csv(await consultation_report(store, start, end))
        await store.audit(admin_actor(), "report_exported", start=start, end=end)
    finally:
        await store.close()
    if csv_path is None:
        return text
    await asyncio.to_thread(csv_path.write_text, text, "utf-8")
    return f"Report written to {csv_path}"
