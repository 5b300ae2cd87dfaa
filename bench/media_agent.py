"""The telecart cart agent (simulated devices) for the media benchmark, in the cart namespace.

`TELECART_SERVER_URL=ws://… TELECART_CART_TOKEN=… python -m bench.media_agent` runs the
real `CartAgent` with `DevicesConfig.simulated()`, asks for one cardiology consultation,
and runs until its stdin closes (or SIGTERM).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from telecart.cart_agent.agent import CartAgent, ConsultationRequest
from telecart.config import AgentConfig
from telecart.devices.config import DevicesConfig


async def _run() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-media-agent-") as data_dir:
        return await _serve(Path(data_dir))


async def _serve(data_dir: Path) -> int:
    config = AgentConfig(
        server_url=os.environ["TELECART_SERVER_URL"],
        token=os.environ["TELECART_CART_TOKEN"],
        data_dir=data_dir,
    )
    agent = CartAgent(
        config, DevicesConfig.simulated(), ConsultationRequest("cardiology", reason="benchmark")
    )
    await agent.start()
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_run()))
