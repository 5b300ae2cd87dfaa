"""OpenCV vs PyAV as the camera backend: per-frame latency and CPU, same source, same run.

Decodes the same MJPEG clip (640x480, like a USB webcam's MJPG mode) with both backends
to BGR arrays. With a V4L2 device present, pass its path to measure the device instead.
Prints a table and a JSON line.  Usage: python bench/camera_backends.py [/dev/videoN]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import av
import cv2
import numpy as np


def make_clip(path: str, frames: int = 300) -> None:
    writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*"MJPG"), 25, (640, 480))
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    for i in range(frames):
        writer.write(np.roll(base, i * 4, axis=1))
    writer.release()


def bench_opencv(source: str, frames: int) -> tuple[float, float]:
    cap = cv2.VideoCapture(source)
    lat = []
    cpu0 = time.process_time()
    for _ in range(frames):
        t = time.perf_counter()
        ok, _img = cap.read()
        if not ok:
            break
        lat.append(time.perf_counter() - t)
    cpu = time.process_time() - cpu0
    cap.release()
    return 1000 * float(np.median(lat)), 1000 * cpu / max(1, len(lat))


def bench_pyav(source: str, frames: int) -> tuple[float, float]:
    container = av.open(source)
    stream = container.streams.video[0]
    lat = []
    cpu0 = time.process_time()
    it = container.decode(stream)
    for _ in range(frames):
        t = time.perf_counter()
        try:
            frame = next(it)
        except StopIteration:
            break
        frame.to_ndarray(format="bgr24")
        lat.append(time.perf_counter() - t)
    cpu = time.process_time() - cpu0
    container.close()
    return 1000 * float(np.median(lat)), 1000 * cpu / max(1, len(lat))


def main() -> None:
    frames = 300
    with tempfile.TemporaryDirectory() as tmp:
        source = sys.argv[1] if len(sys.argv) > 1 else os.path.join(tmp, "clip.avi")
        if len(sys.argv) == 1:
            make_clip(source, frames)
        results = {"opencv": bench_opencv(source, frames), "pyav": bench_pyav(source, frames)}
    print(f"{'backend':8} {'median ms/frame':>16} {'CPU ms/frame':>16}")
    for name, (ms, cpu) in results.items():
        print(f"{name:8} {ms:16.2f} {cpu:16.1f}")
    summary = {f"{k}_ms": round(v[0], 3) for k, v in results.items()}
    summary |= {f"{k}_cpu_ms": round(v[1], 3) for k, v in results.items()}
    print(json.dumps({"bench": "camera_backends", "frames": frames, **summary}))


if __name__ == "__main__":
    main()
