"""Reference sender: plain aiortc with its defaults, speaking the protocol as a cart.

`TELECART_SERVER_URL=ws://… TELECART_CART_TOKEN=… python -m bench.media_aiortc` sends
the simulated room camera (640×480 at 25 fps, timestamp strip) and the stethoscope signal
with a stock `RTCPeerConnection`: VP8 + Opus as aiortc negotiates them, its own REMB-only
rate control, stock aioice consent. The only setting is `iceServers=[]` (aiortc would
otherwise add a public STUN server, which the lab cannot reach anyway). The specialist's
camera and voice, sent back, are consumed by a `MediaBlackhole`. A `control` data channel
tells the specialist page which m-line is which (`track_roles`). Runs until stdin closes.
With `TELECART_BENCH_STETHOSCOPE_WAV` set, the stethoscope plays that WAV in a loop.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import os
import sys
import time

import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaBlackhole
from aiortc.sdp import candidate_from_sdp
from av import AudioFrame, VideoFrame

from bench.stethoscope_source import loop_from_env
from telecart.devices.camera_sim import render_test_scene
from telecart.devices.stethoscope_sim import StethoscopeSynth
from telecart.signalling.client import SignallingClient
from telecart.signalling.messages import (
    Answer,
    IceCandidate,
    MediaState,
    Offer,
    RequestConsultation,
    SessionUpdate,
)
from telecart.signalling.session_state import SessionState

WIDTH, HEIGHT, FPS = 640, 480, 25
SAMPLE_RATE, CHUNK = 48_000, 960
VIDEO_CLOCK = 90_000


class SceneTrack(MediaStreamTrack):
    """The simulated camera's scene, painted with its capture time, at 25 fps."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._n = 0

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._n / FPS
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        image = await asyncio.to_thread(render_test_scene, WIDTH, HEIGHT, "room", time.time())
        frame = VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self._n * VIDEO_CLOCK // FPS
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._n += 1
        return frame


class StethoscopeTrack(MediaStreamTrack):
    """The synthetic stethoscope (or the benchmark's WAV), mono 48 kHz, 20 ms frames."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        synth = StethoscopeSynth()
        wav_loop = loop_from_env()
        self._next_chunk = (
            wav_loop.next_chunk
            if wav_loop is not None
            else lambda: (synth.next_chunk() * 32767).astype(np.int16)
        )
        self._start: float | None = None
        self._n = 0

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._n * CHUNK / SAMPLE_RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        samples = self._next_chunk().reshape(1, -1)
        frame = AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._n * CHUNK
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._n += 1
        return frame


async def _call(client: SignallingClient, session_id: str) -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sink = MediaBlackhole()
    pc.addTrack(SceneTrack())
    pc.addTrack(StethoscopeTrack())
    control = pc.createDataChannel("control")

    @control.on("open")
    def _roles() -> None:
        roles = {"type": "track_roles", "roles": {"0": "room", "1": "stethoscope"}}
        control.send(json.dumps(roles))

    @pc.on("track")
    def _incoming(track: MediaStreamTrack) -> None:
        sink.addTrack(track)

    @pc.on("connectionstatechange")
    async def _state() -> None:
        if pc.connectionState in ("connecting", "connected", "failed"):
            await client.send(MediaState(session_id=session_id, state=pc.connectionState))

    try:
        await pc.setLocalDescription(await pc.createOffer())
        await client.send(Offer(session_id=session_id, sdp=pc.localDescription.sdp))
        await sink.start()
        while True:
            msg = await client.receive()
            if isinstance(msg, Answer):
                await pc.setRemoteDescription(RTCSessionDescription(msg.sdp, "answer"))
            elif isinstance(msg, IceCandidate) and msg.candidate:
                ice = candidate_from_sdp(msg.candidate.removeprefix("candidate:"))
                ice.sdpMid = msg.sdp_mid
                ice.sdpMLineIndex = msg.sdp_mline_index
                await pc.addIceCandidate(ice)
            elif isinstance(msg, SessionUpdate) and msg.session.state is SessionState.ENDED:
                return
    finally:
        await sink.stop()
        await pc.close()


async def _run() -> int:
    client = SignallingClient(
        os.environ["TELECART_SERVER_URL"], role="cart", token=os.environ["TELECART_CART_TOKEN"]
    )
    await client.connect()
    try:
        await client.send(RequestConsultation(specialty="cardiology", reason="aiortc reference"))
        while True:
            msg = await client.receive()
            if isinstance(msg, SessionUpdate) and msg.session.state is SessionState.ACCEPTED:
                break
        call = asyncio.create_task(_call(client, msg.session.session_id))
        stdin_closed = asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await asyncio.wait([call, stdin_closed], return_when=asyncio.FIRST_COMPLETED)
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
    finally:
        await client.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_run()))
