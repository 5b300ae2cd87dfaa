"""The cart's HTTP client for the patient journey API (docs/journey.md).

The nurse screen calls these through the agent: the cart token stays in Python and
never reaches the page.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

ATTACHMENT_KINDS = ("lab", "image", "xray", "other")
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60)


class JourneyError(Exception):
    """The server refused or could not be reached; `code` is stable, `message` is for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class JourneyClient:
    """Referrals, attachments, slots and appointments, called with the cart's token."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self._http = http
        self._base = base_url
        self._headers = {"Authorization": f"Bearer {token}"}

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        headers = dict(self._headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        try:
            async with self._http.request(
                method,
                self._base + path,
                json=json_body,
                params=params,
                data=data,
                headers=headers,
                timeout=REQUEST_TIMEOUT,
            ) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = {}
                if response.status >= 400:
                    body = body if isinstance(body, dict) else {}
                    raise JourneyError(
                        response.status,
                        str(body.get("error", "http_error")),
                        str(body.get("message", f"The server answered {response.status}.")),
                    )
                return body if isinstance(body, dict) else {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("journey API %s %s unreachable: %s", method, path.split("?")[0], exc)
            raise JourneyError(
                503, "server_unreachable", "The server cannot be reached: check the network."
            ) from exc

    async def create_referral(self, referral: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", "/api/referrals", json_body=referral)

    async def referrals(self) -> list[dict[str, Any]]:
        body = await self._call("GET", "/api/referrals")
        return list(body.get("referrals", []))

    async def referral(self, referral_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/referrals/{referral_id}")

    async def add_attachment(
        self, referral_id: str, kind: str, data: bytes, content_type: str | None
    ) -> dict[str, Any]:
        if kind not in ATTACHMENT_KINDS:
            raise JourneyError(
                400, "invalid_kind", f"Attachment kind must be one of {ATTACHMENT_KINDS}."
            )
        return await self._call(
            "POST",
            f"/api/referrals/{referral_id}/attachments",
            params={"kind": kind},
            data=data,
            content_type=content_type or "application/octet-stream",
        )

    async def free_slots(self, specialty: str, date: str | None = None) -> list[dict[str, Any]]:
        params = {"specialty": specialty}
        if date:
            params["date"] = date
        body = await self._call("GET", "/api/slots", params=params)
        return list(body.get("slots", []))

    async def book(self, slot_id: str, referral_id: str) -> dict[str, Any]:
        return await self._call(
            "POST", "/api/appointments", json_body={"slot_id": slot_id, "referral_id": referral_id}
        )

    async def appointments(self, date: str | None = None) -> list[dict[str, Any]]:
        body = await self._call("GET", "/api/appointments", params={"date": date} if date else None)
        return list(body.get("appointments", []))

    async def appointment(self, appointment_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/appointments/{appointment_id}")

    async def cancel(self, appointment_id: str, reason: str) -> dict[str, Any]:
        return await self._call(
            "POST", f"/api/appointments/{appointment_id}/cancel", json_body={"reason": reason}
        )

    async def reschedule(self, appointment_id: str, slot_id: str, reason: str) -> dict[str, Any]:
        return await self._call(
            "POST",
            f"/api/appointments/{appointment_id}/reschedule",
            json_body={"slot_id": slot_id, "reason": reason},
        )

    async def link_referral(self, session_id: str, referral_id: str) -> dict[str, Any]:
        return await self._call(
            "PUT", f"/api/sessions/{session_id}/referral", json_body={"referral_id": referral_id}
        )
