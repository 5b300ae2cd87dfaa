"""The specialist page in headless Chromium against a simulated cart, on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from telecart.signalling.session_state import SessionState
from tests.cart_agent.conftest import EXAM_SIZE, ROOM_SIZE, eventually
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.live_call import eventually_async, live_call

pytestmark = pytest.mark.browser
AUDIO_ROLES = ("stethoscope", "voice")

# Per received track: role, kind, decoded frames, size, audio energy.
RECEIVER_STATS = """async () => {
  const pc = window.telecart.pc;
  if (!pc) return [];
  const order = ["room", "exam", "stethoscope", "voice"];
  const out = [];
  for (const [i, t] of pc.getTransceivers().entries()) {
    const role = window.telecart.roles[t.mid] || order[i];
    for (const s of (await t.receiver.getStats()).values()) {
      if (s.type !== "inbound-rtp") continue;
      out.push({role, kind: s.kind, frames: s.framesDecoded || 0, width: s.frameWidth || 0,
                height: s.frameHeight || 0, energy: s.totalAudioEnergy || 0,
                samples: s.totalSamplesReceived || 0,
                jitterBufferTarget: t.receiver.jitterBufferTarget,
                jitterBufferDelay: s.jitterBufferDelay || 0,
                emitted: s.jitterBufferEmittedCount || 0});
    }
  }
  return out;
}"""


async def _stats(page: Any) -> dict[str, dict[str, Any]]:
    return {s["role"]: s for s in await page.evaluate(RECEIVER_STATS)}


async def test_browser_specialist_gets_video_audio_vitals_and_stills(
    browser: Any, tmp_path: Path
) -> None:
    async with live_call(browser, tmp_path) as call:
        server, agent, page = call.server, call.agent, call.page
        session_id = agent.session.session_id if agent.session else ""

        async def media_flowing() -> bool:
            stats = await _stats(page)
            return all(stats.get(r, {}).get("frames", 0) >= 10 for r in ("room", "exam")) and all(
                stats.get(r, {}).get("energy", 0) > 1e-4 for r in AUDIO_ROLES
            )

        await eventually_async(media_flowing, "frames and audio on all four tracks")

        previous: dict[str, tuple[float, int]] = {}

        async def stethoscope_buffered() -> bool:
            # The stethoscope plays from a deeper jitter buffer than the voice, whose
            # latency the conversation feels (on loopback the voice's stays well under).
            recent = {}
            stats = await _stats(page)
            for role in AUDIO_ROLES:
                delay, emitted = stats[role]["jitterBufferDelay"], stats[role]["emitted"]
                before_delay, before_emitted = previous.get(role, (0.0, 0))
                previous[role] = (delay, emitted)
                recent[role] = 1000 * (delay - before_delay) / max(emitted - before_emitted, 1)
            return recent["stethoscope"] >= 120 and recent["voice"] < 100

        stats = await _stats(page)
        assert stats["stethoscope"]["jitterBufferTarget"] == 150
        assert stats["voice"]["jitterBufferTarget"] is None
        await eventually_async(stethoscope_buffered, "the stethoscope's jitter buffer at 150 ms")

        async def camera_sizes() -> bool:
            # The rate controller starts at 300 kbit/s and scales up as the link
            # allows: the exam camera (first in priority) reaches its own size; the
            # room camera may still be scaled down within its aspect ratio.
            stats = await _stats(page)
            room = (stats["room"]["width"], stats["room"]["height"])
            exam = (stats["exam"]["width"], stats["exam"]["height"])
            return exam == EXAM_SIZE and room[0] * ROOM_SIZE[1] == room[1] * ROOM_SIZE[0]

        await eventually_async(camera_sizes, "the exam video at its camera size")

        await page.wait_for_function("window.telecart.vitals.length >= 6", timeout=20_000)
        seqs = await page.evaluate("window.telecart.vitals.map(v => v.seq)")
        assert seqs == list(range(1, len(seqs) + 1))
        assert await page.evaluate("window.telecart.vitalsGaps") == 0

        await page.click("#still")
        await page.wait_for_function(
            "window.telecart.stills.length === 1 && window.telecart.stills[0].serverUrl",
            timeout=30_000,
        )
        still = await page.evaluate(
            "(({header, size, sha256, verified, serverUrl}) => "
            "({header, size, sha256, verified, serverUrl}))(window.telecart.stills[0])"
        )
        consultation = agent.consultation
        assert consultation is not None
        # Chromium took RED for both audio tracks; their energy above was decoded from it.
        assert consultation.peer.uses_red("stethoscope")
        assert consultation.peer.uses_red("voice")
        sent = consultation.stills_sent[0]
        assert still["verified"] and still["sha256"] == sent.sha256
        assert still["size"] == len(sent.data)
        stored = await page.evaluate(
            "async (url) => { const r = await fetch(url); "
            "return [r.status, (await r.arrayBuffer()).byteLength]; }",
            still["serverUrl"],
        )
        assert stored == [200, len(sent.data)]

        await eventually(
            lambda: (
                consultation.remote_audio is not None
                and consultation.remote_audio.chunks_played > 25
            ),
            what="the browser's microphone on the cart speaker",
        )
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "specialist-live.png"), full_page=True)

        await page.click("#hangup")
        await page.wait_for_function("window.telecart.state === 'ended'", timeout=15_000)
        await eventually(lambda: agent.consultation is None, what="the cart to close media")
        record = await server.store.session(session_id)
        assert record is not None and record.state is SessionState.ENDED


async def test_cart_hangup_ends_the_browser_call(browser: Any, tmp_path: Path) -> None:
    async with live_call(browser, tmp_path) as call:
        server, agent, page = call.server, call.agent, call.page
        session_id = agent.session.session_id if agent.session else ""
        await agent.hangup()
        await page.wait_for_function("window.telecart.state === 'ended'", timeout=15_000)
        assert await page.evaluate("window.telecart.pc") is None
        await eventually(lambda: agent.consultation is None, what="the cart to close media")
        record = await server.store.session(session_id)
        assert record is not None and record.state is SessionState.ENDED
