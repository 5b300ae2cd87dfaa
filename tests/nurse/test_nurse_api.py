"""The nurse screen's local API: loopback only, no foreign Host or Origin, state in JSON."""

from __future__ import annotations

import aiohttp
import pytest

from telecart.cart_agent.nurse_screen import NurseScreen
from tests.nurse.conftest import CartScreen


async def test_state_reports_idle_with_the_servers_specialties(cart_screen: CartScreen) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(cart_screen.url + "api/state") as resp:
            assert resp.status == 200
            state = await resp.json()
    assert state["phase"] == "idle"
    assert "cardiology" in state["specialties"]
    assert {d["device"] for d in state["devices"]} >= {"room camera", "exam camera"}


async def test_foreign_host_is_refused_against_dns_rebinding(cart_screen: CartScreen) -> None:
    async with aiohttp.ClientSession() as http:
        headers = {"Host": f"evil.example:{cart_screen.screen.port}"}
        async with http.get(cart_screen.url, headers=headers) as resp:
            assert resp.status == 403
        async with http.get(cart_screen.url) as resp:
            assert resp.status == 200
            assert "default-src 'self'" in resp.headers["Content-Security-Policy"]


async def test_changes_need_this_pages_origin(cart_screen: CartScreen) -> None:
    url = cart_screen.url + "api/request"
    body = {"specialty": "cardiology"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=body, headers={"Origin": "http://evil.example"}) as resp:
            assert resp.status == 403
        async with http.post(url, json=body) as resp:  # no Origin: not from a page
            assert resp.status == 403
    assert cart_screen.agent.session is None


async def test_page_never_sees_the_cart_token(cart_screen: CartScreen) -> None:
    token = cart_screen.agent._token
    async with aiohttp.ClientSession() as http:
        for path in ("", "api/state", "static/nurse/nurse.js"):
            async with http.get(cart_screen.url + path) as resp:
                assert token not in await resp.text()


def test_screen_refuses_to_listen_beyond_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        NurseScreen(object(), "0.0.0.0", 8081)  # type: ignore[arg-type]
