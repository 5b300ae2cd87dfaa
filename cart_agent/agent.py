"""The cart agent: devices, the server connection, and the consultation in progress."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from telecart.cart_agent.cart_devices import CartDevices
from telecart.cart_agent.consultation import Consultation, StillSettings
from telecart.cart_agent.ice_addresses import restrict_host_addresses
from telecart.cart_agent.journey_client import JourneyClient
from telecart.cart_agent.lifecycle import cancel_and_wait
from telecart.cart_agent.link_memory import LinkMemory
from telecart.cart_agent.peer import ice_servers_from_json
from telecart.cart_agent.reconnect import MediaReconnector, SessionOutbox
from telecart.cart_agent.signalling_loop import NotConnectedError, SignallingLoop
from telecart.cart_agent.stills import EncodedStill, upload_still
from telecart.cart_agent.vitals_channel import VitalsFeed
from telecart.config import INITIAL_UPLINK_KBPS_RANGE, AgentConfig
from telecart.devices.config import DevicesConfig
from telecart.signalling.messages import (
    Answer,
    Cancel,
    Chat,
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
from telecart.signalling.session_state import PAIRED_STATES, EndReason, SessionState

log = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0
TURN_TIMEOUT_S = 3.0  # a cart offering again while the link is down must not hang here
REJOIN_CHECK_S = 1.5  # how long a reconnected agent looks for media before offering again

MessageObserver = Callable[[Message], None]


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
            config.server_url,
            config.token,
            self._on_welcome,
            self._on_message,
            urgent=self._in_consultation,
        )
        self._still_settings = StillSettings(config.still_format, config.still_jpeg_quality)
        self.link_memory = LinkMemory.in_dir(config.data_dir)
        self._http: aiohttp.ClientSession | None = None
        self.journey: JourneyClient | None = None  # the journey API, once started
        self._run_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()
        self.session: SessionInfo | None = None
        self.consultation: Consultation | None = None
        self.sessions_seen: list[str] = []
        # --- reliability (issue 10): the session's outbox, renegotiation ---
        self.outbox: SessionOutbox | None = None
        self.reconnector = MediaReconnector(
            lambda: self.consultation, self._may_offer_again, self._offer_again
        )
        self._rejoining = False
        self._ice_cache: list[dict[str, object]] = []
        # --- end reliability ---
        self.specialties: list[str] = []
        self._observers: list[MessageObserver] = []

    def _in_consultation(self) -> bool:
        """A session is paired with a specialist (media may need renegotiating)."""
        return self.session is not None and self.session.state in PAIRED_STATES

    def _may_offer_again(self) -> bool:
        """The reconnector may offer: connected, and not while `_rejoin` looks at media."""
        return self._signalling.connected.is_set() and not self._rejoining

    @property
    def signalling(self) -> SignallingLoop:
        return self._signalling

    def observe(self, observer: MessageObserver) -> Callable[[], None]:
        """Call `observer` with every message to and from the server (the nurse screen's
        feed); returns a function that stops it."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def _notify(self, message: Message) -> None:
        for observer in list(self._observers):
            try:
                observer(message)
            except Exception:
                log.exception("a message observer failed on '%s'", message.TYPE)

    async def _send(self, message: Message) -> None:
        self._notify(message)
        await self._signalling.send(message)

    async def start(self) -> None:
        if self._config.ice_addresses:
            restrict_host_addresses(self._config.ice_addresses)
        await self.devices.open()
        self._feed.start()
        self._http = aiohttp.ClientSession()
        self.journey = JourneyClient(self._http, self._http_base, self._token)
        self._run_task = asyncio.create_task(self._signalling.run(), name="signalling")
        self.reconnector.start()

    async def close(self) -> None:
        await cancel_and_wait([self._run_task, *self._tasks])
        await self.reconnector.close()
        await self._end_consultation()
        await self._close_outbox()
        await self._feed.close()
        await self.devices.close()
        if self._http is not None:
            await self._http.close()

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def request_consultation(
        self, request: ConsultationRequest, appointment_id: str | None = None
    ) -> None:
        await self._send(
            RequestConsultation(
                specialty=request.specialty,
                priority=request.priority,
                reason=request.reason,
                appointment_id=appointment_id,
            )
        )

    async def hangup(self) -> None:
        if self.session is not None and self.session.state is not SessionState.ENDED:
            await self._send(Hangup(session_id=self.session.session_id))

    async def cancel(self, reason: str = "") -> None:
        """Withdraw a request nobody has accepted yet."""
        if self.session is not None and self.session.state is not SessionState.ENDED:
            await self._send(Cancel(session_id=self.session.session_id, reason=reason))

    async def send_chat(self, text: str) -> None:
        if self.session is not None and self.session.state is not SessionState.ENDED:
            await self._send(Chat(session_id=self.session.session_id, text=text))

    # --- signalling ----------------------------------------------------------------------

    async def _on_welcome(self, welcome: Welcome) -> None:
        self.session = welcome.session
        self.specialties = list(welcome.specialties)
        self._notify(welcome)
        if welcome.session is None:
            await self._end_consultation()
            if self._request is not None:
                await self.request_consultation(self._request)
        elif welcome.session.state in PAIRED_STATES:
            if self._repeat_after_s is not None and self.consultation is None:
                # A demo cart restarted mid-consultation: nobody is waiting for it any more.
                await self._give_up(welcome.session.session_id, "this is a demo cart")
                return
            try:
                await self._rejoin(welcome.session.session_id)
            except (NotConnectedError, asyncio.CancelledError):
                raise
            except Exception as exc:
                log.exception("session %s: could not resume", welcome.session.session_id)
                await self._give_up(welcome.session.session_id, str(exc))

    async def _give_up(self, session_id: str, why: str) -> None:
        """End a session this agent cannot resume; the specialist is told the cart
        restarted (EndReason.CART_RESTARTED)."""
        log.warning("session %s: ending it, the cart cannot resume it: %s", session_id, why)
        await self._end_consultation()
        await self._signalling.send(
            Hangup(session_id=session_id, reason=EndReason.CART_RESTARTED.value)
        )

    async def _on_message(self, message: Message) -> None:
        self._notify(message)
        consultation = self.consultation
        match message:
            case SessionUpdate(session=session):
                await self._on_session(session)
            case Answer(session_id=sid, sdp=sdp) if consultation and consultation.session_id == sid:
                await consultation.accept_answer(sdp, message.offer_id)
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
        consultation = self.consultation
        if consultation is not None and consultation.session_id == session.session_id:
            # The specialist lost media while ours still flowed (a reloaded page): offer
            # as soon as ours stops too, without the usual wait (reconnect.py).
            if session.state is SessionState.RECONNECTING:
                consultation.peer_reported_loss |= consultation.link_state == "connected"
            elif session.state is SessionState.LIVE:
                consultation.peer_reported_loss = False
        if session.state is SessionState.ENDED:
            await self._end_consultation()
            await self._close_outbox()
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
        try:
            async with (
                asyncio.timeout(TURN_TIMEOUT_S),
                self._http.get(
                    f"{self._http_base}/api/turn",
                    headers={"Authorization": f"Bearer {self._token}"},
                ) as response,
            ):
                response.raise_for_status()
                body = await response.json()
        except TimeoutError:
            log.warning("the server did not answer for relay servers; using the last ones")
            return self._ice_cache
        servers = body.get("iceServers", [])
        self._ice_cache = servers if isinstance(servers, list) else []
        return self._ice_cache

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
                await self._session_outbox(session_id),
                servers,
                self._send,
                self._still_settings,
                on_failed=lambda: self._spawn(self._restart(session_id), "restart-media"),
                initial_uplink_kbps=await self.initial_uplink_kbps(),
                link_recording=self._link_recording_path(session_id),
            )
            self.consultation = consultation
            self.reconnector.offered()
            try:
                await consultation.start()
            except NotConnectedError:
                log.info("session %s: offer waits for the server connection", session_id)

    async def _restart(self, session_id: str) -> None:
        """The media path failed: offer again on a fresh peer connection."""
        await asyncio.sleep(RESTART_DELAY_S)
        if self.session is not None and self.session.session_id == session_id:
            if self.session.state in PAIRED_STATES:
                log.info("session %s: media failed, offering again", session_id)
                await self._start_consultation(session_id)

    async def _rejoin(self, session_id: str) -> None:
        """Back on the server with the session open: keep media that still flows (the
        server restarted, media is peer to peer, or a short outage healed by itself),
        otherwise offer again at once."""
        self._rejoining = True
        try:
            consultation = self.consultation
            if (
                consultation is not None
                and consultation.session_id == session_id
                and consultation.usable
            ):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(REJOIN_CHECK_S):
                        while consultation.link_state != "connected":  # noqa: ASYNC110
                            await asyncio.sleep(0.1)
                if consultation.link_state == "connected" and self.consultation is consultation:
                    log.info("session %s: media still flows; keeping the connection", session_id)
                    consultation.report_media_state()
                    return
            await self._start_consultation(session_id)
        finally:
            self._rejoining = False

    async def _offer_again(self, session_id: str) -> None:
        if self.session is not None and self.session.session_id == session_id:
            if self.session.state in PAIRED_STATES:
                await self._start_consultation(session_id)

    async def _session_outbox(self, session_id: str) -> SessionOutbox:
        if self.outbox is not None and self.outbox.session_id != session_id:
            await self._close_outbox()
        if self.outbox is None:
            self.outbox = SessionOutbox(
                session_id,
                self._config.data_dir,
                self._feed,
                lambda still: self._upload(session_id, still),
            )
            await self.outbox.start()
        return self.outbox

    async def _close_outbox(self) -> None:
        outbox, self.outbox = self.outbox, None
        if outbox is not None:
            await outbox.close()

    async def _end_consultation(self) -> None:
        async with self._lock:
            await self._end_consultation_locked()

    async def _end_consultation_locked(self) -> None:
        consultation, self.consultation = self.consultation, None
        if consultation is not None:
            await consultation.close()
            log.info("session %s: media closed", consultation.session_id)
            settled = consultation.rate_controller.settled_bps
            if settled is not None:
                await self.link_memory.remember(settled)

    def _link_recording_path(self, session_id: str) -> Path | None:
        """Where this call's link recording goes, if the technician asked for one."""
        if not self._config.record_link:
            return None
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in session_id)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return self._config.data_dir / "link-recordings" / f"{name}-{stamp}.jsonl.gz"

    async def initial_uplink_kbps(self) -> int:
        """The configured start, or lower where the last call settled (`link_memory.py`)."""
        configured = self._config.initial_uplink_kbps
        remembered = await self.link_memory.recall()
        if remembered is None or remembered / 1000 >= configured:
            return configured
        start = max(INITIAL_UPLINK_KBPS_RANGE[0], int(remembered / 1000))
        log.info("rate control starts at %d kbit/s, where the last call settled", start)
        return start

    async def _upload(self, session_id: str, still: EncodedStill) -> dict[str, Any]:
        assert self._http is not None
        return await upload_still(self._http, self._http_base, self._token, session_id, still)
