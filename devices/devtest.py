"""`telecart devtest`: the technician's check of every configured device and the network.

    telecart devtest [--config cart.toml] [--simulated] [--list] [--json]
                     [--only camera,audio,serial,network] [--duration S]

Prints a table (device, check, PASS/WARN/FAIL, measured value, what to do), or JSON
with `--json`. Exit code 0 when nothing failed, 1 on any FAIL, 2 on bad usage or config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import SIMULATED, DevicesConfig
from .devtest_media import check_audio_input, check_audio_output, check_camera
from .devtest_network import check_network
from .devtest_report import CheckResult, exit_code, render_json, render_table
from .devtest_serial import check_serial
from .errors import DeviceConfigError

GROUPS = ("camera", "audio", "serial", "network")
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


@dataclass(frozen=True)
class CartTestConfig:
    devices: DevicesConfig
    server_url: str | None
    token: str | None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="telecart devtest", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="cart TOML file with [agent] and [devices]")
    p.add_argument("--simulated", action="store_true", help="test the simulated devices")
    p.add_argument("--list", action="store_true", help="list the devices found and exit")
    p.add_argument("--json", action="store_true", help="print JSON for fleet tools")
    p.add_argument("--only", help="comma-separated subset of: " + ",".join(GROUPS))
    p.add_argument("--duration", type=float, default=2.0, help="seconds per media check")
    return p


def load_config(path: str | None, simulated: bool) -> CartTestConfig:
    data: Mapping[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise DeviceConfigError(f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise DeviceConfigError(f"{path} is not valid TOML: {exc}") from exc
    agent = data.get("agent", {})
    if not isinstance(agent, Mapping):
        raise DeviceConfigError("[agent] must be a table")
    if simulated:
        devices = DevicesConfig.simulated()
    elif "devices" in data:
        devices = DevicesConfig.from_dict(data["devices"])
    else:
        raise DeviceConfigError(
            "no [devices] table: pass --config cart.toml, or --simulated to test the simulators"
        )
    server_url, token = agent.get("server_url"), agent.get("token")
    for key, value in (("server_url", server_url), ("token", token)):
        if value is not None and not isinstance(value, str):
            raise DeviceConfigError(f"[agent] {key} must be a string")
    return CartTestConfig(devices, server_url, token)


async def run_checks(
    config: CartTestConfig, groups: set[str], duration_s: float
) -> list[CheckResult]:
    d = config.devices
    results: list[CheckResult] = []
    if "camera" in groups:
        for camera in d.cameras:
            results += await check_camera(camera, duration_s)
    if "audio" in groups:
        for audio_in in d.audio_inputs:
            results += await check_audio_input(audio_in, duration_s)
        if d.audio_output is not None:
            voice = next((a for a in d.audio_inputs if a.role == "voice"), None)
            listen = voice if voice is not None and voice.device != SIMULATED else None
            if d.audio_output.device == SIMULATED:
                listen = None
            results += await check_audio_output(d.audio_output, min(duration_s, 1.0), listen)
    if "serial" in groups:
        for serial_config in d.serial:
            results += await check_serial(serial_config)
    if "network" in groups:
        results += await check_network(config.server_url, config.token)
    return results


def list_devices(config: CartTestConfig | None) -> dict[str, Any]:
    from .errors import DeviceError
    from .portaudio_devices import list_audio_devices
    from .v4l2 import list_cameras

    found: dict[str, Any] = {
        "cameras": [
            {
                "path": c.path,
                "name": c.name,
                "bus": c.bus,
                "modes": [
                    f"{m.pixel_format} {m.width}x{m.height} @ {list(m.fps)}" for m in c.modes
                ],
            }
            for c in list_cameras()
        ]
    }
    try:
        found["audio"] = list_audio_devices()
    except DeviceError as exc:
        found["audio"] = {"error": exc.message}
    from serial.tools import list_ports

    found["serial"] = [
        {"port": p.device, "description": p.description} for p in list_ports.comports()
    ]
    if config is not None:
        d = config.devices
        found["configured"] = (
            [c.name + ": " + c.source for c in d.cameras]
            + [a.name + ": " + a.device for a in d.audio_inputs]
            + [s.name + ": " + s.port + " (" + s.protocol + ")" for s in d.serial]
        )
    return found


def _print_list(found: dict[str, Any]) -> None:
    print("Cameras (V4L2):")
    for c in found["cameras"] or [{"path": "-", "name": "none found", "modes": []}]:
        print(f"  {c['path']}  {c['name']}")
        for mode in c["modes"]:
            print(f"      {mode}")
    print("Audio (PortAudio):")
    audio = found["audio"]
    if isinstance(audio, dict):
        print(f"  {audio['error']}")
    else:
        for a in audio or [
            {"index": "-", "name": "none found", "hostapi": "", "inputs": 0, "outputs": 0}
        ]:
            channels = f"in {a['inputs']}, out {a['outputs']}"
            print(f"  [{a['index']}] {a['name']} ({a['hostapi']}, {channels})")
    print("Serial ports:")
    for s in found["serial"] or [{"port": "-", "description": "none found"}]:
        print(f"  {s['port']}  {s['description']}")
    for line in found.get("configured", []):
        print(f"Configured: {line}")


def main(argv: list[str]) -> int:
    """Entry point for `telecart devtest ...`; returns the exit code."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code == 0 else EXIT_USAGE
    groups = set(GROUPS)
    if args.only:
        groups = {g.strip() for g in args.only.split(",") if g.strip()}
        bad = groups - set(GROUPS)
        if bad or not groups:
            print(
                f"telecart devtest: --only takes {','.join(GROUPS)}; not {sorted(bad)}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    if not 0.2 <= args.duration <= 60:
        print("telecart devtest: --duration must be between 0.2 and 60 seconds", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = (
            load_config(args.config, args.simulated)
            if (args.config or args.simulated or not args.list)
            else None
        )
    except DeviceConfigError as exc:
        print(f"telecart devtest: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.list:
        found = list_devices(config)
        print(json.dumps(found)) if args.json else _print_list(found)
        return EXIT_OK
    assert config is not None
    results = asyncio.run(run_checks(config, groups, args.duration))
    print(render_json(results) if args.json else render_table(results))
    return exit_code(results)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
