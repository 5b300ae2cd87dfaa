"""A specialist built on aiortc: logs in over HTTP, accepts, answers, records what arrives."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame

from telecart.cart_agent.tracks import CameraTrack, DeviceAudioTrack
from telecart.devices.audio_sim import SimulatedAudioInput
from telecart.devices.camera_sim import SimulatedCamera
from telecart.devices.config import AudioInputConfig, CameraConfig
from telecart.signalling.client import SignallingClient
from telecart.signalling.messages import (
    Accept,
    Answer,
    Hangup,
    Message,
    Offer,
    QueueUpdate,
    SessionInfo,
    SessionUpdate,
)
from tests.server.harness import RunningServer

ROLES = ("room", "exam", "stethoscope", "voice")


@dataclass
class ReceivedStill:
    header: dict[str, Any]
    data: bytes
    stored: dict[str, Any] | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Received:
    video_sizes: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    video_frames: dict[str, int] = field(default_factory=dict)
    audio_peak: dict[str, int] = field(default_factory=dict)
    vitals: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    stills: list[ReceivedStill] = field(default_factory=list)


class PythonSpecialist:
    """The specialist's side, as the browser page does it, for tests without a browser."""

    def __init__(self, server: RunningServer, username: str) -> None:
        self.server = server
        self.username = username
        self.cookies: dict[str, str] = {}
        self.client: SignallingClient | None = None
        self.pc: RTCPeerConnection | None = None
        self.received = Received()
        self.session: SessionInfo | None = None
        self.queue: list[str] = []
        self.control: RTCDataChannel | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sources = (
            SimulatedCamera(CameraConfig("room", "simulated", 320, 240, 15)),
            SimulatedAudioInput(AudioInputConfig("voice", "simulated"), seed=7),
        )
        self._partial: ReceivedStill | None = None
        self.updates: asyncio.Queue[SessionInfo] = asyncio.Queue()
        self._queued = asyncio.Event()

    async def connect(self) -> None:
        self.cookies = await self.server.login(self.username)
        self.client = SignallingClient(self.server.ws_url, role="specialist", cookies=self.cookies)
        await self.client.connect()
        self._tasks.append(asyncio.create_task(self._pump()))

    async def _pump(self) -> None:
        assert self.client is not None
        while True:
            message = await self.client.receive()
            await self._handle(message)

    async def _handle(self, message: Message) -> None:
        match message:
            case QueueUpdate(entries=entries):
                self.queue = [e.session_id for e in entries]
                if self.queue:
                    self._queued.set()
            case SessionUpdate(session=session):
                self.session = session
                self.updates.put_nowait(session)
            case Offer(session_id=sid, sdp=sdp, offer_id=offer_id):
                await self._answer(sid, sdp, offer_id)

    async def wait_queue(self, timeout_s: float = 15.0) -> str:
        async with asyncio.timeout(timeout_s):
            await self._queued.wait()
        return self.queue[0]

    async def accept(self, session_id: str) -> None:
        assert self.client is not None
        await self.client.send(Accept(session_id=session_id))

    async def hangup(self) -> None:
        assert self.client is not None and self.session is not None
        await self.client.send(Hangup(session_id=self.session.session_id))

    async def wait_state(self, state: str, timeout_s: float = 15.0) -> SessionInfo:
        async with asyncio.timeout(timeout_s):
            while self.session is None or self.session.state.value != state:
                await self.updates.get()
        return self.session

    async def _answer(self, session_id: str, sdp: str, offer_id: int | None = None) -> None:
        assert self.client is not None
        if self.pc is not None:
            await self.pc.close()
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.pc = pc
        pc.on("track", lambda track: self._on_track(pc, track))
        pc.on("datachannel", self._on_channel)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        transceivers = pc.getTransceivers()
        for source in self._sources:
            await source.open()
        video_back = CameraTrack("specialist", self._sources[0])
        voice_back = DeviceAudioTrack("specialist", self._sources[1])
        for transceiver, track in ((transceivers[0], video_back), (transceivers[3], voice_back)):
            transceiver.direction = "sendrecv"
            transceiver.sender.replaceTrack(track)
        await pc.setLocalDescription(await pc.createAnswer())
        answer = Answer(session_id=session_id, sdp=pc.localDescription.sdp, offer_id=offer_id)
        await self.client.send(answer)

    def _on_track(self, pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
        index = next(i for i, t in enumerate(pc.getTransceivers()) if t.receiver.track is track)
        self._tasks.append(asyncio.create_task(self._consume(ROLES[index], track)))

    async def _consume(self, role: str, track: MediaStreamTrack) -> None:
        received = self.received
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, VideoFrame):
                received.video_sizes.setdefault(role, set()).add((frame.width, frame.height))
                received.video_frames[role] = received.video_frames.get(role, 0) + 1
            elif isinstance(frame, AudioFrame):
                peak = int(np.abs(frame.to_ndarray().astype(np.int32)).max())
                received.audio_peak[role] = max(received.audio_peak.get(role, 0), peak)

    def _on_channel(self, channel: RTCDataChannel) -> None:
        if channel.label == "control":
            self.control = channel
        channel.on("message", lambda raw: self._on_data(channel.label, raw))

    def _on_data(self, label: str, raw: str | bytes) -> None:
        received = self.received
        if label == "vitals":
            assert isinstance(raw, str)
            received.vitals.append(json.loads(raw))
        elif label == "control":
            assert isinstance(raw, str)
            received.events.append(json.loads(raw))
        elif label == "stills":
            if isinstance(raw, bytes):
                assert self._partial is not None
                self._partial.data += raw
                return
            body = json.loads(raw)
            if body["type"] == "still":
                self._partial = ReceivedStill(body, b"")
            elif body["type"] == "still_end":
                assert self._partial is not None
                received.stills.append(self._partial)
                self._partial = None
            elif body["type"] == "still_stored":
                for still in received.stills:
                    if still.header["still_id"] == body["still_id"]:
                        still.stored = body

    @property
    def control_open(self) -> bool:
        return self.control is not None and self.control.readyState == "open"

    def command(self, body: dict[str, Any]) -> None:
        assert self.control is not None and self.control.readyState == "open"
        self.control.send(json.dumps(body))

    async def fetch(self, url: str) -> tuple[int, bytes]:
        async with aiohttp.ClientSession(cookies=self.cookies) as http:
            async with http.get(f"{self.server.base}{url}") as response:
                return response.status, await response.read()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.pc is not None:
            await self.pc.close()
        if self.client is not None:
            await self.client.close()
        for source in self._sources:
            await source.close()
