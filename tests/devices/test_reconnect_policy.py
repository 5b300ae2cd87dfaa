"""The shared reconnect policy: schedule, status events, what the technician reads."""

from __future__ import annotations

import itertools
import logging
import threading

import pytest

from telecart.devices.errors import DeviceError
from telecart.devices.reconnect_policy import (
    BACKOFF,
    Backoff,
    ReconnectPolicy,
    reconnect,
    reconnect_blocking,
)
from telecart.devices.status import DeviceState

HINT = "check the USB cable, then run `telecart devtest --only camera`"


def make_policy(backoff: Backoff = BACKOFF) -> tuple[ReconnectPolicy, list[tuple[str, str]]]:
    reports: list[tuple[str, str]] = []

    def report(state: DeviceState, message: str) -> None:
        reports.append((state, message))

    return ReconnectPolicy("exam camera", report, HINT, backoff), reports


def test_backoff_doubles_up_to_its_cap() -> None:
    delays = list(itertools.islice(Backoff().delays(), 7))
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_loss_is_reported_once_with_what_to_do(caplog: pytest.LogCaptureFixture) -> None:
    policy, reports = make_policy()
    with caplog.at_level(logging.INFO, "telecart.devices.reconnect_policy"):
        policy.lost("frames stopped")
        policy.lost("no frame for 3 s")
        policy.failed(DeviceError("camera_missing", "exam camera not found"))
        policy.restored("reconnected (/dev/video0)")
    assert reports == [("disconnected", "frames stopped"), ("ok", "reconnected (/dev/video0)")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and HINT in warnings[0]
    assert "back after" in caplog.records[-1].getMessage() and "1 attempts" in caplog.text
    assert not policy.missing


def test_unexpected_errors_are_logged_with_their_type(caplog: pytest.LogCaptureFixture) -> None:
    policy, _ = make_policy()
    policy.lost("frames stopped")
    with caplog.at_level(logging.WARNING, "telecart.devices.reconnect_policy"):
        policy.failed(RuntimeError("driver bug"))
    assert "RuntimeError('driver bug')" in caplog.text


async def test_async_reconnect_retries_until_the_attempt_succeeds() -> None:
    policy, reports = make_policy(Backoff(0.01, 0.02))
    results = iter([DeviceError("x", "missing"), OSError("busy"), "port"])

    async def attempt() -> str:
        result = next(results)
        if isinstance(result, Exception):
            raise result
        return result

    policy.lost("gone")
    assert await reconnect(policy, attempt, lambda: False, "back") == "port"
    assert policy.attempts == 2 and reports[-1] == ("ok", "back")


def test_blocking_reconnect_stops_when_asked() -> None:
    policy, reports = make_policy(Backoff(0.01, 0.02))
    stop = threading.Event()
    calls = 0

    def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls == 3:
            stop.set()
        raise DeviceError("x", "missing")

    policy.lost("gone")
    assert reconnect_blocking(policy, attempt, stop, "back") is None
    assert calls == 3 and reports == [("disconnected", "gone")]
