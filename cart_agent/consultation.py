"""One consultation's media: tracks, peer connection, channels, stills, specialist's media."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCIceServer
from aiortc.mediastreams import MediaStreamTrack
from aiortc.stats import RTCRemoteInboundRtpStreamStats

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
from telecart.cart_agent.peer import CartPeer, OutgoingTracks
from telecart.cart_agent.stills import EncodedStill, StillError, encode_still, send_still
from telecart.cart_agent.tracks import (
    CameraTrack,
    DeviceAudioTrack,
    RemoteAudioPlayer,
    RemoteVideo,
)
from telecart.cart_agent.vitals_channel import VitalsFeed, VitalsSender
from telecart.devices.errors import DeviceError
from telecart.devices.status import DeviceStatus
from telecart.signalling.messages import MediaState, MediaStateName, Message, Offer

log = logging.getLogger(__name__)

QUALITY_INTERVAL_S = 2.0
_MEDIA_STATES: dict[str, MediaStateName] = {
    "connecting": "connecting",
    "connected": "connected",
    "disconnected": "disconnected",
    "failed": "failed",
}

Uploader = Callable[[str, EncodedStill], Awaitable[dict[str, Any]]]


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
        feed: VitalsFeed,
        ice_servers: list[RTCIceServer],
        send: Callable[[Message], Awaitable[None]],
        upload: Uploader,
        still_settings: StillSettings,
        on_failed: Callable[[], None],
    ) -> None:
        self.session_id = session_id
        self._devices = devices
        self._send = send
        self._upload = upload
        self._still_settings = still_settings
        self._on_failed = on_failed
        self._tasks: set[asyncio.Task[Any]] = set()
        self.connection_state = "new"
        self.stills_sent: list[EncodedStill] = []
        self.stills_stored: dict[str, dict[str, Any]] = {}
        self.remote_audio: RemoteAudioPlayer | None = None
        self.remote_video: RemoteVideo | None = None
        tracks = OutgoingTracks(
            room=CameraTrack("room", devices.cameras["room"]),
            exam=CameraTrack("exam", devices.cameras["exam"]),
            stethoscope=DeviceAudioTrack("stethoscope", devices.audio_inputs["stethoscope"]),
            voice=DeviceAudioTrack("voice", devices.audio_inputs["voice"]),
        )
        self.peer = CartPeer(ice_servers, tracks, self._remote_track, self._connection_state)
        self.vitals = VitalsSender(self.peer.channels.vitals, feed)
        self.control = ControlChannel(self.peer.channels.control, self._execute)
        self.control.when_open(self._greet)
        self._unsubscribe_status = devices.board.subscribe(self._device_status)

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
        await self._send(Offer(session_id=self.session_id, sdp=sdp))
        log.info("session %s: offer sent", self.session_id)

    async def accept_answer(self, sdp: str) -> None:
        await self.peer.accept_answer(sdp)

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
        if state == "connected" and not any(t.get_name() == "quality" for t in self._tasks):
            self._spawn(self._report_quality(), "quality")

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
        stethoscope = self._devices.audio_inputs["stethoscope"]
        return {
            "type": "state",
            "cameras": {
                t.role: {"camera": _camera_role(self._devices, t), "paused": t.paused}
                for t in (tracks.room, tracks.exam)
            },
            "muted": {t.role: t.muted for t in (tracks.stethoscope, tracks.voice)},
            "stethoscope_mode": getattr(stethoscope, "mode", None),
        }

    def _device_status(self, status: DeviceStatus) -> None:
        self.control.send_event({"type": "device_status", **dataclasses.asdict(status)})

    async def _report_quality(self) -> None:
        previous = {t.role: t.frames_sent for t in (self.tracks.room, self.tracks.exam)}
        while True:
            await asyncio.sleep(QUALITY_INTERVAL_S)
            stats = await self.peer.pc.getStats()
            rtts = [
                s.roundTripTime
                for s in stats.values()
                if isinstance(s, RTCRemoteInboundRtpStreamStats) and s.roundTripTime is not None
            ]
            fps = {}
            for track in (self.tracks.room, self.tracks.exam):
                sent = track.frames_sent - previous[track.role]
                fps[track.role] = round(sent / QUALITY_INTERVAL_S, 1)
                previous[track.role] = track.frames_sent
            self.control.send_event(
                {
                    "type": "quality",
                    "rtt_ms": round(1000 * max(rtts), 1) if rtts else None,
                    "fps": fps,
                    "at": time.time(),
                }
            )

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
                source = self._devices.audio_inputs["stethoscope"]
                if not hasattr(source, "mode"):
                    raise CommandError(
                        "this stethoscope has no selectable mode: set it on the device"
                    )
                source.mode = mode
            case Mute(track=role, muted=muted):
                audio = {"stethoscope": tracks.stethoscope, "voice": tracks.voice}
                audio[role].muted = muted
            case RequestStill(camera=camera):
                await self.take_still(camera)
        self.control.send_event(self._settings())

    async def take_still(self, camera: str = "exam") -> EncodedStill:
        """Capture at full resolution, send it to the specialist, store it on the server."""
        try:
            image = await self._devices.cameras[camera].capture_still()
        except DeviceError as exc:
            raise CommandError(exc.message) from exc
        settings = self._still_settings
        still = await asyncio.to_thread(
            encode_still, image, camera, settings.still_format, settings.jpeg_quality
        )
        try:
            await send_still(self.peer.channels.stills, still)
        except StillError as exc:
            raise CommandError(str(exc)) from exc
        self.stills_sent.append(still)
        log.info("session %s: still %s sent (%d bytes, %dx%d)", self.session_id,
                 still.still_id, len(still.data), still.width, still.height)  # fmt: skip
        self._spawn(self._store(still), "still-upload")
        return still

    async def _store(self, still: EncodedStill) -> None:
        record = await self._upload(self.session_id, still)
        self.stills_stored[still.still_id] = record
        channel = self.peer.channels.stills
        if channel.readyState == "open":
            stored = {
                "type": "still_stored",
                "still_id": still.still_id,
                "server_still_id": record["still_id"],
                "url": record["url"],
            }
            channel.send(json.dumps(stored))

    async def close(self) -> None:
        self._unsubscribe_status()
        await self.vitals.close()
        await cancel_and_wait(list(self._tasks))
        for sink in (self.remote_audio, self.remote_video):
            if sink is not None:
                await sink.close()
        await self.peer.close()


def _camera_role(devices: CartDevices, track: CameraTrack) -> str:
    return next((role for role, cam in devices.cameras.items() if cam is track.source), "?")
