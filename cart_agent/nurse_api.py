"""The local API between the nurse screen (a page on 127.0.0.1) and the cart agent.

JSON routes for actions (request, cancel, hang up, chat, the journey), a WebSocket that
streams the screen's state (`/api/events`), and JPEG frames of the self-view and the
specialist's video polled by the page a few times a second (cheap enough for a kiosk, and
the page can count the frames it shows). The cart token never reaches the page: journey
calls go through `JourneyClient` in Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
from aiohttp import WSCloseCode, web

from telecart.cart_agent.agent import CartAgent, ConsultationRequest
from telecart.cart_agent.journey_client import JourneyClient, JourneyError
from telecart.cart_agent.signalling_loop import NotConnectedError
from telecart.signalling.messages import (
    Chat,
    Error,
    Message,
    Quality,
    RequestConsultation,
    SessionInfo,
    SessionUpdate,
    Welcome,
)
from telecart.signalling.session_state import SessionState

log = logging.getLogger(__name__)

PUSH_INTERVAL_S = 1.0
CHAT_KEPT = 200
MAX_REASON = 500
MAX_CHAT = 2000
VIDEO_MAX_WIDTH = 640
JPEG_QUALITY = 70
POOR_QUALITY_SCORE = 2
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024

Phase = Literal[
    "idle", "offline", "waiting", "accepted", "connecting", "live", "poor", "reconnecting",
    "ended",
]  # fmt: skip


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


@dataclasses.dataclass
class ChatLine:
    text: str
    sender: str
    sent_at: float
    mine: bool


def _encode_jpeg(image: npt.NDArray[np.uint8]) -> bytes:
    height, width = image.shape[:2]
    if width > VIDEO_MAX_WIDTH:
        size = (VIDEO_MAX_WIDTH, height * VIDEO_MAX_WIDTH // width)
        image = np.asarray(cv2.resize(image, size), np.uint8)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(data.tobytes())


def _waiting_s(session: SessionInfo) -> float:
    """From the request until a specialist accepted (or it ended, or now)."""
    until = session.accepted_at or session.ended_at or time.time()
    return round(max(0.0, until - session.created_at), 1)


class NurseApi:
    """Follows the agent's messages and serves the page's routes (`routes()`)."""

    def __init__(self, agent: CartAgent) -> None:
        self._agent = agent
        self._changed = asyncio.Event()
        self._chat: deque[ChatLine] = deque(maxlen=CHAT_KEPT)
        self._chat_session: str | None = None
        self._quality: Quality | None = None
        self._notice: dict[str, Any] | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._unobserve = agent.observe(self._observe)
        self._unsubscribe_devices = agent.devices.board.subscribe(lambda _: self._changed.set())

    # --- following the agent -------------------------------------------------------------

    def _observe(self, message: Message) -> None:
        match message:
            case Chat(sender=None):
                pass  # our own message on its way out: the server's echo is what counts
            case Chat():
                if message.session_id != self._chat_session:
                    self._chat.clear()
                    self._chat_session = message.session_id
                session = self._agent.session
                sender = message.sender or ""
                mine = session is not None and sender == session.cart_name
                self._chat.append(
                    ChatLine(message.text, sender, message.sent_at or time.time(), mine)
                )
            case Quality():
                self._quality = message
            case Error(code=code, message=text, ref_type=ref):
                self._notice = {
                    "code": code.value,
                    "message": text,
                    "about": ref,
                    "at": time.time(),
                }
            case SessionUpdate(session=session):
                if session.session_id != self._chat_session:
                    self._chat.clear()
                    self._chat_session = session.session_id
                    self._quality = None
            case RequestConsultation() | Welcome():
                self._notice = None
        self._changed.set()

    def close_observers(self) -> None:
        self._unobserve()
        self._unsubscribe_devices()

    async def close_sockets(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"cart agent stopping")

    def _phase(self) -> Phase:
        agent = self._agent
        session = agent.session
        online = agent.signalling.connected.is_set()
        if session is None:
            return "idle" if online else "offline"
        state = session.state
        if state is SessionState.ENDED:
            return "ended"
        if not online:
            return (
                "reconnecting"
                if state in (SessionState.LIVE, SessionState.RECONNECTING)
                else "offline"
            )
        if state in (SessionState.REQUESTED, SessionState.QUEUED):
            return "waiting"
        if state is SessionState.ACCEPTED:
            return "accepted"
        if state is SessionState.CONNECTING:
            return "connecting"
        if state is SessionState.RECONNECTING:
            return "reconnecting"
        media = agent.consultation.connection_state if agent.consultation else "new"
        if media in ("disconnected", "failed"):
            return "reconnecting"
        quality = self._quality
        if quality is not None and quality.session_id == session.session_id:
            if quality.score <= POOR_QUALITY_SCORE:
                return "poor"
        return "live"

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, in one JSON object."""
        agent = self._agent
        session = agent.session
        consultation = agent.consultation
        quality = self._quality
        remote = consultation.remote_video if consultation is not None else None
        return {
            "phase": self._phase(),
            "online": agent.signalling.connected.is_set(),
            "specialties": agent.specialties,
            "session": None
            if session is None
            else {
                "session_id": session.session_id,
                "state": session.state.value,
                "specialty": session.specialty,
                "priority": session.priority,
                "reason": session.reason,
                "specialist_name": session.specialist_name,
                "cart_name": session.cart_name,
                "waiting_s": _waiting_s(session),
                "end_reason": session.end_reason,
            },
            "quality": None
            if quality is None
            else {"score": quality.score, "rtt_ms": quality.rtt_ms, "loss": quality.loss},
            "remote_video": remote is not None and remote.latest is not None,
            # Seconds the specialist's screen has left the call unanswered (0: answered),
            # and when that is worth telling the nurse (the cart then offers again).
            "unanswered_s": round(consultation.unanswered_for()) if consultation else 0,
            "no_answer_after_s": agent.reconnector.policy.answer_timeout_s,
            "devices": [
                {"device": s.device, "kind": s.kind, "state": s.state, "message": s.message}
                for s in sorted(agent.devices.board.latest().values(), key=lambda s: s.device)
            ],
            "chat": [dataclasses.asdict(line) for line in self._chat],
            "notice": self._notice,
        }

    # --- routes --------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/state", self._state),
            web.get("/api/events", self._events),
            web.post("/api/request", self._request),
            web.post("/api/cancel", self._cancel),
            web.post("/api/hangup", self._hangup),
            web.post("/api/chat", self._send_chat),
            web.get("/api/video/{which:self|remote}.jpg", self._frame),
            web.get("/api/journey/referrals", self._referrals),
            web.post("/api/journey/referrals", self._create_referral),
            web.get("/api/journey/referrals/{rid}", self._referral),
            web.post("/api/journey/referrals/{rid}/attachments", self._attach),
            web.get("/api/journey/slots", self._slots),
            web.get("/api/journey/appointments", self._appointments),
            web.post("/api/journey/appointments", self._book),
            web.post("/api/journey/appointments/{aid}/cancel", self._cancel_appointment),
            web.post("/api/journey/appointments/{aid}/reschedule", self._reschedule),
            web.post("/api/journey/appointments/{aid}/start", self._start_booked),
            web.put("/api/journey/sessions/{sid}/referral", self._link_referral),
        ]

    @web.middleware
    async def errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except ApiError as exc:
            return _error_response(exc.status, exc.code, exc.message)
        except JourneyError as exc:
            return _error_response(exc.status, exc.code, exc.message)
        except NotConnectedError:
            return _error_response(
                503,
                "server_offline",
                "The cart is not connected to the server; it is reconnecting.",
            )

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def _events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        self._sockets.add(ws)
        reader = asyncio.create_task(self._drain(ws), name="nurse-ws-reader")
        try:
            while not ws.closed:
                self._changed.clear()
                await ws.send_json(self.snapshot())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PUSH_INTERVAL_S):
                        await self._changed.wait()
        except ConnectionResetError:
            pass
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self._sockets.discard(ws)
        return ws

    @staticmethod
    async def _drain(ws: web.WebSocketResponse) -> None:
        """The page sends nothing on this socket; reading notices when it goes away."""
        async for _ in ws:
            pass

    async def _json(self, request: web.Request) -> dict[str, Any]:
        if request.content_type != "application/json":
            raise ApiError(415, "json_required", "Send JSON (Content-Type: application/json).")
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "invalid_json", "The request is not valid JSON.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json", "Send a JSON object.")
        return body

    @staticmethod
    def _text(body: dict[str, Any], key: str, limit: int, required: bool = False) -> str:
        value = body.get(key, "")
        if not isinstance(value, str):
            raise ApiError(400, "invalid_field", f"'{key}' must be text.")
        value = value.strip()
        if len(value) > limit:
            raise ApiError(400, "invalid_field", f"'{key}' is longer than {limit} characters.")
        if required and not value:
            raise ApiError(400, "invalid_field", f"'{key}' is required.")
        return value

    async def _request(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        specialty = self._text(body, "specialty", 64, required=True)
        if self._agent.specialties and specialty not in self._agent.specialties:
            raise ApiError(400, "unknown_specialty", "Choose one of the listed specialties.")
        priority = body.get("priority", "routine")
        if priority not in ("routine", "urgent"):
            raise ApiError(400, "invalid_field", "'priority' must be routine or urgent.")
        reason = self._text(body, "reason", MAX_REASON)
        session = self._agent.session
        if session is not None and session.state is not SessionState.ENDED:
            raise ApiError(409, "session_open", "A consultation is already open.")
        await self._agent.request_consultation(ConsultationRequest(specialty, reason, priority))
        return web.json_response({"ok": True}, status=202)

    async def _cancel(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        await self._agent.cancel(self._text(body, "reason", MAX_REASON))
        return web.json_response({"ok": True}, status=202)

    async def _hangup(self, request: web.Request) -> web.Response:
        await self._json(request)
        await self._agent.hangup()
        return web.json_response({"ok": True}, status=202)

    async def _send_chat(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        text = self._text(body, "text", MAX_CHAT, required=True)
        session = self._agent.session
        if session is None or session.state is SessionState.ENDED:
            raise ApiError(409, "no_session", "Chat opens once a consultation is requested.")
        await self._agent.send_chat(text)
        return web.json_response({"ok": True}, status=202)

    async def _frame(self, request: web.Request) -> web.Response:
        image, number = await self._latest_image(request.match_info["which"])
        if image is None:
            return web.Response(status=204, headers={"Cache-Control": "no-store"})
        data = await asyncio.to_thread(_encode_jpeg, image)
        return web.Response(
            body=data,
            content_type="image/jpeg",
            headers={"Cache-Control": "no-store", "X-Frame-Number": str(number)},
        )

    async def _latest_image(self, which: str) -> tuple[npt.NDArray[np.uint8] | None, int]:
        consultation = self._agent.consultation
        if which == "remote":
            remote = consultation.remote_video if consultation is not None else None
            if remote is None or remote.latest is None:
                return None, 0
            image = await asyncio.to_thread(remote.latest.to_ndarray, format="bgr24")
            return np.asarray(image, np.uint8), remote.frames_received
        if consultation is not None:
            track = consultation.tracks.room
            return track.latest_image, track.frames_sent
        # No consultation: nobody else reads the room camera, so read it here.
        camera_frame = await self._agent.devices.cameras["room"].read()
        return camera_frame.image, int(camera_frame.captured_at * 1000)

    # --- journey -------------------------------------------------------------------------

    @property
    def _journey(self) -> JourneyClient:
        if self._agent.journey is None:
            raise ApiError(503, "not_started", "The cart agent is starting; try again.")
        return self._agent.journey

    async def _referrals(self, request: web.Request) -> web.Response:
        return web.json_response({"referrals": await self._journey.referrals()})

    async def _referral(self, request: web.Request) -> web.Response:
        return web.json_response(await self._journey.referral(request.match_info["rid"]))

    async def _create_referral(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        patient = body.get("patient")
        if not isinstance(patient, dict):
            raise ApiError(400, "invalid_field", "'patient' must be an object.")
        referral = {
            "referral_number": self._text(body, "referral_number", 64, required=True),
            "referring_doctor": self._text(body, "referring_doctor", 200, required=True),
            "specialty": self._text(body, "specialty", 64, required=True),
            "reason": self._text(body, "reason", MAX_REASON, required=True),
            "urgency": self._text(body, "urgency", 16) or "routine",
            "patient": {
                "name": self._text(patient, "name", 200, required=True),
                "birth_date": self._text(patient, "birth_date", 10, required=True),
                "iin": self._text(patient, "iin", 12, required=True),
            },
        }
        return web.json_response(await self._journey.create_referral(referral), status=201)

    async def _attach(self, request: web.Request) -> web.Response:
        kind = request.query.get("kind", "other")
        data = await request.read()
        if not data:
            raise ApiError(400, "empty_file", "The file is empty.")
        attachment = await self._journey.add_attachment(
            request.match_info["rid"], kind, data, request.headers.get("Content-Type")
        )
        return web.json_response(attachment, status=201)

    async def _slots(self, request: web.Request) -> web.Response:
        specialty = request.query.get("specialty", "")
        if not specialty:
            raise ApiError(400, "invalid_field", "Choose a specialty.")
        slots = await self._journey.free_slots(specialty, request.query.get("date"))
        return web.json_response({"slots": slots})

    async def _appointments(self, request: web.Request) -> web.Response:
        appointments = await self._journey.appointments(request.query.get("date"))
        return web.json_response({"appointments": appointments})

    async def _book(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        appointment = await self._journey.book(
            self._text(body, "slot_id", 64, required=True),
            self._text(body, "referral_id", 64, required=True),
        )
        return web.json_response(appointment, status=201)

    async def _cancel_appointment(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        appointment = await self._journey.cancel(
            request.match_info["aid"], self._text(body, "reason", MAX_REASON, required=True)
        )
        return web.json_response(appointment)

    async def _reschedule(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        appointment = await self._journey.reschedule(
            request.match_info["aid"],
            self._text(body, "slot_id", 64, required=True),
            self._text(body, "reason", MAX_REASON, required=True),
        )
        return web.json_response(appointment)

    async def _start_booked(self, request: web.Request) -> web.Response:
        await self._json(request)
        appointment = await self._journey.appointment(request.match_info["aid"])
        session = self._agent.session
        if session is not None and session.state is not SessionState.ENDED:
            raise ApiError(409, "session_open", "A consultation is already open.")
        await self._agent.request_consultation(
            ConsultationRequest(str(appointment["specialty"])), appointment["appointment_id"]
        )
        return web.json_response({"ok": True}, status=202)

    async def _link_referral(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        session = self._agent.session
        if session is None or session.session_id != request.match_info["sid"]:
            raise ApiError(409, "no_session", "That consultation is not this cart's open one.")
        linked = await self._journey.link_referral(
            session.session_id, self._text(body, "referral_id", 64, required=True)
        )
        return web.json_response(linked)
