"""One consultation's media: tracks, peer connection, channels, stills, specialist's media."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiortc import RTCIceServer
from aiortc.mediastreams import MediaStreamTrack

from telecart.cart_agent.cart_devices import CartDevices
from telecart.cart_agent.control_channel import (
    Command,
    CommandError,
    ControlChannel,
    Mute,
    PauseCamera,
    RequestStill,
    SetStethoscopeMode,
    SwitchCamera,
)
from telecart.cart_agent.lifecycle import cancel_and_wait
from telecart.cart_agent.link_recording import LinkRecorder
from telecart.cart_agent.media_watchdog import LinkState, MediaWatchdog
from telecart.cart_agent.peer import CartPeer, OutgoingTracks
from telecart.cart_agent.quality_ladder import Allocation, VideoMode
from telecart.cart_agent.quality_score import QualityState
from telecart.cart_agent.rate_controller import RateController
from telecart.cart_agent.reconnect import SessionOutbox
from telecart.cart_agent.stethoscope_filter import BANDS, StethoscopeFilter
from telecart.cart_agent.stills import EncodedStill, encode_still
from telecart.cart_agent.stills_mode import StillsMode
from telecart.cart_agent.stills_outbox import StillsSender
from telecart.cart_agent.tracks import (
    CameraTrack,
    DeviceAudioTrack,
    RemoteAudioPlayer,
    RemoteVideo,
)
from telecart.cart_agent.vitals_channel import VitalsSender
from telecart.devices.errors import DeviceError
from telecart.devices.status import DeviceStatus
from telecart.signalling.messages import MediaState, MediaStateName, Message, Offer, Quality

log = logging.getLogger(__name__)

_MEDIA_STATES: dict[str, MediaStateName] = {
    "connecting": "connecting",
    "connected": "connected",
    "disconnected": "disconnected",
    "failed": "failed",
}


@dataclass(frozen=True)
class StillSettings:
    still_format: str = "jpeg"
    jpeg_quality: int = 92


class Consultation:
    """Everything the cart runs while one session is paired with a specialist."""

    def __init__(
        self,
        session_id: str,
        devices: CartDevices,
        outbox: SessionOutbox,
        ice_servers: list[RTCIceServer],
        send: Callable[[Message], Awaitable[None]],
        still_settings: StillSettings,
        on_failed: Callable[[], None],
        initial_uplink_kbps: int = 300,
        link_recording: Path | None = None,
    ) -> None:
        self.session_id = session_id
        self._devices = devices
        self._send = send
        self._still_settings = still_settings
        self._on_failed = on_failed
        self._tasks: set[asyncio.Task[Any]] = set()
        self.connection_state = "new"
        self._outbox = outbox
        # --- reliability (issue 10): link watchdog, offer bookkeeping ---
        self._watchdog: MediaWatchdog | None = None
        self.link_state: str = "connecting"
        self._offered_at: float | None = None  # when the offer reached the server
        self._answered = False
        self.offer_id = secrets.randbelow(2**31)  # the answer must repeat it
        self.peer_reported_loss = False  # set by the agent from the session's state
        # --- end reliability ---
        self.remote_audio: RemoteAudioPlayer | None = None
        self.remote_video: RemoteVideo | None = None
        tracks = OutgoingTracks(
            room=CameraTrack("room", devices.cameras["room"]),
            exam=CameraTrack("exam", devices.cameras["exam"]),
            stethoscope=DeviceAudioTrack(
                "stethoscope", devices.audio_inputs["stethoscope"], StethoscopeFilter("wide")
            ),
            voice=DeviceAudioTrack("voice", devices.audio_inputs["voice"]),
        )
        self.peer = CartPeer(ice_servers, tracks, self._remote_track, self._connection_state)
        self.vitals = VitalsSender(self.peer.channels.vitals, outbox.vitals)
        self.stills = StillsSender(self.peer.channels.stills, outbox.stills)
        self.control = ControlChannel(self.peer.channels.control, self._execute)
        self.control.when_open(self._greet)
        self._unsubscribe_status = devices.board.subscribe(self._device_status)
        # --- adaptation (issue 9): rate control, stills mode, published quality ---
        self.stills_mode = StillsMode(self.peer.channels.stills, lambda: tracks.exam.latest_image)
        start_bps = initial_uplink_kbps * 1000
        self.rate_controller = RateController(
            self.peer.senders(),
            self._publish_quality,
            start_bps=start_bps,
            on_allocation=self._allocation,
            fec_types=self.peer.fec_payload_types,
            recorder=(None if link_recording is None else LinkRecorder(link_recording, start_bps)),
        )
        self._frames_at = {
            t.role: (t.frames_sent, time.monotonic()) for t in (tracks.room, tracks.exam)
        }
        # --- end adaptation ---

    @property
    def tracks(self) -> OutgoingTracks:
        return self.peer.tracks

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("session %s: %s failed: %s", self.session_id, task.get_name(),
                        task.exception())  # fmt: skip

    async def start(self) -> None:
        """Create and send the offer."""
        sdp = await self.peer.create_offer()
        await self._send(Offer(session_id=self.session_id, sdp=sdp, offer_id=self.offer_id))
        self._offered_at = time.monotonic()
        log.info("session %s: offer sent", self.session_id)

    @property
    def offer_sent(self) -> bool:
        return self._offered_at is not None

    @property
    def usable(self) -> bool:
        """The offer went out and the peer connection has not failed or closed."""
        return self.offer_sent and self.connection_state not in ("failed", "closed")

    async def accept_answer(self, sdp: str, offer_id: int | None) -> None:
        """Take the specialist's answer, unless it answers an earlier offer."""
        if offer_id is not None and offer_id != self.offer_id:
            log.info("session %s: ignored an answer to an earlier offer", self.session_id)
            return
        if self._answered:
            log.info("session %s: ignored a second answer to the same offer", self.session_id)
            return
        self._answered = True
        await self.peer.accept_answer(sdp)

    # --- reliability (issue 10) ----------------------------------------------------------

    @property
    def stills_sent(self) -> list[EncodedStill]:
        return self.stills.sent

    @property
    def stills_stored(self) -> dict[str, dict[str, Any]]:
        return self._outbox.stills.stored

    def lost_for(self) -> float:
        """Seconds since media stopped arriving (0 while it flows)."""
        lost_at = self._watchdog.lost_at if self._watchdog is not None else None
        return time.monotonic() - lost_at if lost_at is not None else 0.0

    def unanswered_for(self) -> float:
        """Seconds the offer has waited for an answer (0 once answered)."""
        if self._answered or self._offered_at is None:
            return 0.0
        return time.monotonic() - self._offered_at

    def _link_changed(self, state: LinkState) -> None:
        self.link_state = state
        self.rate_controller.link_changed(state)
        if state == "failed":
            if self.connection_state != "failed":
                self._on_failed()
            return
        message = MediaState(session_id=self.session_id, state=state)
        self._spawn(self._send(message), "media-state")

    def report_media_state(self) -> None:
        """Tell the server again how media is (after the signalling reconnected)."""
        state = self.link_state if self.link_state != "failed" else "disconnected"
        if state in ("connected", "disconnected"):
            message = MediaState(session_id=self.session_id, state=state)  # type: ignore[arg-type]
            self._spawn(self._send(message), "media-state")

    async def add_candidate(
        self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        await self.peer.add_candidate(candidate, sdp_mid, sdp_mline_index)

    # --- events --------------------------------------------------------------------------

    def _connection_state(self, state: str) -> None:
        self.connection_state = state
        log.info("session %s: media %s", self.session_id, state)
        media_state = _MEDIA_STATES.get(state)
        if media_state is not None:
            message = MediaState(session_id=self.session_id, state=media_state)
            self._spawn(self._send(message), "media-state")
        if state == "failed":
            self._on_failed()
        if state == "connected":
            self.rate_controller.start()
            if self._watchdog is None:
                self.link_state = "connected"
                self._watchdog = MediaWatchdog(
                    self.peer.pc,
                    self._link_changed,
                    extra_activity=lambda: self.rate_controller.feedback_packets,
                )
                self._watchdog.start()

    def _remote_track(self, role: str, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._devices.speaker is not None:
            self.remote_audio = RemoteAudioPlayer(track, self._devices.speaker)
        elif track.kind == "video":
            self.remote_video = RemoteVideo(track)

    def _greet(self) -> None:
        self.control.send_event({"type": "track_roles", "roles": self.peer.track_roles()})
        self.control.send_event(self._settings())
        for status in self._devices.board.latest().values():
            self._device_status(status)

    def _settings(self) -> dict[str, Any]:
        tracks = self.tracks
        band_filter = tracks.stethoscope.band_filter
        return {
            "type": "state",
            "cameras": {
                t.role: {"camera": _camera_role(self._devices, t), "paused": t.paused}
                for t in (tracks.room, tracks.exam)
            },
            "muted": {t.role: t.muted for t in (tracks.stethoscope, tracks.voice)},
            "stethoscope_mode": band_filter.mode if band_filter is not None else None,
        }

    def _device_status(self, status: DeviceStatus) -> None:
        self.control.send_event({"type": "device_status", **dataclasses.asdict(status)})

    # --- adaptation (issue 9) ------------------------------------------------------------

    def _allocation(self, allocation: Allocation) -> None:
        stills = allocation.level("exam").mode is VideoMode.STILLS
        self.stills_mode.set_budget(allocation.bitrates_bps["exam"] if stills else 0)

    async def _publish_quality(self, state: QualityState) -> None:
        """The controller's state to both screens (control channel) and the server."""
        self.control.send_event(
            {"type": "quality", **state.as_dict(), "fps": self._sent_fps(), "at": time.time()}
        )
        quality = Quality(
            session_id=self.session_id,
            score=state.score,
            estimate_kbps=state.estimate_kbps,
            loss=state.loss,
            rtt_ms=state.rtt_ms,
            rung=f"{state.rung}/{state.rungs - 1}: exam {state.exam}, room {state.room}",
        )
        self._spawn(self._send(quality), "quality")

    def _sent_fps(self) -> dict[str, float]:
        """Frames the cameras handed to the encoders per second since the last call."""
        fps = {}
        now = time.monotonic()
        for track in (self.tracks.room, self.tracks.exam):
            frames, at = self._frames_at[track.role]
            fps[track.role] = round((track.frames_sent - frames) / max(now - at, 1e-3), 1)
            self._frames_at[track.role] = (track.frames_sent, now)
        return fps

    # --- commands ------------------------------------------------------------------------

    async def _execute(self, command: Command) -> None:
        tracks = self.tracks
        video = {"room": tracks.room, "exam": tracks.exam}
        match command:
            case SwitchCamera(track=role, camera=camera):
                target, other = video[role], video["exam" if role == "room" else "room"]
                wanted = self._devices.cameras[camera]
                if other.source is wanted:
                    other.use(target.source)
                target.use(wanted)
            case PauseCamera(track=role, paused=paused):
                video[role].paused = paused
            case SetStethoscopeMode(mode=mode):
                band_filter = tracks.stethoscope.band_filter
                if band_filter is not None and mode in BANDS:
                    band_filter.set_mode(mode)
                source = self._devices.audio_inputs["stethoscope"]
                if hasattr(source, "mode"):  # a simulated stethoscope also reweights
                    source.mode = mode
            case Mute(track=role, muted=muted):
                audio = {"stethoscope": tracks.stethoscope, "voice": tracks.voice}
                audio[role].muted = muted
            case RequestStill(camera=camera):
                await self.take_still(camera)
        self.control.send_event(self._settings())

    async def take_still(self, camera: str = "exam") -> EncodedStill:
        """Capture at full resolution; the session's outbox sends it to the specialist (now,
        or when the link returns) and stores it on the server."""
        try:
            image = await self._devices.cameras[camera].capture_still()
        except DeviceError as exc:
            raise CommandError(exc.message) from exc
        settings = self._still_settings
        still = await asyncio.to_thread(
            encode_still, image, camera, settings.still_format, settings.jpeg_quality
        )
        await self._outbox.stills.add(still)
        log.info("session %s: still %s queued (%d bytes, %dx%d)", self.session_id,
                 still.still_id, len(still.data), still.width, still.height)  # fmt: skip
        return still

    async def close(self) -> None:
        self._unsubscribe_status()
        await self.rate_controller.stop()
        await self.stills_mode.close()
        await self.vitals.close()
        await self.stills.close()
        if self._watchdog is not None:
            await self._watchdog.close()
        await cancel_and_wait(list(self._tasks))
        for sink in (self.remote_audio, self.remote_video):
            if sink is not None:
                await sink.close()
        await self.peer.close()


def _camera_role(devices: CartDevices, track: CameraTrack) -> str:
    return next((role for role, cam in devices.cameras.items() if cam is track.source), "?")
