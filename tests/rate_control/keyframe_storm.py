"""Keyframes under a moving bandwidth estimate: aiortc's VP8 encoder against ours.

Run: .venv/bin/python -m tests.rate_control.keyframe_storm [seconds]
Prints a table and a JSON line. The estimate moves every 0.5 s in a random walk between
150 and 1500 kbit/s (what a rural link's estimate does); the source is 640x480 at 15 fps
with motion. aiortc rebuilds its encoder (a keyframe) whenever the target moves by more
than 10 %; ours changes libvpx's rate in place.
"""

from __future__ import annotations

import fractions
import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from aiortc.codecs.base import Encoder
from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor
from av import VideoFrame

from telecart.cart_agent.encoder_control import AdaptiveVp8Encoder

FPS = 15


def moving_frames(seconds: float, width: int = 640, height: int = 480) -> Iterator[VideoFrame]:
    rng = np.random.default_rng(7)
    texture = rng.integers(0, 255, (height // 8 + 64, width // 8 + 64), dtype=np.uint8)
    texture = texture.repeat(8, 0).repeat(8, 1)
    chroma = np.full((height // 2, width), 128, np.uint8)
    for i in range(int(seconds * FPS)):
        dy, dx = (i * 3) % 500, (i * 5) % 500
        luma = np.roll(np.roll(texture, -dy, 0), -dx, 1)[:height, :width]
        frame = VideoFrame.from_ndarray(np.concatenate([luma, chroma]), format="yuv420p")
        frame.pts = i * 90_000 // FPS
        frame.time_base = fractions.Fraction(1, 90_000)
        yield frame


def estimate_walk(seconds: float, seed: int = 3) -> list[int]:
    """One target every 0.5 s: a random walk of +-5..30 % between 150 and 1500 kbit/s."""
    rng = random.Random(seed)
    value, out = 800_000.0, []
    for _ in range(int(seconds * 2)):
        value *= 1 + rng.choice((-1, 1)) * rng.uniform(0.05, 0.3)
        value = min(max(value, 150_000), 1_500_000)
        out.append(int(value))
    return out


@dataclass
class StormResult:
    encoder: str
    seconds: float
    keyframes: int
    kbps: float
    encode_ms: float


def is_keyframe(payloads: list[bytes]) -> bool:
    """The first partition's VP8 frame tag has its lowest bit clear on a keyframe."""
    if not payloads:
        return False
    descriptor, data = VpxPayloadDescriptor.parse(payloads[0])
    return bool(descriptor.partition_start) and bool(data) and data[0] & 0x01 == 0


def run(name: str, make: Callable[[], Encoder], seconds: float) -> StormResult:
    encoder = make()
    targets = estimate_walk(seconds)
    keyframes = total = 0
    spent = 0.0
    for i, frame in enumerate(moving_frames(seconds)):
        target = targets[min(i * 2 // FPS, len(targets) - 1)]
        if isinstance(encoder, AdaptiveVp8Encoder):
            encoder.set_target_bitrate(target)
        elif isinstance(encoder, Vp8Encoder):
            encoder.target_bitrate = target  # what aiortc does on each REMB
        started = time.perf_counter()
        payloads, _ = encoder.encode(frame)
        spent += time.perf_counter() - started
        keyframes += is_keyframe(payloads)
        total += sum(len(p) for p in payloads)
    frames = int(seconds * FPS)
    return StormResult(name, seconds, keyframes, total * 8 / seconds / 1000, spent / frames * 1e3)


def main(seconds: float = 60.0) -> list[StormResult]:
    results = [
        run("aiortc Vp8Encoder", Vp8Encoder, seconds),
        run("AdaptiveVp8Encoder", AdaptiveVp8Encoder, seconds),
    ]
    print("| encoder | seconds | keyframes | mean kbit/s | encode ms/frame |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r.encoder} | {r.seconds:g} | {r.keyframes} | {r.kbps:.0f} | {r.encode_ms:.1f} |")
    print(json.dumps({"keyframe_storm": [r.__dict__ for r in results]}))
    return results


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
