"""What a file is, decided by its first bytes, never by its name or the sender's claim."""

from __future__ import annotations

PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
DICOM = "application/dicom"

EXTENSIONS: dict[str, str] = {PDF: ".pdf", JPEG: ".jpg", PNG: ".png", DICOM: ".dcm"}

_DICOM_PREAMBLE = 128


def detect_content_type(data: bytes) -> str | None:
    """The media type of `data` (PDF, JPEG, PNG or DICOM Part 10), or None if it is none."""
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data[_DICOM_PREAMBLE : _DICOM_PREAMBLE + 4] == b"DICM":
        return DICOM
    return None


def claimed_type_agrees(claimed: str | None, detected: str) -> bool:
    """A sender that names no type (or a generic one) agrees; one naming another type lies."""
    if claimed is None:
        return True
    base = claimed.split(";", 1)[0].strip().lower()
    return base in ("", "application/octet-stream") or base == detected
