"""The control data channel: commands from the specialist, events from the cart.

Every message is a JSON object with a `type`. Commands carry an optional `id` that the
cart echoes in its `ack` (``{"type": "ack", "id", "ok", "message"}``), so the page can
say what failed and why. Events the cart sends on its own: `track_roles` (mid → role),
`device_status`, `quality`, `state` (the current camera/mute/stethoscope settings).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel

log = logging.getLogger(__name__)

CONTROL_LABEL = "control"
CAMERA_TRACKS = ("room", "exam")
AUDIO_TRACKS = ("stethoscope", "voice")
STETHOSCOPE_MODES = ("heart", "lung", "wide")


class CommandError(Exception):
    """A command the cart cannot carry out; the message is shown to the specialist."""


@dataclass(frozen=True)
class SwitchCamera:
    """Feed video track `track` from camera `camera` (the other track takes the old one)."""

    track: str
    camera: str


@dataclass(frozen=True)
class PauseCamera:
    track: str
    paused: bool


@dataclass(frozen=True)
class RequestStill:
    camera: str = "exam"


@dataclass(frozen=True)
class SetStethoscopeMode:
    mode: str


@dataclass(frozen=True)
class Mute:
    track: str
    muted: bool


Command = SwitchCamera | PauseCamera | RequestStill | SetStethoscopeMode | Mute


def _choice(body: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = body.get(key)
    if value not in allowed:
        raise CommandError(f"'{key}' must be one of {', '.join(allowed)}")
    return str(value)


def _flag(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key)
    if not isinstance(value, bool):
        raise CommandError(f"'{key}' must be true or false")
    return value


def parse_command(body: Mapping[str, Any]) -> Command:
    kind = body.get("type")
    if kind == "switch_camera":
        return SwitchCamera(
            _choice(body, "track", CAMERA_TRACKS), _choice(body, "camera", CAMERA_TRACKS)
        )
    if kind == "pause_camera":
        return PauseCamera(_choice(body, "track", CAMERA_TRACKS), _flag(body, "paused"))
    if kind == "request_still":
        return RequestStill(_choice({"camera": "exam", **body}, "camera", CAMERA_TRACKS))
    if kind == "set_stethoscope_mode":
        return SetStethoscopeMode(_choice(body, "mode", STETHOSCOPE_MODES))
    if kind == "mute":
        return Mute(_choice(body, "track", AUDIO_TRACKS), _flag(body, "muted"))
    raise CommandError(f"unknown command {kind!r}")


class ControlChannel:
    """Parses commands, runs them with `execute`, acknowledges each; sends events."""

    def __init__(
        self, channel: RTCDataChannel, execute: Callable[[Command], Awaitable[None]]
    ) -> None:
        self._channel = channel
        self._execute = execute
        self._on_open: list[Callable[[], None]] = []
        channel.on("message", self._on_message)
        channel.on("open", self._opened)

    def when_open(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the channel opens (at once if it is open)."""
        if self._channel.readyState == "open":
            callback()
        else:
            self._on_open.append(callback)

    def _opened(self) -> None:
        for callback in self._on_open:
            callback()
        self._on_open.clear()

    def send_event(self, event: Mapping[str, Any]) -> None:
        if self._channel.readyState == "open":
            self._channel.send(json.dumps(event, separators=(",", ":")))

    async def _on_message(self, raw: str | bytes) -> None:
        command_id: Any = None
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise CommandError("a command must be a JSON object")
            command_id = body.get("id")
            command = parse_command(body)
            await self._execute(command)
        except (ValueError, CommandError) as exc:
            log.info("control command refused: %s", exc)
            self.send_event({"type": "ack", "id": command_id, "ok": False, "message": str(exc)})
            return
        self.send_event({"type": "ack", "id": command_id, "ok": True, "message": ""})
