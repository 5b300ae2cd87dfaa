"""Malformed, oversized, unknown and flooding input: an error with a code, nothing lost."""

from __future__ import annotations

import json

import aiohttp

from telecart.signalling.errors import ErrorCode
from telecart.signalling.messages import Ping, Pong, RequestConsultation, SessionUpdate
from tests.server.harness import RunningServer, next_of


async def _raw_cart(
    server: RunningServer, http: aiohttp.ClientSession
) -> aiohttp.ClientWebSocketResponse:
    token = await server.add_cart("raw-cart")
    ws = await http.ws_connect(server.ws_url, max_msg_size=4 * 1024 * 1024)
    await ws.send_str(json.dumps({"v": 1, "type": "hello", "role": "cart", "token": token}))
    welcome = json.loads((await ws.receive(timeout=5)).data)
    assert welcome["type"] == "welcome"
    return ws


async def _error_code(ws: aiohttp.ClientWebSocketResponse) -> str:
    while True:
        data = json.loads((await ws.receive(timeout=5)).data)
        if data["type"] == "error":
            return str(data["code"])


async def _still_alive(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_str(json.dumps({"v": 1, "type": "ping", "id": "alive"}))
    while True:
        data = json.loads((await ws.receive(timeout=5)).data)
        if data["type"] == "pong":
            assert data["id"] == "alive"
            return


async def test_each_bad_message_gets_its_code_and_connection_stays(server: RunningServer) -> None:
    cases = {
        "{not json": "malformed_json",
        "[1, 2]": "invalid_message",
        json.dumps({"v": 1, "type": "teleport"}): "unknown_type",
        json.dumps({"v": 9, "type": "ping", "id": "x"}): "unsupported_version",
        json.dumps({"v": 1, "type": "accept"}): "invalid_message",
        json.dumps({"v": 1, "type": "ping", "id": 5}): "invalid_message",
        json.dumps({"v": 1, "type": "ping", "id": "x", "extra": 1}): "invalid_message",
        json.dumps({"v": 1, "type": "chat", "session_id": "s", "text": "x" * 5000}): (
            "invalid_message"
        ),
        json.dumps({"v": 1, "type": "welcome", "party_id": "p", "role": "cart", "name": "n"}): (
            "invalid_message"
        ),
        json.dumps({"v": 1, "type": "chat", "session_id": "nope", "text": "hi"}): (
            "not_in_session"
        ),
    }
    async with aiohttp.ClientSession() as http:
        ws = await _raw_cart(server, http)
        for raw, code in cases.items():
            await ws.send_str(raw)
            assert await _error_code(ws) == code, raw
        await _still_alive(ws)
        await ws.close()


async def test_message_over_64_kib_is_refused_but_connection_stays(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await _raw_cart(server, http)
        big = json.dumps({"v": 1, "type": "offer", "session_id": "s", "sdp": "a" * 70_000})
        await ws.send_str(big)
        assert await _error_code(ws) == "message_too_large"
        await _still_alive(ws)
        await ws.close()


async def test_binary_frame_is_refused(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await _raw_cart(server, http)
        await ws.send_bytes(b"\x00\x01")
        assert await _error_code(ws) == "invalid_message"
        await _still_alive(ws)
        await ws.close()


async def test_flood_is_rate_limited_without_affecting_others(server: RunningServer) -> None:
    bystander = await server.cart("bystander")
    async with aiohttp.ClientSession() as http:
        ws = await _raw_cart(server, http)
        for i in range(300):
            await ws.send_str(json.dumps({"v": 1, "type": "ping", "id": str(i)}))
        codes = []
        pongs = 0
        while True:
            msg = await ws.receive(timeout=5)
            data = json.loads(msg.data)
            if data["type"] == "error":
                codes.append(data["code"])
                break
            pongs += 1
        assert codes == ["rate_limited"]
        assert pongs < 300
        await ws.close()
    await bystander.send(Ping(id="ok"))
    pong = await next_of(bystander, Pong)
    assert isinstance(pong, Pong) and pong.id == "ok"
    await bystander.send(RequestConsultation(specialty="cardiology"))
    assert isinstance(await next_of(bystander, SessionUpdate), SessionUpdate)


async def test_silent_client_is_dropped_after_hello_timeout(server: RunningServer) -> None:
    from telecart.server import ws_handler

    original = ws_handler.HELLO_TIMEOUT_S
    ws_handler.HELLO_TIMEOUT_S = 0.3
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(server.ws_url)
            data = json.loads((await ws.receive(timeout=5)).data)
            assert data["code"] == ErrorCode.AUTH_REQUIRED
            closing = await ws.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 4401
    finally:
        ws_handler.HELLO_TIMEOUT_S = original
