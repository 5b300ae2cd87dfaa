"""A real server plus HTTP helpers for nurses (cart token) and specialists (login cookie)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from telecart.server.appointments import AppointmentBook
from telecart.server.journey_api import APPOINTMENT_BOOK
from tests.server.harness import RunningServer, running_server, server_config

UTC5 = dt.timezone(dt.timedelta(hours=5))
PATIENT_NAME = "Жанар Сейткали"
BIRTH_DATE = dt.date(1984, 3, 21)


def make_iin(birth: dt.date, century_sex: str = "4", serial: int = 1) -> str:
    """An IIN with a valid check digit, computed independently of the server's code."""
    for n in range(serial, serial + 100):
        first = f"{birth:%y%m%d}{century_sex}{n:04d}"
        digits = [int(c) for c in first]
        check = sum(d * w for d, w in zip(digits, range(1, 12), strict=True)) % 11
        if check == 10:
            weights = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)
            check = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
        if check != 10:
            return first + str(check)
    raise AssertionError("no IIN")


PATIENT_IIN = make_iin(BIRTH_DATE)


def referral_body(specialty: str = "cardiology", **patient: str) -> dict[str, Any]:
    return {
        "referral_number": "KZ-2030-000123",
        "referring_doctor": "Dr Aigerim Nurpeisova",
        "specialty": specialty,
        "reason": "Palpitations, abnormal ECG at the district clinic",
        "urgency": "routine",
        "patient": {"name": PATIENT_NAME, "birth_date": BIRTH_DATE.isoformat(), "iin": PATIENT_IIN}
        | patient,
    }


def soon(seconds: float) -> str:
    """A time `seconds` from now, written in Kazakhstan local time with its offset."""
    return dt.datetime.fromtimestamp(time.time() + seconds, UTC5).isoformat(timespec="seconds")


class Api:
    """One party's HTTP client; `call` asserts the status and returns JSON (or bytes)."""

    def __init__(self, base: str, token: str | None = None, cookies: dict[str, str] | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base = base
        self.http = aiohttp.ClientSession(headers=headers, cookies=cookies or {})
        self.token = token
        self.cookies = cookies or {}

    async def call(
        self, method: str, path: str, body: Any = None, *, status: int = 200, **kw: Any
    ) -> Any:
        async with self.http.request(method, self.base + path, json=body, **kw) as resp:
            payload = await resp.read()
            assert resp.status == status, payload[:500]
            if resp.content_type.endswith("json"):
                return await resp.json(content_type=None)
            return payload

    async def close(self) -> None:
        await self.http.close()


class Journey:
    """Makes carts and specialists as API clients on one running server."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self._apis: list[Api] = []

    @property
    def book(self) -> AppointmentBook:
        return self.server.app[APPOINTMENT_BOOK]

    async def nurse(self, cart_name: str, clinic: str = "Aral district hospital") -> Api:
        api = Api(self.server.base, token=await self.server.add_cart(cart_name, clinic))
        self._apis.append(api)
        return api

    async def specialist(self, username: str, *specialties: str) -> Api:
        await self.server.add_specialist(username, *(specialties or ("cardiology",)))
        api = Api(self.server.base, cookies=await self.server.login(username))
        self._apis.append(api)
        return api

    async def close(self) -> None:
        for api in self._apis:
            await api.close()


@pytest.fixture
async def journey(tmp_path: Path) -> AsyncIterator[Journey]:
    async with running_server(server_config(tmp_path)) as srv:
        j = Journey(srv)
        try:
            yield j
        finally:
            await j.close()


async def booked_appointment(
    journey: Journey, nurse: Api, spec: Api, start_in_s: float = 300
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """slot, referral, appointment: a referral booked on a fresh slot."""
    slot = await spec.call(
        "POST",
        "/api/slots",
        {"specialty": "cardiology", "starts_at": soon(start_in_s), "duration_min": 30},
        status=201,
    )
    ref = await nurse.call("POST", "/api/referrals", referral_body(), status=201)
    appt = await nurse.call(
        "POST",
        "/api/appointments",
        {"slot_id": slot["slot_id"], "referral_id": ref["referral_id"]},
        status=201,
    )
    return slot, ref, appt
