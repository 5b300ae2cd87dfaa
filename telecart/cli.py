"""The `telecart` command: server, agent, devtest, demo, admin."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from dataclasses import replace
from pathlib import Path

from telecart.config import Config, ConfigError, load_config

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["devtest"]:
        from telecart.devices.devtest import main as devtest_main

        return devtest_main(args_list[1:])
    parser = _parser()
    args = parser.parse_args(args_list)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
        result: int = args.func(args, config)
        return result
    except ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telecart", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    server = sub.add_parser("server", help="run the signalling server")
    server.add_argument("--host", help="listen address (default 127.0.0.1)")
    server.add_argument("--port", type=int, help="listen port (default 8080)")
    server.set_defaults(func=_cmd_server)

    agent = sub.add_parser("agent", help="run the cart agent")
    agent.add_argument("--simulated", action="store_true", help="use simulated devices")
    agent.add_argument(
        "--no-screen", action="store_true", help="do not serve the nurse screen (tests)"
    )
    agent.set_defaults(func=_cmd_agent)

    sub.add_parser("devtest", help="test the cart's devices and network (see devtest --help)")

    demo = sub.add_parser("demo", help="server + simulated cart + demo specialist, on loopback")
    demo.add_argument("--port", type=int, default=8080, help="server port (default 8080)")
    demo.add_argument("--specialty", default="cardiology")
    demo.set_defaults(func=_cmd_demo)

    admin = sub.add_parser("admin", help="manage carts and specialists")
    admin_sub = admin.add_subparsers(required=True, metavar="ACTION")
    add_cart = admin_sub.add_parser("add-cart", help="register a cart; prints its token once")
    add_cart.add_argument("name")
    add_cart.add_argument("--clinic", required=True)
    add_cart.set_defaults(func=_cmd_admin, action="add-cart")
    revoke = admin_sub.add_parser("revoke-cart", help="refuse a cart's token from now on")
    revoke.add_argument("name")
    revoke.set_defaults(func=_cmd_admin, action="revoke-cart")
    add_spec = admin_sub.add_parser("add-specialist", help="register a specialist")
    add_spec.add_argument("username")
    add_spec.add_argument("--name", help="display name (default: the username)")
    add_spec.add_argument("--specialty", action="append", required=True)
    add_spec.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    add_spec.set_defaults(func=_cmd_admin, action="add-specialist")
    listing = admin_sub.add_parser("list", help="list carts and specialists")
    listing.set_defaults(func=_cmd_admin, action="list")
    export = admin_sub.add_parser("export-record", help="write a consultation record")
    export.add_argument("session_id")
    export.add_argument("--pdf", type=Path, help="PDF for the family doctor")
    export.add_argument("--fhir", type=Path, help="FHIR R4 bundle (JSON)")
    export.set_defaults(func=_cmd_admin, action="export-record")
    report = admin_sub.add_parser("report", help="consultations report for all clinics")
    report.add_argument("--from", dest="date_from", help="first day, YYYY-MM-DD")
    report.add_argument("--to", dest="date_to", help="last day, YYYY-MM-DD")
    report.add_argument("--csv", type=Path, help="write CSV here (default: print it)")
    report.set_defaults(func=_cmd_admin, action="report")
    return parser


def _cmd_server(args: argparse.Namespace, config: Config) -> int:
    from telecart.server.app import run_server

    server = config.server
    if args.host:
        server = replace(server, host=args.host)
    if args.port:
        server = replace(server, port=args.port)
    run_server(server)
    return 0


def _cmd_agent(args: argparse.Namespace, config: Config) -> int:
    from telecart.cart_agent.main import run_agent

    return run_agent(config.agent, simulated=args.simulated, screen=not args.no_screen)


def _cmd_demo(args: argparse.Namespace, config: Config) -> int:
    from telecart.cart_agent.demo import run_demo

    return run_demo(config, port=args.port, specialty=args.specialty)


def _cmd_admin(args: argparse.Namespace, config: Config) -> int:
    from telecart.server import admin

    password: str | None = None
    if args.action == "add-specialist":
        if args.password_stdin or not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Again: ") != password:
                print("The passwords differ; nothing was changed.", file=sys.stderr)
                return 1
    from telecart.server import journey_admin

    try:
        if args.action == "export-record":
            output = asyncio.run(
                journey_admin.export_record(config.server, args.session_id, args.pdf, args.fhir)
            )
        elif args.action == "report":
            output = asyncio.run(
                journey_admin.write_report(config.server, args.date_from, args.date_to, args.csv)
            )
        else:
            output = asyncio.run(admin.run(config.server, args, password))
    except admin.AdminError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(output)
    return 0
