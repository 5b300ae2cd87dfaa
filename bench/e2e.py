"""End-to-end figures of a consultation on loopback: simulated cart → headless Chromium.

Prints a table and one JSON line:
- first frame: from the specialist's click on Accept to the first decoded room-camera
  frame in the browser (both stamped with the same wall clock);
- glass-to-glass: capture time read back from the timestamp strip of each displayed
  frame (`requestVideoFrameCallback`, expected display time), p50/p95, per camera;
- audio: the browser's receive-side delay for each audio track from getStats
  (jitter buffer + playout); the cart's own path adds one 20 ms packet;
- agent CPU: the cart agent runs in its own process; its CPU share is sampled with both
  cameras live, with the exam camera paused, and with both paused, so the difference is
  the cost of one 640×480/25 fps video stream.

Usage: .venv/bin/python bench/e2e.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.* helpers

from bench.media_pages import STRIP_DECODER_JS
from telecart.cart_agent.agent import CartAgent, ConsultationRequest
from telecart.config import AgentConfig
from telecart.devices.config import DevicesConfig
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.server.harness import PASSWORD, running_server, server_config

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Reads the strip painted by telecart.devices.timestamp_code on every displayed frame.
GLASS_PROBE = (
    "(roles) => {"
    + STRIP_DECODER_JS
    + """
  window.g2g = {};
  window.firstFrameAt = null;
  for (const role of roles) {
    const video = document.getElementById("video-" + role);
    const canvas = document.createElement("canvas");
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    window.g2g[role] = [];
    const onFrame = (now, meta) => {
      const shownAt = performance.timeOrigin + meta.expectedDisplayTime;
      if (role === "room" && window.firstFrameAt === null) window.firstFrameAt = shownAt;
      const delay = readStripDelay(video, meta, canvas, ctx, shownAt);
      // A misread strip gives a random number: keep only what a real delay can be.
      if (delay !== null && delay >= 0 && delay < 60000) window.g2g[role].push(delay);
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }
}"""
)

AUDIO_STATS = """async () => {
  const pc = window.telecart.pc, order = ["room", "exam", "stethoscope", "voice"], out = {};
  for (const [i, t] of pc.getTransceivers().entries()) {
    for (const s of (await t.receiver.getStats()).values()) {
      if (s.type !== "inbound-rtp" || s.kind !== "audio") continue;
      const emitted = s.jitterBufferEmittedCount;
      const jitter = emitted ? s.jitterBufferDelay / emitted : 0;
      out[window.telecart.roles[t.mid] || order[i]] = { jitter_buffer_ms: 1000 * jitter };
    }
  }
  for (const s of (await pc.getStats()).values()) {
    if (s.type === "media-playout" && s.totalSamplesCount) {
      out.playout_ms = 1000 * s.totalPlayoutDelay / s.totalSamplesCount;
    }
  }
  return out;
}"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def _cpu_share(pid: int, seconds: float) -> float:
    start_cpu, start = _cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return (_cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _agent_child() -> int:
    """The cart agent alone in this process (the parent measures its CPU)."""
    config = AgentConfig(
        server_url=os.environ["BENCH_SERVER_URL"],
        token=os.environ["BENCH_CART_TOKEN"],
        data_dir=Path(tempfile.mkdtemp(prefix="bench-agent-")),
        ice_addresses=("127.0.0.1",),
    )
    agent = CartAgent(config, DevicesConfig.simulated(), ConsultationRequest("cardiology"))
    await agent.start()
    try:
        await asyncio.Event().wait()
    finally:
        await agent.close()
    return 0


async def _run(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        async with running_server(server_config(Path(tmp))) as server:
            await server.add_specialist("bench", "cardiology")
            token = await server.add_cart("bench-cart")
            env = dict(os.environ, BENCH_SERVER_URL=server.ws_url, BENCH_CART_TOKEN=token)
            child = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--agent-child", env=env
            )
            try:
                async with async_playwright() as playwright:
                    browser = await playwright.chromium.launch(
                        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
                    )
                    page = await browser.new_page()
                    await page.goto(server.base + "/")
                    await page.fill("input[name=username]", "bench")
                    await page.fill("input[name=password]", PASSWORD)
                    await page.click("button[type=submit]")
                    await page.wait_for_selector("button.accept", timeout=30_000)
                    await page.evaluate(GLASS_PROBE, ["room", "exam"])
                    accepted_at = time.time() * 1000
                    await page.click("button.accept")
                    await page.wait_for_function("window.firstFrameAt !== null", timeout=30_000)
                    first_frame_ms = await page.evaluate("window.firstFrameAt") - accepted_at
                    await page.wait_for_function("window.telecart.state === 'live'")
                    await asyncio.sleep(2.0)  # let the bitrate ramp up
                    await page.evaluate("for (const r in window.g2g) window.g2g[r].length = 0")
                    cpu_full = await _cpu_share(child.pid, seconds)
                    g2g: dict[str, list[float]] = await page.evaluate("window.g2g")
                    audio = await page.evaluate(AUDIO_STATS)
                    await page.click("[data-pause=exam]")
                    await asyncio.sleep(1.0)
                    cpu_one = await _cpu_share(child.pid, seconds)
                    await page.click("[data-pause=room]")
                    await asyncio.sleep(1.0)
                    cpu_none = await _cpu_share(child.pid, seconds)
                    await browser.close()
            finally:
                child.terminate()
                await child.wait()
    result: dict[str, Any] = {
        "first_frame_ms": round(first_frame_ms),
        "agent_cpu_full": round(cpu_full, 3),
        "agent_cpu_one_video_stream": round(max(0.0, cpu_full - cpu_one), 3),
        "agent_cpu_no_video": round(cpu_none, 3),
        "audio": {k: _rounded(v) for k, v in audio.items()},
    }
    for role, delays in g2g.items():
        if delays:
            result[f"g2g_{role}_ms"] = {
                "n": len(delays),
                "p50": round(statistics.median(delays)),
                "p95": round(_percentile(delays, 0.95)),
            }
    return result


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: round(v, 1) for k, v in value.items()}
    return round(value, 1)


def _table(r: dict[str, Any]) -> str:
    rows = [("first frame after accept", f"{r['first_frame_ms']} ms", "< 1500 ms")]
    for role in ("room", "exam"):
        g = r.get(f"g2g_{role}_ms")
        if g:
            value = f"{g['p50']} / {g['p95']} ms (n={g['n']})"
            rows.append((f"glass-to-glass {role} p50 / p95", value, "p95 < 150 ms"))
    audio = r["audio"]
    for role in ("stethoscope", "voice"):
        if role in audio:
            rows.append(
                (f"audio {role} jitter buffer", f"{audio[role]['jitter_buffer_ms']} ms", "")
            )
    if "playout_ms" in audio:
        rows.append(("audio playout delay", f"{audio['playout_ms']} ms", ""))
    rows += [
        ("agent CPU, full consultation", f"{r['agent_cpu_full']:.0%} of a core", "< 100 %"),
        ("agent CPU per 640×480/25 video", f"{r['agent_cpu_one_video_stream']:.0%} of a core", ""),
        ("agent CPU, audio+vitals only", f"{r['agent_cpu_no_video']:.0%} of a core", ""),
    ]
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{'measure':<{width}}  {'value':<28}  goal", "-" * (width + 40)]
    lines += [f"{name:<{width}}  {value:<28}  {goal}" for name, value, goal in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--agent-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agent_child:
        return asyncio.run(_agent_child())
    result = asyncio.run(_run(args.seconds))
    print(_table(result))
    print(json.dumps({"bench": "e2e", **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
