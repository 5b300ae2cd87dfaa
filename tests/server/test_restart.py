"""A restart keeps carts, specialists, sessions and audit; clients are closed with a code."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from telecart.signalling.client import ConnectionClosed, SignallingClient
from telecart.signalling.messages import (
    Accept,
    Hangup,
    MediaState,
    Offer,
    RequestConsultation,
    SessionUpdate,
)
from telecart.signalling.session_state import SessionState
from tests.server.harness import PASSWORD, next_of, running_server, server_config


async def test_restart_restores_session_and_tells_reconnecting_cart(tmp_path: Path) -> None:
    config = server_config(tmp_path)
    async with running_server(config) as first:
        token = await first.add_cart("cart-1")
        await first.add_specialist("amir", "cardiology")
        cart = SignallingClient(first.ws_url, role="cart", token=token)
        await cart.connect()
        spec = SignallingClient(first.ws_url, role="specialist", cookies=await first.login("amir"))
        await spec.connect()
        await cart.send(RequestConsultation(specialty="cardiology", reason="syncope"))
        update = await next_of(cart, SessionUpdate)
        assert isinstance(update, SessionUpdate)
        sid = update.session.session_id
        await spec.send(Accept(session_id=sid))
        await next_of(cart, SessionUpdate)
        await cart.send(Offer(session_id=sid, sdp="v=0"))
        await cart.send(MediaState(session_id=sid, state="connected"))
        while True:
            live = await next_of(spec, SessionUpdate)
            assert isinstance(live, SessionUpdate)
            if live.session.state is SessionState.LIVE:
                break
        audit_before = len(await first.store.audit_entries())
        readers = [asyncio.create_task(_close_code(c)) for c in (cart, spec)]
        await asyncio.sleep(0.1)
    # The server is gone: both clients were told "going away" (1001), not cut off.
    assert await asyncio.gather(*readers) == [1001, 1001]
    for client in (cart, spec):
        await client.close()

    async with running_server(config) as second:
        cart = SignallingClient(second.ws_url, role="cart", token=token)
        welcome = await cart.connect()
        assert welcome.session is not None
        assert welcome.session.session_id == sid
        assert welcome.session.state is SessionState.LIVE
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{second.base}/api/login", json={"username": "amir", "password": PASSWORD}
            ) as resp:
                assert resp.status == 200
                cookies = {"telecart_session": resp.cookies["telecart_session"].value}
        spec = SignallingClient(second.ws_url, role="specialist", cookies=cookies)
        spec_welcome = await spec.connect()
        assert spec_welcome.session is not None and spec_welcome.session.session_id == sid
        await spec.send(Hangup(session_id=sid))
        ended = await next_of(cart, SessionUpdate)
        assert isinstance(ended, SessionUpdate) and ended.session.state is SessionState.ENDED
        assert len(await second.store.audit_entries()) > audit_before
        await cart.close()
        await spec.close()

    async with running_server(config) as third:
        stored = await third.store.session(sid)
        assert stored is not None and stored.state is SessionState.ENDED
        cart = SignallingClient(third.ws_url, role="cart", token=token)
        welcome = await cart.connect()
        assert welcome.session is None
        await cart.close()


async def _close_code(client: SignallingClient) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await client.receive(10)
    return closed.value.code


async def test_login_survives_restart(tmp_path: Path) -> None:
    config = server_config(tmp_path)
    async with running_server(config) as first:
        await first.add_specialist("amir", "cardiology")
        cookies = await first.login("amir")
    async with running_server(config) as second:
        spec = SignallingClient(second.ws_url, role="specialist", cookies=cookies)
        welcome = await spec.connect()
        assert welcome.role == "specialist" and welcome.specialties == ["cardiology"]
        await spec.close()


async def test_no_secret_reaches_logs_or_audit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = server_config(tmp_path)
    sdp = "v=0 o=- SECRET-SDP-MARKER"
    async with running_server(config) as srv:
        token = await srv.add_cart("cart-1")
        await srv.add_specialist("amir", "cardiology")
        cookies = await srv.login("amir")
        async with aiohttp.ClientSession() as http:
            await http.post(
                f"{srv.base}/api/login", json={"username": "amir", "password": "WRONG-PW-MARKER"}
            )
        cart = SignallingClient(srv.ws_url, role="cart", token=token)
        await cart.connect()
        spec = SignallingClient(srv.ws_url, role="specialist", cookies=cookies)
        await spec.connect()
        await cart.send(RequestConsultation(specialty="cardiology"))
        update = await next_of(cart, SessionUpdate)
        assert isinstance(update, SessionUpdate)
        await spec.send(Accept(session_id=update.session.session_id))
        await next_of(cart, SessionUpdate)
        await cart.send(Offer(session_id=update.session.session_id, sdp=sdp))
        await next_of(spec, Offer)
        await asyncio.sleep(0.1)
        entries = await srv.store.audit_entries()
        await cart.close()
        await spec.close()
    secrets = [token, cookies["telecart_session"], PASSWORD, "WRONG-PW-MARKER", "SECRET-SDP-MARKER"]
    text = caplog.text + "".join(str(e.detail) + e.actor for e in entries)
    for secret in secrets:
        assert secret not in text
    assert {"login", "login_failed", "session_requested", "session_accepted"} <= {
        e.action for e in entries
    }


async def test_audit_log_is_append_only(tmp_path: Path) -> None:
    import sqlite3

    async with running_server(server_config(tmp_path)) as srv:
        await srv.store.audit("admin:test", "something")
        path = srv.config.database_path
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET action = 'forged'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit")
    conn.close()
