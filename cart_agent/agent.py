"""The cart agent: devices, the server connection, and the consultation in progress."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from telecart.cart_agent.cart_devices import CartDevices
from telecart.cart_agent.consultation import Consultation, StillSettings
from telecart.cart_agent.ice_addresses import restrict_host_addresses
from telecart.cart_agent.lifecycle import cancel_and_wait
from telecart.cart_agent.peer import ice_servers_from_json
from telecart.cart_agent.signalling_loop import NotConnectedError, SignallingLoop
from telecart.cart_agent.stills import EncodedStill, upload_still
from telecart.cart_agent.vitals_channel import VitalsFeed
from telecart.config import AgentConfig
from telecart.devices.config import DevicesConfig
from telecart.signalling.messages import (
    Answer,
    Error,
    Hangup,
    IceCandidate,
    Message,
    Priority,
    RequestConsultation,
    SessionInfo,
    SessionUpdate,
    Welcome,
)
from telecart.signalling.session_state import PAIRED_STATES, SessionState

log = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0


@dataclass(frozen=True)
class ConsultationRequest:
    specialty: str
    reason: str = ""
    priority: Priority = "routine"


def http_base_url(ws_url: str) -> str:
    """`ws://host:port/ws` → `http://host:port` (wss → https)."""
    parts = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


class CartAgent:
    """Runs until `close()`. `request` asks for a consultation on every connection that
    finds no open one; with `repeat_after_s` it asks again that long after one ends
    (the demo cart), otherwise once."""

    def __init__(
        self,
        config: AgentConfig,
        devices_config: DevicesConfig,
        request: ConsultationRequest | None = None,
        repeat_after_s: float | None = None,
    ) -> None:
        if not config.token:
            raise ValueError(
                "the cart has no token: set agent.token_file in the config (or "
                "TELECART_CART_TOKEN); `telecart admin add-cart` prints one"
            )
        self._config = config
        self._token = config.token
        self._http_base = http_base_url(config.server_url)
        self._request = request
        self._repeat_after_s = repeat_after_s
        self.devices = CartDevices(devices_config)
        self._feed = VitalsFeed(self.devices.serial)
        self._signalling = SignallingLoop(
            config.server_url, config.token, self._on_welcome, self._on_message
        )
        self._still_settings = StillSettings(config.still_format, config.still_jpeg_quality)
        self._http: aiohttp.ClientSession | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()
        self.session: SessionInfo | None = None
        self.consultation: Consultation | None = None
        self.sessions_seen: list[str] = []

    @property
    def signalling(self) -> SignallingLoop:
        return self._signalling

    async def start(self) -> None:
        if self._config.ice_addresses:
            restrict_host_addresses(self._config.ice_addresses)
        await self.devices.open()
        self._feed.start()
        self._http = aiohttp.ClientSession()
        self._run_task = asyncio.create_task(self._signalling.run(), name="signalling")

    async def close(self) -> None:
        await cancel_and_wait([self._run_task, *self._tasks])
        await self._end_consultation()
        await self._feed.close()
        await self.devices.close()
        if self._http is not None:
            await self._http.close()

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def request_consultation(self, request: ConsultationRequest) -> None:
        await self._signalling.send(
            RequestConsultation(
                specialty=request.specialty, priority=request.priority, reason=request.reason
            )
        )

    async def hangup(self) -> None:
        if self.session is not None and self.session.state is not SessionState.ENDED:
            await self._signalling.send(Hangup(session_id=self.session.session_id))

    # --- signalling ----------------------------------------------------------------------

    async def _on_welcome(self, welcome: Welcome) -> None:
        self.session = welcome.session
        if welcome.session is None:
            await self._end_consultation()
            if self._request is not None:
                await self.request_consultation(self._request)
        elif welcome.session.state in PAIRED_STATES:
            if self._repeat_after_s is not None and self.consultation is None:
                # A demo cart restarted mid-consultation: nobody is waiting for it any more.
                await self._signalling.send(Hangup(session_id=welcome.session.session_id))
                return
            # Back after a drop: the old peer connection is gone for the specialist too.
            await self._start_consultation(welcome.session.session_id)

    async def _on_message(self, message: Message) -> None:
        consultation = self.consultation
        match message:
            case SessionUpdate(session=session):
                await self._on_session(session)
            case Answer(session_id=sid, sdp=sdp) if consultation and consultation.session_id == sid:
                await consultation.accept_answer(sdp)
            case IceCandidate() if consultation and consultation.session_id == message.session_id:
                await consultation.add_candidate(
                    message.candidate, message.sdp_mid, message.sdp_mline_index
                )
            case Error(code=code, message=text, ref_type=ref):
                log.warning("server error %s about %s: %s", code.value, ref, text)
            case _:
                log.debug("ignored %s", message.TYPE)

    async def _on_session(self, session: SessionInfo) -> None:
        self.session = session
        if session.session_id not in self.sessions_seen:
            self.sessions_seen.append(session.session_id)
        log.info("session %s is %s", session.session_id, session.state.value)
        if session.state is SessionState.ENDED:
            await self._end_consultation()
            if self._request is not None and self._repeat_after_s is not None:
                self._spawn(self._request_again(self._request, self._repeat_after_s), "re-request")
        elif session.state is SessionState.ACCEPTED and self.consultation is None:
            await self._start_consultation(session.session_id)

    async def _request_again(self, request: ConsultationRequest, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if self.session is None or self.session.state is SessionState.ENDED:
            with contextlib.suppress(NotConnectedError):
                await self.request_consultation(request)

    # --- consultation --------------------------------------------------------------------

    async def _ice_servers(self) -> list[dict[str, object]]:
        assert self._http is not None
        async with self._http.get(
            f"{self._http_base}/api/turn", headers={"Authorization": f"Bearer {self._token}"}
        ) as response:
            response.raise_for_status()
            body = await response.json()
        servers = body.get("iceServers", [])
        return servers if isinstance(servers, list) else []

    async def _start_consultation(self, session_id: str) -> None:
        async with self._lock:
            await self._end_consultation_locked()
            try:
                servers = ice_servers_from_json(await self._ice_servers())
            except aiohttp.ClientError as exc:
                log.warning("could not get relay (TURN) servers, trying without: %s", exc)
                servers = []
            consultation = Consultation(
                session_id,
                self.devices,
                self._feed,
                servers,
                self._signalling.send,
                self._upload,
                self._still_settings,
                on_failed=lambda: self._spawn(self._restart(session_id), "restart-media"),
            )
            self.consultation = consultation
            await consultation.start()

    async def _restart(self, session_id: str) -> None:
        """The media path failed: offer again on a fresh peer connection."""
        await asyncio.sleep(RESTART_DELAY_S)
        if self.session is not None and self.session.session_id == session_id:
            if self.session.state in PAIRED_STATES:
                log.info("session %s: media failed, offering again", session_id)
                await self._start_consultation(session_id)

    async def _end_consultation(self) -> None:
        async with self._lock:
            await self._end_consultation_locked()

    async def _end_consultation_locked(self) -> None:
        consultation, self.consultation = self.consultation, None
        if consultation is not None:
            await consultation.close()
            log.info("session %s: media closed", consultation.session_id)

    async def _upload(self, session_id: str, still: EncodedStill) -> dict[str, Any]:
        assert self._http is not None
        return await upload_still(self._http, self._http_base, self._token, session_id, still)
