"""Every cart and specialist authenticates; failures are refused, limited and audited."""

from __future__ import annotations

import aiohttp
import pytest

from telecart.signalling.client import SignallingClient
from telecart.signalling.errors import ErrorCode, ProtocolError
from tests.server.harness import PASSWORD, RunningServer


async def test_cart_with_wrong_token_is_refused_and_audited(server: RunningServer) -> None:
    client = SignallingClient(server.ws_url, role="cart", token="not-a-real-token")
    with pytest.raises(ProtocolError) as refused:
        await client.connect()
    assert refused.value.code is ErrorCode.AUTH_FAILED
    entries = await server.store.audit_entries()
    assert any(e.action == "cart_auth_failed" for e in entries)
    assert all("not-a-real-token" not in str(e.detail) for e in entries)


async def test_revoked_cart_is_refused(server: RunningServer) -> None:
    token = await server.add_cart("cart-1")
    assert await server.store.revoke_cart("cart-1")
    with pytest.raises(ProtocolError) as refused:
        await SignallingClient(server.ws_url, role="cart", token=token).connect()
    assert refused.value.code is ErrorCode.AUTH_FAILED


async def test_cart_token_is_stored_hashed(server: RunningServer) -> None:
    token = await server.add_cart("cart-1")
    raw = server.config.database_path.read_bytes()
    assert token.encode() not in raw


async def test_specialist_without_cookie_is_refused(server: RunningServer) -> None:
    with pytest.raises(ProtocolError) as refused:
        await SignallingClient(server.ws_url, role="specialist").connect()
    assert refused.value.code is ErrorCode.AUTH_REQUIRED


async def test_specialist_with_forged_cookie_is_refused(server: RunningServer) -> None:
    client = SignallingClient(
        server.ws_url, role="specialist", cookies={"telecart_session": "forged"}
    )
    with pytest.raises(ProtocolError):
        await client.connect()


async def test_password_stored_as_argon2(server: RunningServer) -> None:
    await server.add_specialist("amir", "cardiology")
    spec = await server.store.specialist_by_username("amir")
    assert spec is not None and spec.password_hash.startswith("$argon2id$")
    assert PASSWORD not in spec.password_hash


async def test_login_cookie_is_httponly_and_strict(server: RunningServer) -> None:
    await server.add_specialist("amir", "cardiology")
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{server.base}/api/login", json={"username": "amir", "password": PASSWORD}
        ) as resp:
            assert resp.status == 200
            header = resp.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Strict" in header
    assert "Secure" not in header  # plain HTTP here; Secure is set when TLS is configured


async def test_wrong_password_then_rate_limited(server: RunningServer) -> None:
    await server.add_specialist("amir", "cardiology")
    statuses = []
    async with aiohttp.ClientSession() as http:
        for _ in range(server.config.login_attempts + 1):
            async with http.post(
                f"{server.base}/api/login", json={"username": "amir", "password": "wrong"}
            ) as resp:
                statuses.append(resp.status)
        async with http.post(
            f"{server.base}/api/login", json={"username": "amir", "password": PASSWORD}
        ) as resp:
            blocked_even_with_right_password = resp.status
            assert "Retry-After" in resp.headers
    assert statuses[: server.config.login_attempts] == [401] * server.config.login_attempts
    assert statuses[-1] == 429
    assert blocked_even_with_right_password == 429
    actions = [e.action for e in await server.store.audit_entries()]
    assert "login_failed" in actions and "login_blocked" in actions


async def test_unknown_user_and_bad_body_get_clear_errors(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{server.base}/api/login", json={"username": "nobody", "password": "x"}
        ) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"] == "auth_failed"
        async with http.post(f"{server.base}/api/login", data=b"{not json") as resp:
            assert resp.status == 400


async def test_logout_invalidates_cookie(server: RunningServer) -> None:
    await server.add_specialist("amir", "cardiology")
    cookies = await server.login("amir")
    async with aiohttp.ClientSession(cookies=cookies) as http:
        async with http.get(f"{server.base}/api/me") as resp:
            assert resp.status == 200
        async with http.post(f"{server.base}/api/logout") as resp:
            assert resp.status == 200
    async with aiohttp.ClientSession(cookies=cookies) as http:
        async with http.get(f"{server.base}/api/me") as resp:
            assert resp.status == 401


async def test_cross_site_websocket_is_refused(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(server.ws_url, origin="https://evil.example")
    assert refused.value.status == 403


async def test_turn_endpoint_requires_auth(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.base}/api/turn") as resp:
            assert resp.status == 401


async def test_speedtest_needs_cart_token_and_counts_bytes(server: RunningServer) -> None:
    token = await server.add_cart("cart-1")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.base}/api/speedtest", data=b"x" * 1000) as resp:
            assert resp.status == 401
        async with http.post(
            f"{server.base}/api/speedtest",
            data=b"x" * 300_000,
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["received"] == 300_000
