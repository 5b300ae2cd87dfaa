"""A cart with `record_link` leaves each call's link recording in its data directory."""

from __future__ import annotations

from pathlib import Path

from telecart.cart_agent.link_recording import Tick, read_recording
from telecart.cart_agent.link_replay import replay
from tests.cart_agent.conftest import eventually, loopback_agent
from tests.cart_agent.specialist_peer import PythonSpecialist
from tests.server.harness import RunningServer


async def test_a_call_with_record_link_leaves_a_recording_that_replays(
    server: RunningServer, tmp_path: Path
) -> None:
    await server.add_specialist("drheart", "cardiology")
    agent = await loopback_agent(server, tmp_path, record_link=True)
    specialist = PythonSpecialist(server, "drheart")
    await specialist.connect()
    recordings = tmp_path / "agent" / "link-recordings"
    try:
        session_id = await specialist.wait_queue()
        await specialist.accept(session_id)
        await specialist.wait_state("live", timeout_s=30)
        consultation = agent.consultation
        assert consultation is not None
        controller = consultation.rate_controller
        await eventually(
            lambda: controller.state is not None and controller.state.rtt_ms is not None,
            20,
            "a receiver report",
        )
        assert not recordings.exists()  # written when the call's media closes
        await agent.hangup()
        await eventually(lambda: agent.consultation is None, what="the cart to close media")
    finally:
        await specialist.close()
        await agent.close()
    (path,) = recordings.glob("*.jsonl.gz")
    assert path.name.startswith(session_id.replace(":", "_"))
    recording = read_recording(path)
    assert recording.start_bps == 2_500_000
    ticks = [r.event for r in recording.events if isinstance(r.event, Tick)]
    assert any(t.report is not None for t in ticks)
    steps = replay(recording)
    assert len(steps) == len(ticks)
    assert steps[-1].state.rtt_ms is not None
