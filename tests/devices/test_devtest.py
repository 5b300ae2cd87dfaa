"""`telecart devtest` end to end: exit codes, FAIL lines, and the network preflight
against a tiny aiohttp server and a real coturn on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from telecart.devices import devtest
from telecart.devices.devtest_network import check_network

TOKEN = "cart-token-1"
SECRET = "turn-secret"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def coturn() -> Iterator[int]:
    if shutil.which("turnserver") is None:
        pytest.skip("coturn not installed: apt-get install coturn")
    port = free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen(
        [
            "turnserver",
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            "--use-auth-secret",
            f"--static-auth-secret={SECRET}",
            "--realm=telecart",
            "--no-tls",
            "--no-dtls",
            "--allow-loopback-peers",
            "--no-cli",
            "--min-port=49200",
            "--max-port=49300",
            "--log-file=stdout",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    yield port
    proc.terminate()
    proc.wait(5)


def make_app(turn_port: int, received: list[int]) -> web.Application:
    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        hello = await ws.receive_json()
        if hello.get("token") != TOKEN:
            await ws.send_json(
                {"v": 1, "type": "error", "code": "auth_failed", "message": "bad token"}
            )
            await ws.close()
            return ws
        await ws.send_json({"v": 1, "type": "welcome", "cart_id": "c1"})
        async for msg in ws:
            data = json.loads(msg.data)
            if data.get("type") == "ping":
                await ws.send_json({"v": 1, "type": "pong", "id": data["id"]})
        return ws

    def authorised(request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise web.HTTPUnauthorized()

    async def turn(request: web.Request) -> web.Response:
        authorised(request)
        username = f"{int(time.time()) + 600}:cart"
        credential = base64.b64encode(
            hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()
        ).decode()
        urls = [
            f"turn:127.0.0.1:{turn_port}?transport=udp",
            f"turn:127.0.0.1:{turn_port}?transport=tcp",
        ]
        return web.json_response(
            {
                "iceServers": [{"urls": urls, "username": username, "credential": credential}],
                "ttl": 600,
            }
        )

    async def speedtest(request: web.Request) -> web.Response:
        authorised(request)
        started = time.perf_counter()
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
        received.append(size)
        return web.json_response(
            {"received": size, "elapsed_ms": (time.perf_counter() - started) * 1000}
        )

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/api/turn", turn)
    app.router.add_post("/api/speedtest", speedtest)
    return app


@pytest.fixture
async def server(coturn: int) -> AsyncIterator[tuple[str, list[int]]]:
    received: list[int] = []
    runner = web.AppRunner(make_app(coturn, received))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"ws://127.0.0.1:{port}/ws", received
    await runner.cleanup()


async def test_network_preflight_passes_against_server_and_coturn(
    server: tuple[str, list[int]],
) -> None:
    url, received = server
    results = await check_network(url, TOKEN)
    by_check = {r.check: r for r in results}
    assert by_check["WebSocket auth"].result == "PASS"
    assert by_check["TURN allocate UDP"].result == "PASS", by_check["TURN allocate UDP"]
    assert by_check["TURN allocate TCP"].result == "PASS", by_check["TURN allocate TCP"]
    assert "0 %" in by_check["RTT / jitter / loss"].value
    assert by_check["upload throughput"].result == "PASS" and received
    assert by_check["video verdict"].result == "PASS"


async def test_wrong_token_is_a_fail_line(server: tuple[str, list[int]]) -> None:
    results = await check_network(server[0], "stolen")
    assert results[-1].check == "WebSocket auth" and results[-1].result == "FAIL"
    assert "token" in results[-1].action


async def test_unreachable_server_is_a_fail_line() -> None:
    results = await check_network(f"ws://127.0.0.1:{free_port()}/ws", TOKEN, timeout_s=2)
    assert results[-1].check == "TCP connect" and results[-1].result == "FAIL"


async def test_no_server_configured_is_a_warn() -> None:
    (result,) = await check_network(None, None)
    assert result.result == "WARN" and "server_url" in result.action


def test_simulated_devtest_passes_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = devtest.main(
        ["--simulated", "--json", "--duration", "0.5", "--only", "camera,audio,serial"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["exit_code"] == 0 and report["summary"]["FAIL"] == 0
    checks = {(r["device"], r["check"]) for r in report["results"]}
    assert ("oximeter", "valid readings") in checks and ("exam camera", "not frozen") in checks


def write_config(tmp_path: Path, body: str) -> str:
    path = tmp_path / "cart.toml"
    path.write_text(body)
    return str(path)


def test_missing_serial_device_is_fail_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(
        tmp_path,
        f"""
[[devices.serial]]
role = "oximeter"
port = "{tmp_path / "ttyUSB9"}"
protocol = "nonin_oem3_df2"
""",
    )
    code = devtest.main(["--config", cfg, "--only", "serial"])
    out = capsys.readouterr().out
    assert code == 1
    assert "oximeter" in out and "FAIL" in out and "check the cable" in out


def _devtest_serial_against(
    simulated: str, configured: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any]]:
    """`telecart devtest --only serial --json` on a pty where a `simulated` device talks
    and the config says `configured`."""
    from telecart.devices.serial_sim import PtyDeviceSimulator

    sim = PtyDeviceSimulator(simulated)
    sim.plug()
    try:
        cfg = write_config(
            tmp_path,
            f"""
[[devices.serial]]
role = "vitals"
port = "{sim.port}"
protocol = "{configured}"
timeout_s = 2.5
""",
        )
        code = devtest.main(["--config", cfg, "--only", "serial", "--json"])
    finally:
        sim.unplug()
    return code, json.loads(capsys.readouterr().out)


def test_garbage_on_the_wire_is_fail_naming_protocol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A key=value device configured as a Nonin.
    code, report = _devtest_serial_against("key_value", "nonin_oem3_df2", tmp_path, capsys)
    fail = report["results"][-1]
    assert code == 1 and fail["result"] == "FAIL" and "protocol" in fail["action"]


def test_missing_camera_file_is_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(
        tmp_path,
        f"""
[[devices.camera]]
role = "exam"
source = "{tmp_path / "gone.mp4"}"
""",
    )
    assert devtest.main(["--config", cfg, "--only", "camera"]) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [["--only", "camera,teleport", "--simulated"], ["--bogus"], ["--duration", "0"]],
)
def test_bad_usage_exits_2(argv: list[str]) -> None:
    assert devtest.main(argv) == 2


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, '[[devices.camera]]\nrole = "ceiling"\nsource = "x"\n')
    assert devtest.main(["--config", cfg]) == 2
    assert "devices.camera[0].role" in capsys.readouterr().err
    assert devtest.main(["--config", str(tmp_path / "missing.toml")]) == 2


def test_list_shows_devices(capsys: pytest.CaptureFixture[str]) -> None:
    assert devtest.main(["--list", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert {"cameras", "audio", "serial"} <= set(found)


def test_accutorr_monitor_passes_the_serial_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _devtest_serial_against(
        "datascope_accutorr", "datascope_accutorr", tmp_path, capsys
    )
    assert code == 0
    assert {r["result"] for r in report["results"]} == {"PASS"}
