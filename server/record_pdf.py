"""The consultation record as a PDF for the family doctor (fpdf2, rendered in a thread).

Names are Cyrillic and Kazakh, so the PDF embeds a Unicode TrueType font (DejaVu Sans, the
Debian package fonts-dejavu-core); `TELECART_PDF_FONT_DIR` points elsewhere if needed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from telecart.server.appointments import LOCAL_TZ
from telecart.server.journey_errors import JourneyError
from telecart.server.records import ConsultationRecord, vitals_summary

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/local/share/fonts"),
)
_STILL_WIDTH_MM = 80
_FAMILY = "DejaVu"


def _font_dir() -> Path:
    override = os.environ.get("TELECART_PDF_FONT_DIR")
    for folder in ((Path(override),) if override else ()) + FONT_DIRS:
        if (folder / "DejaVuSans.ttf").is_file() and (folder / "DejaVuSans-Bold.ttf").is_file():
            return folder
    raise JourneyError(
        "pdf_font_missing",
        "The PDF needs the DejaVu Sans font: install the package fonts-dejavu-core "
        "(or set TELECART_PDF_FONT_DIR to a folder with DejaVuSans.ttf).",
        500,
    )


def _local(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, LOCAL_TZ).strftime("%d.%m.%Y %H:%M (UTC+5)")


class _RecordPdf(FPDF):
    def __init__(self, record_id: str) -> None:
        super().__init__(format="A4")
        self._record_id = record_id
        folder = _font_dir()
        self.add_font(_FAMILY, "", str(folder / "DejaVuSans.ttf"))
        self.add_font(_FAMILY, "B", str(folder / "DejaVuSans-Bold.ttf"))
        self.set_auto_page_break(auto=True, margin=18)
        self.set_title("Teleconsultation record")
        self.set_creator("telecart")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(_FAMILY, "", 8)
        self.cell(0, 5, f"telecart record {self._record_id} - page {self.page_no()}/{{nb}}",
                  align="C")  # fmt: skip

    def heading(self, text: str) -> None:
        self.ln(3)
        self.set_font(_FAMILY, "B", 12)
        self.cell(0, 8, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(_FAMILY, "", 10)

    def field(self, label: str, value: str) -> None:
        self.set_font(_FAMILY, "B", 10)
        self.cell(55, 6, label)
        self.set_font(_FAMILY, "", 10)
        self.multi_cell(0, 6, value or "-", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def paragraph(self, text: str) -> None:
        self.multi_cell(0, 6, text or "-", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def render_record_pdf(record: ConsultationRecord) -> bytes:
    """Blocking: builds the whole PDF (reads still images from disk). Use `record_pdf`."""
    s = record.session
    pdf = _RecordPdf(s.id)
    pdf.add_page()
    pdf.set_font(_FAMILY, "B", 16)
    pdf.cell(0, 10, "Teleconsultation record", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FAMILY, "", 10)
    ref = record.referral
    if ref is not None:
        pdf.heading("Patient")
        pdf.field("Name", ref.patient.name)
        pdf.field("Date of birth", ref.patient.birth_date)
        pdf.field("IIN", ref.patient.iin)
        pdf.heading("Referral")
        pdf.field("Referral number", ref.referral_number)
        pdf.field("Referring doctor", ref.referring_doctor)
        pdf.field("Urgency", ref.urgency)
        pdf.field("Referred on", _local(ref.created_at))
        pdf.field("Reason", ref.reason)
    pdf.heading("Consultation")
    pdf.field("Specialty", s.specialty)
    pdf.field("Specialist", record.specialist_name or "-")
    pdf.field("Clinic / cart", f"{record.clinic} / {record.cart_name}")
    if record.appointment is not None:
        pdf.field("Booked for", _local(record.appointment.starts_at))
    pdf.field("Requested", _local(s.created_at))
    pdf.field("Accepted", _local(s.accepted_at))
    pdf.field("Ended", _local(s.ended_at))
    if record.attachments:
        pdf.heading("Referral attachments")
        for a in record.attachments:
            pdf.paragraph(f"{a.kind}: {a.media_type}, {a.size // 1024 + 1} KiB")
    summary = vitals_summary(record.vitals)
    if summary:
        pdf.heading("Vital signs")
        for item in summary:
            pdf.field(
                item["kind"].replace("_", " "),
                f"last {item['last']:g} {item['unit']} (min {item['min']:g}, "
                f"max {item['max']:g}, {item['count']} readings)",
            )
    pdf.heading("Conclusion")
    concluded = record.conclusion
    pdf.paragraph(concluded.conclusion if concluded else "No conclusion written yet.")
    if concluded is not None:
        pdf.heading("Recommendations")
        pdf.paragraph(concluded.recommendations)
        if concluded.notes:
            pdf.heading("Notes")
            pdf.paragraph(concluded.notes)
    if record.stills:
        pdf.heading("Stills")
        for still in record.stills:
            pdf.paragraph(f"{_local(still.created_at)}  sha256 {still.sha256[:16]}...")
            if Path(still.path).is_file():
                pdf.image(still.path, w=_STILL_WIDTH_MM)
    return bytes(pdf.output())


async def record_pdf(record: ConsultationRecord) -> bytes:
    return await asyncio.to_thread(render_record_pdf, record)
