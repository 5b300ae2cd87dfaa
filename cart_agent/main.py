"""`telecart agent`: run the cart agent until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import sys

from telecart.cart_agent.agent import CartAgent
from telecart.cart_agent.cart_devices import MissingDeviceError
from telecart.cart_agent.nurse_screen import NurseScreen
from telecart.cart_agent.shutdown import stop_event
from telecart.config import AgentConfig
from telecart.devices.config import DevicesConfig
from telecart.devices.errors import DeviceConfigError
from telecart.service_notify import ServiceNotifier

log = logging.getLogger(__name__)

EXIT_CONFIG = 2


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
        return EXIT_CONFIG


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
