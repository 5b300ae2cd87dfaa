"""Audio hot-plug for real: a JACK dummy server stopped mid-stream and started again."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from types import TracebackType

import pytest

from telecart.devices.audio import SoundDeviceInput, SoundDeviceOutput
from telecart.devices.audio_chunk import dbfs
from telecart.devices.audio_host import AudioHost
from telecart.devices.config import AudioInputConfig, AudioOutputConfig
from telecart.devices.devtest_media import tone_chunk
from telecart.devices.reconnect_policy import Backoff
from telecart.devices.status import DeviceStatus, StatusBoard
from tests.devices.jack_server import JackServer

TIMEOUT = 30.0
FAST = Backoff(first_s=0.2, max_s=1.0)


async def play_tone(speaker: SoundDeviceOutput, written: list[float] | None = None) -> None:
    """Write a 1 kHz tone for ever, as the media pipeline would; `written` collects the
    loop time at which each write returned."""
    loop = asyncio.get_running_loop()
    i = 0
    while True:
        await speaker.write(tone_chunk(i))
        if written is not None:
            written.append(loop.time())
        i += 1


class LoopLag:
    """While entered, measures how late the event loop runs a 10 ms sleep: `worst`."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._measure())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _measure(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, loop.time() - before - 0.01)


async def read_until(mic: SoundDeviceInput, done: Callable[[float], bool]) -> None:
    """Read the microphone (as the media pipeline does) until `done(level_dbfs)`."""
    async with asyncio.timeout(TIMEOUT):
        while not done(dbfs((await mic.read()).samples)):
            pass


async def test_jack_restart_brings_input_and_output_back(restartable_jack: JackServer) -> None:
    board = StatusBoard()
    events: list[DeviceStatus] = []
    board.subscribe(events.append)
    host = AudioHost(FAST)
    mic = SoundDeviceInput(AudioInputConfig("stethoscope", "system"), board, host)
    speaker = SoundDeviceOutput(AudioOutputConfig("system"), board, host)
    await mic.open(require=True)
    await speaker.open()
    player = asyncio.create_task(play_tone(speaker))
    try:
        await asyncio.to_thread(restartable_jack.loop_back)
        await read_until(mic, lambda level: level > -30)  # the tone, through the cable

        restartable_jack.stop()
        await read_until(mic, lambda _: speaker.status.state == "disconnected" == mic.status.state)
        assert host.restarts == 0

        restartable_jack.start()
        await read_until(mic, lambda _: speaker.status.state == "ok" == mic.status.state)
        await asyncio.to_thread(restartable_jack.loop_back)
        await read_until(mic, lambda level: level > -30)
    finally:
        player.cancel()
        await mic.close()
        await speaker.close()
    for device in ("stethoscope", "speaker"):
        states = [e.state for e in events if e.device == device]
        assert states == ["ok", "disconnected", "ok", "disconnected"], (device, events)
    assert events[-1].message == "closed"
    assert host.restarts == 1


async def test_device_that_never_returns_keeps_retrying_without_disturbing_others(
    restartable_jack: JackServer,
) -> None:
    host = AudioHost(FAST)
    board = StatusBoard()
    voice = SoundDeviceInput(AudioInputConfig("voice", "system"), board, host)
    stethoscope = SoundDeviceInput(AudioInputConfig("stethoscope", "Littmann USB"), board, host)
    voice_events: list[str] = []
    board.subscribe(
        lambda s: voice_events.append(s.state) if s.device == voice.device_name else None
    )
    await voice.open(require=True)
    await stethoscope.open()
    loop = asyncio.get_running_loop()
    try:
        async with LoopLag() as lag:
            started = loop.time()
            silent = [await stethoscope.read() for _ in range(200)]  # 4 s of 20 ms silence
            elapsed = loop.time() - started
            voice_chunks = [await voice.read() for _ in range(25)]
    finally:
        await stethoscope.close()
        await voice.close()
    assert stethoscope.policy.attempts >= 2
    assert host.restarts == 0
    assert voice_events[:1] == ["ok"] and "disconnected" not in voice_events[:-1]
    assert all(not c.samples.any() for c in silent) and 3.5 < elapsed < 12
    assert len(voice_chunks) == 25
    assert lag.worst < 0.3, f"event loop blocked for {lag.worst:.2f} s"


@pytest.mark.parametrize("direction", ["input", "output"])
async def test_stream_open_on_a_missing_name_reports_the_fix(
    restartable_jack: JackServer, direction: str
) -> None:
    stream = (
        SoundDeviceInput(AudioInputConfig("stethoscope", "Littmann USB"))
        if direction == "input"
        else SoundDeviceOutput(AudioOutputConfig("Bluetooth speaker"))
    )
    await stream.open(require=False)
    try:
        assert stream.status.state == "disconnected"
        assert "not found" in stream.status.message
        assert "devtest --only audio" in stream.status.message
    finally:
        await stream.close()


async def test_a_speaker_absent_at_start_is_used_once_it_appears(
    restartable_jack: JackServer,
) -> None:
    restartable_jack.stop()  # the cart starts with no sound device at all
    board = StatusBoard()
    events: list[DeviceStatus] = []
    board.subscribe(lambda s: events.append(s) if s.device == "speaker" else None)
    host = AudioHost(FAST)
    speaker = SoundDeviceOutput(AudioOutputConfig("system"), board, host)
    loop = asyncio.get_running_loop()
    written: list[float] = []
    mic: SoundDeviceInput | None = None
    async with LoopLag() as lag:
        await speaker.open(require=False)  # as CartDevices opens it
        player = asyncio.create_task(play_tone(speaker, written))
        try:
            assert speaker.status.state == "disconnected"
            await asyncio.sleep(2.0)
            absent = [t for t in written if t > written[0] + 0.5]  # past the first writes
            appeared = loop.time()
            restartable_jack.start()
            async with asyncio.timeout(TIMEOUT):
                while speaker.status.state != "ok":  # noqa: ASYNC110 - status has no event here
                    await asyncio.sleep(0.05)
            picked_up_s = loop.time() - appeared
            mic = SoundDeviceInput(AudioInputConfig("stethoscope", "system"), board, host)
            await mic.open(require=True)
            await asyncio.to_thread(restartable_jack.loop_back)
            await read_until(mic, lambda level: level > -30)  # the tone, through the cable
        finally:
            player.cancel()
            if mic is not None:
                await mic.close()
            await speaker.close()
    assert [e.state for e in events][:2] == ["disconnected", "ok"]
    assert speaker.policy.attempts >= 1 and host.restarts >= 1
    # While absent, every write returned after about 20 ms: dropped on time, never stuck.
    gaps = [b - a for a, b in itertools.pairwise(absent)]
    assert len(absent) >= 30 and 0.015 < sum(gaps) / len(gaps) < 0.03, gaps
    assert lag.worst < 0.3, f"event loop blocked for {lag.worst:.2f} s"
    print(
        f"speaker picked up {picked_up_s:.2f} s after the sound server started; "
        f"{len(absent)} writes dropped at {1000 * sum(gaps) / len(gaps):.1f} ms pace; "
        f"worst loop lag {1000 * lag.worst:.0f} ms"
    )


async def test_the_cart_keeps_a_missing_speaker_and_reports_it(
    restartable_jack: JackServer,
) -> None:
    from dataclasses import replace

    from telecart.cart_agent.cart_devices import CartDevices
    from telecart.devices.config import DevicesConfig

    config = replace(DevicesConfig.simulated(), audio_output=AudioOutputConfig("USB speaker"))
    devices = CartDevices(config)
    await devices.open()
    try:
        assert devices.speaker is not None  # kept, and retried until it is plugged in
        status = devices.board.latest()["speaker"]
        assert status.state == "disconnected" and "devtest --only audio" in status.message
    finally:
        await devices.close()
