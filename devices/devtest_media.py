"""Device-test checks for cameras and audio devices, on the same sources the agent uses."""

from __future__ import annotations

import asyncio
import itertools
import math
import time

import cv2
import numpy as np

from .audio_chunk import CHUNK_SAMPLES, FULL_SCALE, SAMPLE_RATE, AudioChunk, dbfs, to_int16
from .config import AudioInputConfig, AudioOutputConfig, CameraConfig
from .devtest_report import CheckResult, Result
from .errors import DeviceError
from .sources import AudioSource, make_audio_input, make_audio_output, make_camera

BLACK_LUMA = 12.0
FROZEN_DIFF = 0.5
SHARPNESS_MIN = 15.0
TONE_HZ = 1000.0


async def check_camera(config: CameraConfig, duration_s: float) -> list[CheckResult]:
    name = config.name
    camera = make_camera(config)
    try:
        await camera.open(require=True)
    except DeviceError as exc:
        return [CheckResult(name, "opens", "FAIL", config.source, exc.message)]
    out = [CheckResult(name, "opens", "PASS", config.source)]
    try:
        frames = []
        started = time.monotonic()
        while time.monotonic() - started < duration_s:
            frames.append(await camera.read())

    finally:
        await camera.close()
    live = [f for f in frames if f.live]
    if len(live) < 2:
        out.append(
            CheckResult(
                name,
                "delivers frames",
                "FAIL",
                f"{len(live)} frames",
                "camera stopped sending: check the USB cable and power",
            )
        )
        return out
    fps = (len(live) - 1) / max(1e-6, live[-1].captured_at - live[0].captured_at)
    ratio = fps / config.fps
    out.append(
        CheckResult(
            name,
            "frame rate",
            "PASS" if ratio >= 0.9 else "WARN" if ratio >= 0.5 else "FAIL",
            f"{fps:.1f} fps (want {config.fps})",
            "" if ratio >= 0.9 else "lower the resolution or fps, or use a USB 2.0+ port/hub",
        )
    )
    sizes = {(f.width, f.height) for f in live}
    want = (config.width, config.height)
    out.append(
        CheckResult(
            name,
            "frame size",
            "PASS" if sizes == {want} else "FAIL",
            ", ".join(f"{w}x{h}" for w, h in sorted(sizes)),
            "" if sizes == {want} else "set a size the camera supports (--list)",
        )
    )
    grays = [cv2.cvtColor(f.image, cv2.COLOR_BGR2GRAY) for f in live]
    luma = float(np.mean([g.mean() for g in grays]))
    if luma < BLACK_LUMA:
        out.append(
            CheckResult(
                name,
                "not black",
                "FAIL",
                f"mean luma {luma:.0f}",
                "remove the lens cap / check the cover and the light",
            )
        )
    else:
        ok = 40 <= luma <= 220
        out.append(
            CheckResult(
                name,
                "brightness",
                "PASS" if ok else "WARN",
                f"mean luma {luma:.0f}",
                "" if ok else "adjust the room light or camera exposure",
            )
        )
    diffs = [float(np.mean(cv2.absdiff(a, b))) for a, b in itertools.pairwise(grays)]
    moving = max(diffs) if diffs else 0.0
    out.append(
        CheckResult(
            name,
            "not frozen",
            "PASS" if moving > FROZEN_DIFF else "FAIL",
            f"max frame change {moving:.2f}",
            "" if moving > FROZEN_DIFF else "image does not change: replug camera",
        )
    )
    sharp = float(np.median([cv2.Laplacian(g, cv2.CV_64F).var() for g in grays]))
    out.append(
        CheckResult(
            name,
            "focus",
            "PASS" if sharp >= SHARPNESS_MIN else "WARN",
            f"sharpness {sharp:.0f}",
            "" if sharp >= SHARPNESS_MIN else "clean the lens, adjust focus",
        )
    )
    return out


async def _record(source: AudioSource, duration_s: float) -> list[AudioChunk]:
    chunks = []
    for _ in range(max(1, round(duration_s * 50))):
        chunks.append(await source.read())
    return chunks


async def check_audio_input(config: AudioInputConfig, duration_s: float) -> list[CheckResult]:
    name = config.name
    source = make_audio_input(config)
    try:
        await source.open(require=True)
    except DeviceError as exc:
        return [CheckResult(name, "opens", "FAIL", config.device, exc.message)]
    try:
        chunks = await _record(source, duration_s)
        state = source.status.state
    finally:
        await source.close()
    out = [CheckResult(name, "opens", "PASS", config.device)]
    if state != "ok":
        out.append(
            CheckResult(
                name,
                "delivers audio",
                "FAIL",
                state,
                "audio stopped: check the USB cable, then rerun",
            )
        )
        return out
    levels = np.array([dbfs(c.samples) for c in chunks])
    samples = np.concatenate([c.samples for c in chunks]).astype(np.int32)
    level = dbfs(samples.astype(np.int16))
    floor = float(np.percentile(levels, 10))
    clipped = float(np.mean(np.abs(samples) >= FULL_SCALE - 1)) * 100
    quiet = level < -60
    out.append(
        CheckResult(
            name,
            "level",
            "WARN" if quiet else "PASS",
            f"{level:.1f} dBFS",
            f"no signal: check it is unmuted; raise gain_db ({config.gain_db:+g} dB)"
            if quiet
            else "",
        )
    )
    noisy = floor > -45
    out.append(
        CheckResult(
            name,
            "noise floor",
            "WARN" if noisy else "PASS",
            f"{floor:.1f} dBFS",
            "noisy: move away from fans/chargers, check the cable" if noisy else "",
        )
    )
    verdict: Result = "PASS" if clipped < 0.1 else "WARN" if clipped < 1 else "FAIL"
    out.append(
        CheckResult(
            name,
            "clipping",
            verdict,
            f"{clipped:.2f} % of samples",
            "" if verdict == "PASS" else "lower gain_db in [[devices.audio_input]]",
        )
    )
    return out


def tone_chunk(index: int, level_dbfs: float = -12.0) -> AudioChunk:
    n = index * CHUNK_SAMPLES + np.arange(CHUNK_SAMPLES)
    amplitude = 10 ** (level_dbfs / 20)
    return AudioChunk(
        to_int16(amplitude * np.sin(2 * math.pi * TONE_HZ * n / SAMPLE_RATE)), time.time()
    )


def tone_level(chunks: list[AudioChunk]) -> float:
    """dBFS of the test tone in a recording (Goertzel-like single-bin DFT)."""
    x = np.concatenate([c.samples for c in chunks]).astype(np.float64) / FULL_SCALE
    if x.size == 0:
        return -120.0
    n = np.arange(x.size)
    amplitude = 2 * abs(np.dot(x, np.exp(-2j * math.pi * TONE_HZ * n / SAMPLE_RATE))) / x.size
    return 20 * math.log10(amplitude / math.sqrt(2)) if amplitude > 0 else -120.0


async def check_audio_output(
    config: AudioOutputConfig, duration_s: float, record_with: AudioInputConfig | None = None
) -> list[CheckResult]:
    """Plays a 1 kHz tone at -12 dBFS; if `record_with` is given, listens for it."""
    sink = make_audio_output(config)
    try:
        await sink.open(require=True)
    except DeviceError as exc:
        return [CheckResult("speaker", "plays tone", "FAIL", config.device, exc.message)]
    mic = make_audio_input(record_with) if record_with is not None else None
    try:
        if mic is not None:
            await mic.open(require=True)
        count = max(5, round(duration_s * 50))
        recording = asyncio.create_task(_record(mic, duration_s)) if mic is not None else None
        started = time.monotonic()
        for i in range(count):
            await sink.write(tone_chunk(i))
        elapsed = time.monotonic() - started
        heard = await recording if recording is not None else None
    except DeviceError as exc:
        return [CheckResult("speaker", "plays tone", "FAIL", config.device, exc.message)]
    finally:
        await sink.close()
        if mic is not None:
            await mic.close()
    ok = sink.status.state != "disconnected" or sink.status.message == "closed"
    out = [
        CheckResult(
            "speaker",
            "plays tone",
            "PASS" if ok else "FAIL",
            f"{count * 20} ms of 1 kHz in {elapsed:.2f} s",
            "" if ok else "speaker stalled: check its cable and power",
        )
    ]
    if heard is not None and record_with is not None:
        level = tone_level(heard)
        out.append(
            CheckResult(
                "speaker",
                "tone heard by " + record_with.name,
                "PASS" if level > -50 else "WARN",
                f"{level:.1f} dBFS",
                "" if level > -50 else "raise the speaker volume, unmute it",
            )
        )
    return out
