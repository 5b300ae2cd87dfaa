"""Shared fixtures: a JACK dummy sound server (a clocked virtual sound device)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def jack_server() -> Iterator[str]:
    """A `jackd -d dummy` at 48 kHz / 960-frame periods, with PortAudio reinitialised
    so sounddevice sees it. Skips when jackd or PortAudio is not installed."""
    if shutil.which("jackd") is None:
        pytest.skip("jackd not installed: apt-get install jackd2 libportaudio2")
    try:
        import sounddevice as sd
    except OSError:
        pytest.skip("PortAudio not installed: apt-get install libportaudio2")
    name = f"telecart-test-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
    proc = subprocess.Popen(
        ["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", "960"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    os.environ["JACK_DEFAULT_SERVER"] = name
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            sd._terminate()
            sd._initialize()
            if any("JACK" in api["name"] and api["devices"] for api in sd.query_hostapis()):
                break
            time.sleep(0.3)
        else:
            pytest.skip("jackd dummy server did not come up")
        yield name
    finally:
        sd._terminate()  # PortAudio's JACK host aborts if its server dies under it
        proc.terminate()
        proc.wait(5)
        os.environ.pop("JACK_DEFAULT_SERVER", None)
        sd._initialize()
