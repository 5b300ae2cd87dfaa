"""Health and Prometheus metrics reflect what is connected and waiting."""

from __future__ import annotations

import aiohttp

from telecart.signalling.messages import RequestConsultation, SessionUpdate
from tests.server.harness import RunningServer, next_of


async def _metrics(server: RunningServer) -> dict[str, float]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.base}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            assert name.startswith("telecart_"), name
            values[name] = float(value)
    return values


async def test_healthz(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.base}/healthz") as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ok"


async def test_metrics_count_online_queue_and_errors(server: RunningServer) -> None:
    cart = await server.cart("cart-1")
    await server.specialist("amir", "cardiology")
    await cart.send(RequestConsultation(specialty="cardiology"))
    await next_of(cart, SessionUpdate)
    await cart.send(RequestConsultation(specialty="cardiology"))
    values = await _metrics(server)
    assert values["telecart_carts_online"] == 1
    assert values["telecart_specialists_online"] == 1
    assert values['telecart_queue_length{specialty="cardiology"}'] == 1
    assert values["telecart_sessions_open"] == 1
    assert values['telecart_errors_total{code="session_open"}'] == 1
    await cart.close()
    for _ in range(50):
        values = await _metrics(server)
        if values["telecart_carts_online"] == 0:
            break
    assert values["telecart_carts_online"] == 0
