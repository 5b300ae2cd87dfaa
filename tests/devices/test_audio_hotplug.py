"""Audio hot-plug for real: a JACK dummy server stopped mid-stream and started again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

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


async def play_tone(speaker: SoundDeviceOutput) -> None:
    i = 0
    while True:
        await speaker.write(tone_chunk(i))
        i += 1


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
    worst_lag = 0.0

    async def measure_lag() -> None:
        nonlocal worst_lag
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            worst_lag = max(worst_lag, loop.time() - before - 0.01)

    lag = asyncio.create_task(measure_lag())
    try:
        started = loop.time()
        silent = [await stethoscope.read() for _ in range(200)]  # 4 s of 20 ms silence
        elapsed = loop.time() - started
        voice_chunks = [await voice.read() for _ in range(25)]
    finally:
        lag.cancel()
        await stethoscope.close()
        await voice.close()
    assert stethoscope.policy.attempts >= 2
    assert host.restarts == 0
    assert voice_events[:1] == ["ok"] and "disconnected" not in voice_events[:-1]
    assert all(not c.samples.any() for c in silent) and 3.5 < elapsed < 12
    assert len(voice_chunks) == 25
    assert worst_lag < 0.3, f"event loop blocked for {worst_lag:.2f} s"


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
    await speaker.open(require=False)  # as CartDevices opens it
    player = asyncio.create_task(play_tone(speaker))  # writes go on, dropped at pace
    mic: SoundDeviceInput | None = None
    try:
        assert speaker.status.state == "disconnected"
        await asyncio.sleep(1.0)
        assert not player.done()
        loop = asyncio.get_running_loop()
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
    assert picked_up_s < TIMEOUT
    print(f"speaker picked up {picked_up_s:.2f} s after the sound server started")


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
