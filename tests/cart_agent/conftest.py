from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from telecart.cart_agent.agent import CartAgent, ConsultationRequest
from telecart.config import AgentConfig
from telecart.devices.config import (
    SIMULATED,
    AudioInputConfig,
    AudioOutputConfig,
    CameraConfig,
    DevicesConfig,
    SerialConfig,
)
from tests.cart_agent.specialist_peer import PythonSpecialist
from tests.server.harness import RunningServer, running_server, server_config

ROOM_SIZE = (320, 240)
EXAM_SIZE = (400, 300)
STILL_SIZE = (1280, 720)


def small_cart() -> DevicesConfig:
    """Simulated devices at sizes that tell the two cameras apart and keep CPU low."""
    return DevicesConfig(
        cameras=(
            CameraConfig("room", SIMULATED, *ROOM_SIZE, fps=15),
            CameraConfig(
                "exam",
                SIMULATED,
                *EXAM_SIZE,
                fps=15,
                still_width=STILL_SIZE[0],
                still_height=STILL_SIZE[1],
            ),
        ),
        audio_inputs=(
            AudioInputConfig("stethoscope", SIMULATED),
            AudioInputConfig("voice", SIMULATED),
        ),
        audio_output=AudioOutputConfig(SIMULATED),
        serial=(
            SerialConfig("oximeter", SIMULATED, "nonin_oem3_df2"),
            SerialConfig("blood_pressure", SIMULATED, "suntech_advantage"),
        ),
    )


async def eventually(
    predicate: Callable[[], object], timeout_s: float = 20.0, what: str = "condition"
) -> None:
    """Poll until `predicate()` is truthy; fail with `what` after `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():  # noqa: ASYNC110 - polls state no event announces
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@dataclass
class Consult:
    server: RunningServer
    agent: CartAgent
    specialist: PythonSpecialist


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(server_config(tmp_path / "server")) as srv:
        yield srv


async def loopback_agent(
    server: RunningServer, tmp_path: Path, record_link: bool = False
) -> CartAgent:
    """A started simulated cart (cart-1) asking for a cardiologist."""
    token = await server.add_cart("cart-1")
    # Loopback: start the rate controller where a good link would take it, so the cameras
    # reach their own sizes within seconds even on a loaded machine.
    config = AgentConfig(
        server_url=server.ws_url,
        token=token,
        data_dir=tmp_path / "agent",
        initial_uplink_kbps=2500,
        record_link=record_link,
    )
    agent = CartAgent(config, small_cart(), request=ConsultationRequest("cardiology"))
    await agent.start()
    return agent


@pytest.fixture
async def live(server: RunningServer, tmp_path: Path) -> AsyncIterator[Consult]:
    """A simulated cart and a Python specialist in a connected consultation."""
    await server.add_specialist("drheart", "cardiology")
    agent = await loopback_agent(server, tmp_path)
    specialist = PythonSpecialist(server, "drheart")
    await specialist.connect()
    try:
        session_id = await specialist.wait_queue()
        await specialist.accept(session_id)
        await specialist.wait_state("live", timeout_s=30)
        yield Consult(server, agent, specialist)
    finally:
        await specialist.close()
        await agent.close()
