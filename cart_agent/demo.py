"""`telecart demo`: server, demo specialist and a simulated cart with its nurse screen, in
one process on loopback."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import replace

from aiohttp import web

from telecart.cart_agent.agent import CartAgent, ConsultationRequest
from telecart.cart_agent.nurse_screen import NurseScreen
from telecart.cart_agent.shutdown import stop_event
from telecart.config import AgentConfig, Config, ServerConfig
from telecart.devices.config import DevicesConfig
from telecart.server.app import create_app
from telecart.server.app_keys import STORE
from telecart.server.credentials import hash_password, new_token, token_hash
from telecart.server.store import Store

log = logging.getLogger(__name__)

DEMO_CART = "Demo cart"
DEMO_CLINIC = "Demo clinic (simulated devices)"
DEMO_USER = "demo"
REQUEST_AGAIN_AFTER_S = 5.0


def run_demo(config: Config, port: int, specialty: str) -> int:
    """Run until Ctrl-C; returns the process exit code."""
    server = replace(
        config.server, host="127.0.0.1", port=port, data_dir=config.server.data_dir / "demo"
    )
    if specialty not in server.specialties:
        print(f"Unknown specialty {specialty!r}; choose one of: {', '.join(server.specialties)}")
        return 2
    return asyncio.run(_demo(server, config.agent, specialty))


async def demo_accounts(store: Store, specialty: str) -> tuple[str, str]:
    """(cart token, specialist password), both new: the demo cart and user are reused."""
    token = new_token()
    carts = {c.name: c for c in await store.list_carts()}
    if DEMO_CART in carts:
        digest = token_hash(token)
        await store.call(
            lambda conn: conn.execute(
                "UPDATE carts SET token_hash = ?, revoked = 0 WHERE name = ?", (digest, DEMO_CART)
            )
        )
    else:
        await store.add_cart(DEMO_CART, DEMO_CLINIC, token_hash(token))
    password = secrets.token_urlsafe(12)
    password_hash = await asyncio.to_thread(hash_password, password)
    specialist = await store.specialist_by_username(DEMO_USER)
    if specialist is None:
        await store.add_specialist(DEMO_USER, "Dr Demo", password_hash, (specialty,))
    else:
        await store.set_password_hash(specialist.id, password_hash)
        if specialty not in specialist.specialties:
            print(f"Note: user {DEMO_USER!r} covers {', '.join(specialist.specialties)} only.")
    return token, password


async def _demo(server_config: ServerConfig, agent_defaults: AgentConfig, specialty: str) -> int:
    stop = stop_event()
    server_config.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(server_config)
    runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, server_config.host, server_config.port)
        try:
            await site.start()
        except OSError as exc:
            print(
                f"Port {server_config.port} is busy ({exc.strerror}): stop whatever uses it "
                "or pass --port."
            )
            return 1
        token, password = await demo_accounts(app[STORE], specialty)
        url = f"http://{server_config.host}:{server_config.port}/"
        agent_config = replace(
            agent_defaults,
            server_url=f"ws://{server_config.host}:{server_config.port}/ws",
            token=token,
        )
        agent = CartAgent(
            agent_config,
            DevicesConfig.simulated(),
            request=ConsultationRequest(specialty, reason="Demo: simulated patient"),
            repeat_after_s=REQUEST_AGAIN_AFTER_S,
        )
        await agent.start()
        nurse_screen, nurse_line = await _nurse_screen(agent, agent_config.nurse_port)
        print(
            f"\ntelecart demo is running.\n"
            f"  Open     {url}  (Chrome or Firefox)\n"
            f"  Username {DEMO_USER}\n"
            f"  Password {password}   (new each run, shown only here)\n"
            f"{nurse_line}\n"
            f"A simulated cart is waiting for a {specialty} consultation. Ctrl-C stops.\n",
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            print("Stopping…", flush=True)
            try:
                await asyncio.wait_for(agent.hangup(), 2.0)
            except Exception as exc:
                log.debug("no hangup on exit: %s", exc)
            if nurse_screen is not None:
                await nurse_screen.close()
            await agent.close()
    finally:
        await runner.cleanup()
    print("Demo stopped.")
    return 0


async def _nurse_screen(agent: CartAgent, port: int) -> tuple[NurseScreen | None, str]:
    """The cart's own screen beside the demo, and the banner's line for it; the demo runs
    without it when its port is taken."""
    screen = NurseScreen(agent, "127.0.0.1", port)
    try:
        await screen.start()
    except OSError as exc:
        return None, (
            f"  (No nurse screen: port {port} is busy ({exc.strerror}); "
            "set agent.nurse_port in a --config file.)"
        )
    return screen, f"  Nurse    {screen.url}  (the cart's own screen)"
