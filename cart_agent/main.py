"""`telecart agent`: run the cart agent until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import sys

import aiohttp

from telecart.cart_agent.agent import CartAgent
from telecart.cart_agent.cart_devices import MissingDeviceError
from telecart.cart_agent.nurse_screen import NurseScreen
from telecart.cart_agent.shutdown import stop_event
from telecart.config import AgentConfig
from telecart.devices.config import DevicesConfig
from telecart.devices.errors import DeviceConfigError
from telecart.service_notify import ServiceNotifier
from telecart.signalling.client import ConnectionClosed, SignallingClient
from telecart.signalling.errors import ProtocolError
from telecart.signalling.messages import Hangup
from telecart.signalling.session_state import PAIRED_STATES, EndReason

log = logging.getLogger(__name__)

EXIT_CONFIG = 2
GOODBYE_TIMEOUT_S = 10.0


def run_agent(agent_config: AgentConfig, simulated: bool, screen: bool = True) -> int:
    """Run until stopped; returns the process exit code. `screen=False` runs without the
    nurse screen (tests, headless carts)."""
    try:
        devices = (
            DevicesConfig.simulated()
            if simulated
            else DevicesConfig.from_dict(agent_config.devices)
        )
        return asyncio.run(_serve(agent_config, devices, screen))
    except (DeviceConfigError, MissingDeviceError, ValueError) as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        if agent_config.token:
            asyncio.run(end_open_session(agent_config))
        return EXIT_CONFIG


async def end_open_session(config: AgentConfig) -> None:
    """The agent cannot run: end a consultation its previous run left open, so the
    specialist is told the cart restarted instead of waiting on "reconnecting"."""
    assert config.token is not None
    client = SignallingClient(config.server_url, role="cart", token=config.token)
    try:
        async with asyncio.timeout(GOODBYE_TIMEOUT_S):
            welcome = await client.connect()
            session = welcome.session
            if session is not None and session.state in PAIRED_STATES:
                reason = EndReason.CART_RESTARTED.value
                await client.send(Hangup(session_id=session.session_id, reason=reason))
                await client.receive()  # the session's end: the server has it
                print(
                    f"Ended the open consultation {session.session_id}: the specialist is "
                    "told the cart restarted and could not resume.",
                    file=sys.stderr,
                )
    except (OSError, aiohttp.ClientError, TimeoutError, ConnectionClosed, ProtocolError) as exc:
        log.warning("could not tell the server this cart is out of service: %s", exc)
    finally:
        await client.close()


async def _serve(agent_config: AgentConfig, devices: DevicesConfig, screen: bool) -> int:
    stop = stop_event()
    agent = CartAgent(agent_config, devices)
    nurse_screen = (
        NurseScreen(agent, agent_config.nurse_host, agent_config.nurse_port) if screen else None
    )
    notifier = ServiceNotifier()
    await agent.start()
    if nurse_screen is not None:
        try:
            await nurse_screen.start()
        except OSError as exc:
            await agent.close()
            raise ValueError(
                f"the nurse screen cannot listen on {agent_config.nurse_host}:"
                f"{agent_config.nurse_port} ({exc.strerror}): set agent.nurse_port"
            ) from exc
    notifier.ready("cart agent running")
    log.info("cart agent running; Ctrl-C to stop")
    try:
        await stop.wait()
    finally:
        await notifier.stopping()
        if nurse_screen is not None:
            await nurse_screen.close()
        await agent.close()
    log.info("cart agent stopped")
    return 0
