"""The telecart cart agent (simulated devices) for the media benchmark, in the cart namespace.

`TELECART_SERVER_URL=ws://… TELECART_CART_TOKEN=… python -m bench.media_agent` runs the
real `CartAgent` with `DevicesConfig.simulated()`, asks for one cardiology consultation,
and runs until its stdin closes (or SIGTERM). With `TELECART_BENCH_STETHOSCOPE_WAV` set,
the stethoscope plays that WAV in a loop (bench/stethoscope.py). With
`TELECART_BENCH_INITIAL_UPLINK_KBPS` set, rate control starts there (the agent's
`initial_uplink_kbps`, as a technician sets it for a known link), not at 300. The
agent's data directory is `$TELECART_BENCH_WORKDIR/agent` when that is set (the run's
directory, kept by `bench.media --keep`), with its link recording under
`link-recordings/` (cart_agent/link_recording.py) and what its uplink carried, kind by
kind, in `uplink-census.json` (`bench/uplink_census.py`); a temporary one otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Final

from bench.stethoscope_source import WavStethoscopeInput, loop_from_env
from bench.uplink_census import UplinkCensus
from telecart.cart_agent.agent import CartAgent, ConsultationRequest
from telecart.config import AgentConfig
from telecart.devices.config import DevicesConfig

WORKDIR_ENV: Final = "TELECART_BENCH_WORKDIR"
CENSUS_FILE: Final = "uplink-census.json"


async def _run() -> int:
    workdir = os.environ.get(WORKDIR_ENV)
    if workdir:  # kept with the run's logs (`bench.media --keep`): the link recording too
        return await _serve(Path(workdir) / "agent")
    with tempfile.TemporaryDirectory(prefix="bench-media-agent-") as data_dir:
        return await _serve(Path(data_dir))


async def _serve(data_dir: Path) -> int:
    config = AgentConfig(
        server_url=os.environ["TELECART_SERVER_URL"],
        token=os.environ["TELECART_CART_TOKEN"],
        data_dir=data_dir,
        initial_uplink_kbps=int(os.environ.get("TELECART_BENCH_INITIAL_UPLINK_KBPS", "300")),
        record_link=True,
    )
    agent = CartAgent(
        config, DevicesConfig.simulated(), ConsultationRequest("cardiology", reason="benchmark")
    )
    wav_loop = loop_from_env()
    if wav_loop is not None:  # the stethoscope benchmark's signal instead of the synthesiser
        board = agent.devices.board
        agent.devices.audio_inputs["stethoscope"] = WavStethoscopeInput(wav_loop, board)
    census = UplinkCensus(lambda: _sender_roles(agent))
    census.install()
    await agent.start()
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await agent.close()
        await asyncio.to_thread(census.save, data_dir / CENSUS_FILE)
    return 0


def _sender_roles(agent: CartAgent) -> dict[int, str]:
    """SSRC → track role for the call's senders, their RTX streams as "<role> repairs"."""
    consultation = agent.consultation
    if consultation is None:
        return {}
    roles = {}
    for role, sender in consultation.peer.senders().items():
        roles[sender._ssrc] = role
        roles[sender._rtx_ssrc] = f"{role} repairs"
    return roles


if __name__ == "__main__":
    # Rung changes and their reasons go to the run's kept log (`bench.media --keep`).
    logging.basicConfig(level=logging.WARNING, format="%(relativeCreated)8.0f %(name)s %(message)s")
    logging.getLogger("telecart.cart_agent.rate_controller").setLevel(logging.DEBUG)
    logging.getLogger("telecart.cart_agent.stills_mode").setLevel(logging.DEBUG)
    logging.getLogger("telecart.cart_agent.sctp_timers").setLevel(logging.DEBUG)
    sys.exit(asyncio.run(_run()))
