"""``python -m bench.netlab {up,set,stats,validate,profiles}`` (``serve`` is internal)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from bench.netlab.control import request_once
from bench.netlab.emulator import serve
from bench.netlab.lab import LinkLab
from bench.netlab.namespaces import NamespacePair
from bench.netlab.profiles import PROFILES_FILE, load_profile, load_profiles, profile_from_json


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


async def _up(profile: str, profiles_file: Path, seed: int | None, backend: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with LinkLab(profile, profiles_file=profiles_file, seed=seed, backend=backend) as lab:
        print(
            json.dumps(
                {
                    "profile": lab.profile.name,
                    "backend": lab.backend,
                    "cart_ns": lab.cart_ns,
                    "clinic_ns": lab.clinic_ns,
                    "cart_ip": lab.cart_ip,
                    "clinic_ip": lab.clinic_ip,
                    "control": str(lab.control_path),
                }
            ),
            flush=True,
        )
        print(f"link up: ip netns exec {lab.cart_ns} ping {lab.clinic_ip}   (Ctrl-C ends it)")
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.netlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="bring a link up until Ctrl-C; prints the namespace names")
    up.add_argument("--profile", default="good")
    up.add_argument("--profiles-file", type=Path, default=PROFILES_FILE)
    up.add_argument("--seed", type=int)
    up.add_argument("--backend", choices=("tun", "netem", "auto"), default="tun")

    set_cmd = sub.add_parser("set", help="change a running link: set SOCKET up rate_kbps=300")
    set_cmd.add_argument("control", type=Path)
    set_cmd.add_argument("direction", choices=("up", "down"))
    set_cmd.add_argument("params", nargs="+", metavar="KEY=VALUE")

    stats = sub.add_parser("stats", help="print a running link's counters as JSON")
    stats.add_argument("control", type=Path)

    sub.add_parser("profiles", help="list the profiles")

    validate = sub.add_parser("validate", help="measure rate, delay, jitter and loss")
    validate.add_argument("--profile", action="append", help="repeatable; default: all")
    validate.add_argument("--profiles-file", type=Path, default=PROFILES_FILE)
    validate.add_argument("--seed", type=int)
    validate.add_argument(
        "--scale", type=float, default=1.0, help="multiply every phase's duration"
    )

    serve_cmd = sub.add_parser("serve", help=argparse.SUPPRESS)
    serve_cmd.add_argument("--run-id", required=True)
    serve_cmd.add_argument("--control", type=Path, required=True)
    serve_cmd.add_argument("--profile-json", required=True)
    serve_cmd.add_argument("--seed", type=int)

    args = parser.parse_args(argv)
    if args.command == "up":
        asyncio.run(_up(args.profile, args.profiles_file, args.seed, args.backend))
        return 0
    if args.command == "set":
        params = {}
        for item in args.params:
            key, sep, value = item.partition("=")
            if not sep:
                parser.error(f"expected KEY=VALUE, got {item!r}")
            params[key] = _parse_value(value)
        reply = request_once(
            args.control, {"cmd": "set", "direction": args.direction, "params": params}
        )
        print(json.dumps(reply["params"]))
        return 0
    if args.command == "stats":
        print(json.dumps(request_once(args.control, {"cmd": "stats"})["stats"]))
        return 0
    if args.command == "profiles":
        for profile in load_profiles().values():
            print(f"{profile.name:10} {profile.description}")
        return 0
    if args.command == "validate":
        from bench.netlab.validate import run_validation

        names = args.profile or list(load_profiles(args.profiles_file))
        profiles = [load_profile(name, args.profiles_file) for name in names]
        return asyncio.run(run_validation(profiles, seed=args.seed, scale=args.scale))
    if args.command == "serve":
        serve(
            profile_from_json(args.profile_json),
            NamespacePair(args.run_id),
            args.control,
            seed=args.seed,
            watch_stdin=True,
        )
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
