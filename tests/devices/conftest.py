"""Shared fixtures: a JACK dummy sound server (a clocked virtual sound device)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest

from tests.devices.jack_server import JackServer


def _require_jack() -> None:
    if shutil.which("jackd") is None:
        pytest.skip("jackd not installed: apt-get install jackd2 libportaudio2")
    try:
        import sounddevice  # noqa: F401
    except OSError:
        pytest.skip("PortAudio not installed: apt-get install libportaudio2")


@pytest.fixture(scope="session")
def jack_server() -> Iterator[str]:
    """A JACK dummy server for the whole session, with PortAudio reinitialised
    so sounddevice in this process sees it too."""
    _require_jack()
    import sounddevice as sd

    server = JackServer()
    server.start()
    os.environ["JACK_DEFAULT_SERVER"] = server.name
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
        yield server.name
    finally:
        sd._terminate()  # PortAudio's JACK host aborts if its server dies under it
        server.stop()
        os.environ.pop("JACK_DEFAULT_SERVER", None)
        sd._initialize()


@pytest.fixture
def restartable_jack(monkeypatch: pytest.MonkeyPatch) -> Iterator[JackServer]:
    """A JACK dummy server of the test's own, which the test may stop and restart;
    audio worker processes started by the test connect to it."""
    _require_jack()
    if shutil.which("jack_lsp") is None or shutil.which("jack_connect") is None:
        pytest.skip("jack_lsp/jack_connect missing: apt-get install jackd2")
    server = JackServer()
    server.start()
    monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
    deadline = time.monotonic() + 10
    while not server.ports():
        if time.monotonic() > deadline:
            server.stop()
            pytest.skip("jackd dummy server did not come up")
        time.sleep(0.1)
    try:
        yield server
    finally:
        server.stop()
