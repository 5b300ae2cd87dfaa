"""`GET /api/turn` issues TURN REST credentials that a real coturn accepts, and only those."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioice import stun
from aioice.turn import create_turn_endpoint
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)

from telecart.config import TurnConfig
from telecart.server.turn_credentials import TurnCredentials, issue_turn_credentials
from tests.server.coturn_fixture import Coturn, coturn
from tests.server.harness import RunningServer, running_server, server_config

__all__ = ["coturn"]  # the fixture is used by name

CONNECT_TIMEOUT_S = 30.0
TTL_S = 120


@pytest.fixture
async def turn_app(tmp_path: Path, coturn: Coturn) -> AsyncIterator[RunningServer]:
    turn = TurnConfig(urls=(coturn.url,), secret=coturn.secret, ttl_s=TTL_S)
    async with running_server(server_config(tmp_path, turn=turn)) as srv:
        yield srv


async def _fetch_turn(server: RunningServer, headers: dict[str, str]) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.base}/api/turn", headers=headers) as resp:
            await resp.read()
            return resp


async def _ice_config(server: RunningServer) -> dict[str, Any]:
    token = await server.add_cart("cart-turn")
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{server.base}/api/turn", headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            assert resp.status == 200, await resp.text()
            body: dict[str, Any] = await resp.json()
            return body


async def _allocate(coturn: Coturn, username: str, password: str) -> tuple[str, int]:
    """One TURN Allocate over UDP; returns the relayed address or raises TransactionFailed."""
    transport, _ = await create_turn_endpoint(
        asyncio.DatagramProtocol, coturn.address, username=username, password=password
    )
    try:
        relayed: tuple[str, int] = transport.get_extra_info("sockname")
        return relayed
    finally:
        transport.close()


async def test_unauthenticated_turn_request_is_refused(turn_app: RunningServer) -> None:
    resp = await _fetch_turn(turn_app, {})
    assert resp.status == 401
    forged = await _fetch_turn(turn_app, {"Authorization": "Bearer not-a-cart-token"})
    assert forged.status == 401


async def test_turn_credentials_expire_after_configured_ttl(
    turn_app: RunningServer, coturn: Coturn
) -> None:
    before = int(time.time())
    body = await _ice_config(turn_app)
    after = int(time.time())
    assert body["ttl"] == TTL_S
    [server] = body["iceServers"]
    assert server["urls"] == [coturn.url]
    expiry, party = server["username"].split(":", 1)
    assert party.startswith("cart:")
    assert before + TTL_S <= int(expiry) <= after + TTL_S
    digest = hmac.new(coturn.secret.encode(), server["username"].encode(), hashlib.sha1).digest()
    assert server["credential"] == base64.b64encode(digest).decode()


async def test_default_turn_ttl_is_ten_minutes(tmp_path: Path) -> None:
    turn = TurnConfig(urls=("turn:127.0.0.1:3478",), secret="s")
    async with running_server(server_config(tmp_path, turn=turn)) as srv:
        before = int(time.time())
        body = await _ice_config(srv)
    assert body["ttl"] == 600
    expiry = int(body["iceServers"][0]["username"].split(":", 1)[0])
    assert before + 600 <= expiry <= int(time.time()) + 600


async def test_issued_credential_allocates_a_relay(turn_app: RunningServer, coturn: Coturn) -> None:
    [server] = (await _ice_config(turn_app))["iceServers"]
    host, port = await _allocate(coturn, server["username"], server["credential"])
    assert host == "127.0.0.1" and port > 0


async def test_expired_credential_is_refused_by_coturn(coturn: Coturn) -> None:
    expired = issue_turn_credentials(coturn.secret, "cart:x", time.time() - 2 * TTL_S, TTL_S)
    await _assert_refused(coturn, expired)


async def test_forged_credential_is_refused_by_coturn(coturn: Coturn) -> None:
    genuine = issue_turn_credentials(coturn.secret, "cart:x", time.time(), TTL_S)
    forged = issue_turn_credentials("not-the-secret", "cart:x", time.time(), TTL_S)
    assert forged.username == genuine.username
    await _assert_refused(coturn, forged)


async def _assert_refused(coturn: Coturn, creds: TurnCredentials) -> None:
    with pytest.raises(stun.TransactionFailed) as refused:
        await _allocate(coturn, creds.username, creds.credential)
    assert refused.value.response.attributes["ERROR-CODE"][0] == 401


async def test_relay_only_peers_connect_through_coturn(
    turn_app: RunningServer, coturn: Coturn
) -> None:
    ice = [RTCIceServer(**_ice_server_args(s)) for s in (await _ice_config(turn_app))["iceServers"]]
    config = RTCConfiguration(iceServers=ice, iceTransportPolicy=RTCIceTransportPolicy.RELAY)
    caller, callee = RTCPeerConnection(config), RTCPeerConnection(config)
    try:
        received: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        @callee.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            @channel.on("message")
            def on_message(message: str | bytes) -> None:
                if not received.done():
                    received.set_result(str(message))

        channel = caller.createDataChannel("chat")
        opened = asyncio.Event()
        channel.on("open", opened.set)

        await caller.setLocalDescription(await caller.createOffer())
        offer = caller.localDescription
        assert _candidate_types(offer.sdp) == {"relay"}
        await callee.setRemoteDescription(offer)
        await callee.setLocalDescription(await callee.createAnswer())
        assert _candidate_types(callee.localDescription.sdp) == {"relay"}
        await caller.setRemoteDescription(callee.localDescription)

        await asyncio.wait_for(opened.wait(), CONNECT_TIMEOUT_S)
        channel.send("auscultation starting")
        assert await asyncio.wait_for(received, CONNECT_TIMEOUT_S) == "auscultation starting"
        for pc in (caller, callee):
            assert _selected_local_candidate_type(pc) == "relay"
        assert await _logged(coturn, "ALLOCATE processed, success")
    finally:
        await caller.close()
        await callee.close()


async def _logged(coturn: Coturn, text: str) -> bool:
    """coturn writes its log from another thread; give it a moment to reach the file."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while text not in coturn.log():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def _ice_server_args(server: dict[str, Any]) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(RTCIceServer)}
    return {k: v for k, v in server.items() if k in fields}


def _candidate_types(sdp: str) -> set[str]:
    return {
        line.split(" typ ", 1)[1].split()[0]
        for line in sdp.splitlines()
        if line.startswith("a=candidate:")
    }


def _selected_local_candidate_type(pc: RTCPeerConnection) -> str:
    # aiortc 1.16 has no candidate-pair stats; the nominated pair lives on aioice's Connection.
    sctp = pc.sctp
    assert sctp is not None
    connection = sctp.transport.transport._connection
    [pair] = connection._nominated.values()
    candidate_type: str = pair.local_candidate.type
    return candidate_type
