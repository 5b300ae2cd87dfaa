"""Chromium rebuilds lost exam-camera packets from the cart's ULPFEC, with no round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from telecart.cart_agent.video_fec import UlpfecTap, VideoFec, header_length
from tests.e2e.live_call import eventually_async, live_call

pytestmark = pytest.mark.browser

EXAM_STATS = """async () => {
  const pc = window.telecart.pc;
  for (const t of pc.getTransceivers()) {
    if (window.telecart.roles[t.mid] !== "exam") continue;
    for (const s of (await t.receiver.getStats()).values()) {
      if (s.type === "inbound-rtp") return {frames: s.framesDecoded || 0,
        plis: s.pliCount || 0, lost: s.packetsLost || 0};
    }
  }
  return null;
}"""


class LossyLink:
    """Below the FEC tap: drops every `period`-th exam media packet and every exam
    retransmission, so only FEC can repair what is lost."""

    def __init__(self, fec: VideoFec, send: Callable[[bytes], Awaitable[None]]) -> None:
        self.fec, self.send, self.period = fec, send, 7
        self.media = self.dropped = 0

    async def __call__(self, data: bytes) -> None:
        ssrc = int.from_bytes(data[8:12], "big") if len(data) >= 12 else None
        if ssrc == self.fec.rtx_ssrc:
            return
        if ssrc == self.fec.ssrc and data[header_length(data)] != self.fec.types.ulpfec:
            self.media += 1
            if self.media % self.period == 0:
                self.dropped += 1
                return
        await self.send(data)


async def _window(page: Any, seconds: float) -> dict[str, int]:
    before = await page.evaluate(EXAM_STATS)
    await asyncio.sleep(seconds)
    after = await page.evaluate(EXAM_STATS)
    return {k: after[k] - before[k] for k in before}


async def test_lost_exam_packets_are_rebuilt_from_fec_and_not_without_it(
    browser: Any, tmp_path: Path
) -> None:
    async with live_call(browser, tmp_path) as call:
        agent, page = call.agent, call.page

        async def exam_frames() -> bool:
            stats = await page.evaluate(EXAM_STATS)
            return stats is not None and stats["frames"] >= 20

        await eventually_async(exam_frames, "exam frames")
        consultation = agent.consultation
        assert consultation is not None
        controller = consultation.rate_controller
        fec = controller.video_fec.get("exam")
        assert fec is not None, "Chromium did not take RED and ULPFEC for the exam camera"
        controller.fec_group = lambda *link: 4  # as if on a lossy satellite link
        await asyncio.sleep(1.0)  # the next control step turns it on
        tap = next(t for t in controller._taps if isinstance(t, UlpfecTap))
        lossy = LossyLink(fec, tap._original)
        tap._original = lossy

        protected = await _window(page, 6.0)
        assert lossy.dropped >= 10 and fec.fec_packets >= lossy.dropped
        assert protected["lost"] >= lossy.dropped - 2  # Chromium saw the losses...
        assert protected["plis"] <= 1  # ...and rebuilt them (measured: 0 PLIs, 88 frames)
        assert protected["frames"] >= 60

        controller.fec_group = lambda *link: None
        await asyncio.sleep(1.0)
        dropped, sent = lossy.dropped, fec.fec_packets
        unprotected = await _window(page, 6.0)
        assert lossy.dropped - dropped >= 10 and fec.fec_packets == sent
        # Without FEC or retransmissions the picture stops (measured: 1-7 frames).
        assert unprotected["frames"] < protected["frames"] / 2
