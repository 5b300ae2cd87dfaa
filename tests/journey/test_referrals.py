"""Referrals: IIN validation, attachments typed by content, authorised and audited reads."""

from __future__ import annotations

import datetime as dt

import pytest

from telecart.server.content_types import detect_content_type
from telecart.server.journey_errors import JourneyError
from telecart.server.referrals import validate_iin
from tests.journey.conftest import BIRTH_DATE, PATIENT_IIN, Journey, make_iin, referral_body

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_valid_iin_is_accepted_and_a_wrong_check_digit_is_not() -> None:
    validate_iin(PATIENT_IIN, BIRTH_DATE)
    wrong = PATIENT_IIN[:11] + str((int(PATIENT_IIN[11]) + 1) % 10)
    with pytest.raises(JourneyError, match="check digit"):
        validate_iin(wrong, BIRTH_DATE)


def test_iin_must_code_the_patients_birth_date() -> None:
    other = make_iin(dt.date(1990, 1, 2))
    with pytest.raises(JourneyError, match="date of birth"):
        validate_iin(other, BIRTH_DATE)
    with pytest.raises(JourneyError, match="12 digits"):
        validate_iin("12345", BIRTH_DATE)


def test_content_type_is_read_from_the_bytes() -> None:
    assert detect_content_type(PDF) == "application/pdf"
    assert detect_content_type(PNG) == "image/png"
    assert detect_content_type(b"\xff\xd8\xff\xe0JFIF") == "image/jpeg"
    assert detect_content_type(b"\x00" * 128 + b"DICM") == "application/dicom"
    assert detect_content_type(b"MZ\x90\x00 this is a program") is None


async def test_referral_with_bad_iin_is_refused_without_echoing_it(journey: Journey) -> None:
    nurse = await journey.nurse("cart-1")
    bad = PATIENT_IIN[:11] + str((int(PATIENT_IIN[11]) + 1) % 10)
    refused = await nurse.call("POST", "/api/referrals", referral_body(iin=bad), status=400)
    assert refused["error"] == "invalid_iin" and bad not in refused["message"]


async def test_attachment_that_lies_about_its_type_is_rejected(journey: Journey) -> None:
    nurse = await journey.nurse("cart-1")
    ref = await nurse.call("POST", "/api/referrals", referral_body(), status=201)
    path = f"/api/referrals/{ref['referral_id']}/attachments?kind=lab"
    program = await nurse.call(
        "POST",
        path,
        data=b"MZ\x90\x00 not a pdf",
        headers={"Content-Type": "application/pdf"},
        status=415,
    )
    assert program["error"] == "unsupported_type"
    png_as_pdf = await nurse.call(
        "POST", path, data=PNG, headers={"Content-Type": "application/pdf"}, status=415
    )
    assert png_as_pdf["error"] == "type_mismatch"
    detail = await nurse.call("GET", f"/api/referrals/{ref['referral_id']}")
    assert detail["attachments"] == []


async def test_oversized_attachment_is_refused(journey: Journey) -> None:
    nurse = await journey.nurse("cart-1")
    ref = await nurse.call("POST", "/api/referrals", referral_body(), status=201)
    limit = journey.server.config.max_attachment_bytes
    too_big = await nurse.call(
        "POST",
        f"/api/referrals/{ref['referral_id']}/attachments",
        data=PDF + b"0" * limit,
        status=413,
    )
    assert too_big["error"] == "too_large"


async def test_attachment_is_served_only_to_the_authorised_and_every_read_audited(
    journey: Journey,
) -> None:
    nurse = await journey.nurse("cart-1")
    ref = await nurse.call("POST", "/api/referrals", referral_body(), status=201)
    stored = await nurse.call(
        "POST",
        f"/api/referrals/{ref['referral_id']}/attachments?kind=lab",
        data=PDF,
        headers={"Content-Type": "application/pdf"},
        status=201,
    )
    assert stored["media_type"] == "application/pdf"
    async with nurse.http.get(nurse.base + stored["url"]) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/pdf"
        assert resp.headers["Content-Disposition"].startswith("attachment;")
        assert await resp.read() == PDF
    stranger = await journey.nurse("cart-far", clinic="Other clinic")
    refused = await stranger.call("GET", stored["url"], status=403)
    assert refused["error"] == "forbidden"
    unbooked = await journey.specialist("amir")
    await unbooked.call("GET", stored["url"], status=403)
    await nurse.call("GET", f"/static/{stored['attachment_id']}.pdf", status=404)
    actions = [e.action for e in await journey.server.store.audit_entries()]
    assert actions.count("attachment_read") == 1
    assert actions.count("referral_read_refused") == 2
