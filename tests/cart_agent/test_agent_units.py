"""Agent pieces without a consultation: ICE servers, URLs, commands, reconnect."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from telecart.cart_agent.agent import CartAgent, http_base_url
from telecart.cart_agent.control_channel import (
    CommandError,
    PauseCamera,
    RequestStill,
    SwitchCamera,
    parse_command,
)
from telecart.cart_agent.peer import CartPeer, OutgoingTracks, ice_servers_from_json
from telecart.cart_agent.signalling_loop import SignallingLoop
from telecart.cart_agent.tracks import CameraTrack, DeviceAudioTrack
from telecart.config import AgentConfig
from telecart.server.app_keys import SOCKETS
from telecart.signalling.errors import ErrorCode
from telecart.signalling.messages import Error, Message, Welcome, encode_message
from tests.cart_agent.conftest import eventually, small_cart
from tests.server.harness import RunningServer


def test_http_base_url_follows_the_websocket_scheme() -> None:
    assert http_base_url("ws://127.0.0.1:8080/ws") == "http://127.0.0.1:8080"
    assert http_base_url("wss://telecart.example/ws") == "https://telecart.example"


def test_turn_answer_becomes_aiortc_ice_servers() -> None:
    servers = ice_servers_from_json(
        [{"urls": ["turn:127.0.0.1:3478"], "username": "u", "credential": "c"}, {"urls": 5}]
    )
    assert len(servers) == 1
    assert servers[0].urls == ["turn:127.0.0.1:3478"] and servers[0].username == "u"


def simulated_peer() -> CartPeer:
    """A cart peer on a small simulated cart, with no ICE servers."""
    devices = small_cart()
    from telecart.devices.audio_sim import SimulatedAudioInput
    from telecart.devices.camera_sim import SimulatedCamera

    tracks = OutgoingTracks(
        room=CameraTrack("room", SimulatedCamera(devices.cameras[0])),
        exam=CameraTrack("exam", SimulatedCamera(devices.cameras[1])),
        stethoscope=DeviceAudioTrack("stethoscope", SimulatedAudioInput(devices.audio_inputs[0])),
        voice=DeviceAudioTrack("voice", SimulatedAudioInput(devices.audio_inputs[1])),
    )
    return CartPeer([], tracks, lambda role, track: None, lambda state: None)


async def test_the_data_channels_association_starts_at_rfc_9260s_timer() -> None:
    peer = simulated_peer()
    try:
        assert peer.pc.sctp is not None
        assert peer.pc.sctp._rto == 1.0  # aiortc's own start: 3 s (`sctp_timers.py`)
    finally:
        await peer.close()


async def test_no_ice_servers_never_means_a_public_stun_server() -> None:
    peer = simulated_peer()
    try:
        sdp = await peer.create_offer()
        assert "typ srflx" not in sdp and "typ relay" not in sdp
        gatherer = peer.pc.getTransceivers()[0].sender.transport.transport.iceGatherer
        assert gatherer._connection.stun_server is None  # not aiortc's public default
        assert sorted(peer.track_roles().values()) == ["exam", "room", "stethoscope", "voice"]
    finally:
        await peer.close()


def test_commands_are_validated_with_a_readable_reason() -> None:
    assert parse_command({"type": "switch_camera", "track": "room", "camera": "exam"}) == (
        SwitchCamera("room", "exam")
    )
    assert parse_command({"type": "pause_camera", "track": "exam", "paused": True}) == (
        PauseCamera("exam", True)
    )
    assert parse_command({"type": "request_still"}) == RequestStill("exam")
    with pytest.raises(CommandError, match="heart, lung, wide"):
        parse_command({"type": "set_stethoscope_mode", "mode": "bell"})
    with pytest.raises(CommandError, match="unknown command"):
        parse_command({"type": "reboot"})


async def test_agent_reconnects_after_the_server_drops_it(
    server: RunningServer, tmp_path: Path
) -> None:
    token = await server.add_cart("cart-r")
    config = AgentConfig(server_url=server.ws_url, token=token, data_dir=tmp_path)
    agent = CartAgent(config, small_cart())
    fast = SignallingLoop(
        server.ws_url,
        token,
        agent._on_welcome,
        agent._on_message,
        delays=lambda: itertools.repeat(0.05),
    )
    agent._signalling = fast
    await agent.start()
    try:
        await eventually(lambda: fast.connections == 1, what="the first connection")
        for ws in list(server.app[SOCKETS]):
            await ws.close(code=1001, message=b"server restarting")
        await eventually(lambda: fast.connections == 2, what="the reconnection")
        assert fast.connected.is_set()
    finally:
        await agent.close()


async def test_a_cancellation_a_message_handler_swallows_still_stops_the_loop(
    server: RunningServer,
) -> None:
    token = await server.add_cart("cart-c")
    handling = asyncio.Event()

    async def on_welcome(welcome: Welcome) -> None:
        pass

    async def on_message(message: Message) -> None:
        handling.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass  # what something below the agent once did while it closed

    loop = SignallingLoop(server.ws_url, token, on_welcome, on_message)
    task = asyncio.create_task(loop.run())
    try:
        await eventually(lambda: loop.connections == 1, what="the connection")
        for ws in list(server.app[SOCKETS]):
            await ws.send_str(encode_message(Error(code=ErrorCode.INVALID_MESSAGE, message="x")))
        await asyncio.wait_for(handling.wait(), 5)
        task.cancel()
        # Without the check after each message the loop went back to waiting for the
        # next one, and the agent's close waited with it.
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5)
        assert task.cancelled()
    finally:
        task.cancel()
